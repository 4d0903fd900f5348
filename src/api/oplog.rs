//! The operator's log of this node's trading: one `info` line when an
//! order of ours is placed (by the API, logged there), fills (as taker or
//! as maker), is cancelled, expires or is rejected.
//!
//! It reads the same engine events as the event stream, so it needs no hook
//! in the engine, and it never blocks it: a log that falls behind says how
//! many events it skipped. Each line carries the order id (and the trade id
//! for a fill) as fields, so `grep <order id>` tells an order's story.

use libp2p::PeerId;
use tokio::sync::broadcast::error::RecvError;

use crate::driver::EngineHandle;
use crate::engine::{Event, OrderInfo, OrderStatus, TradeInfo};
use crate::shutdown::Shutdown;

/// Log this node's order and fill events until shutdown.
pub async fn run(engine: EngineHandle, me: PeerId, shutdown: Shutdown) {
    let mut events = engine.subscribe();
    let mine = format!("{me}/");
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = shutdown.wait() => return,
        };
        match event {
            Ok(Event::Order(o)) if o.own => order_changed(&o),
            Ok(Event::Trade(t)) => fill(&t, &mine),
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(skipped = n, "the order log fell behind; events skipped")
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// The line for a placed order (the API logs it once the engine answers).
pub fn placed(o: &OrderInfo) {
    tracing::info!(
        order = %o.id,
        market = %o.market,
        side = %o.side,
        price = %price_text(o),
        quantity = %o.quantity,
        filled = %o.filled,
        status = %o.status,
        "order placed"
    );
}

fn order_changed(o: &OrderInfo) {
    let what = match o.status {
        OrderStatus::Filled => "order filled",
        OrderStatus::Cancelled => "order cancelled",
        OrderStatus::Expired => "order expired",
        OrderStatus::Rejected => "order rejected",
        // Partial fills are logged as fills; taking and open are in-between.
        OrderStatus::Taking | OrderStatus::Open => return,
    };
    tracing::info!(
        order = %o.id,
        market = %o.market,
        side = %o.side,
        price = %price_text(o),
        filled = %o.filled,
        quantity = %o.quantity,
        reason = o.reason.as_deref().unwrap_or(""),
        "{what}"
    );
}

fn fill(t: &TradeInfo, mine: &str) {
    let (role, order) = if t.maker_order_id.starts_with(mine) {
        ("maker", &t.maker_order_id)
    } else if t.taker_order_id.starts_with(mine) {
        ("taker", &t.taker_order_id)
    } else {
        return;
    };
    tracing::info!(
        order = %order,
        trade = %t.id,
        market = %t.market,
        role,
        price = %t.price,
        quantity = %t.quantity,
        "fill as {role}"
    );
}

fn price_text(o: &OrderInfo) -> String {
    o.price
        .map_or_else(|| "market".to_string(), |p| p.to_string())
}
