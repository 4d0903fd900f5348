//! `GET /metrics`: Prometheus text (OpenMetrics) of the node's registry —
//! libp2p's swarm and protocol metrics, gossipsub's, the network task's —
//! followed by the trading engine's: what it counted (orders, fills, takes,
//! gossip verdicts, syncs), the size of every book, this node's open
//! orders, and the open event streams.
//!
//! The engine lives in its own task and is read with a query, which a
//! registry collector (synchronous) cannot make; so its numbers are read
//! per scrape into a registry of their own, encoded after the node's, with
//! one `# EOF` at the end.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::engine_error::gone;
use super::events::Hub;
use super::{ApiError, ApiState};
use crate::engine::{Counters, MarketInfo, OwnerInfo};

const CONTENT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/metrics", get(metrics))
}

/// One snapshot of the engine, read in one query.
struct Snapshot {
    counters: Counters,
    markets: Vec<MarketInfo>,
    owners: Vec<OwnerInfo>,
    degraded: bool,
}

async fn metrics(
    State(state): State<Arc<ApiState>>,
    hub: Option<Extension<Arc<Hub>>>,
) -> Result<Response, ApiError> {
    let snapshot = state
        .engine
        .query(|e| Snapshot {
            counters: e.counters().clone(),
            markets: e.market_infos(),
            owners: e.owners(),
            degraded: e.degraded().is_some(),
        })
        .await
        .map_err(gone)?;
    let sse_clients = hub.map_or(0, |Extension(h)| h.clients());
    let ours = engine_registry(&snapshot, sse_clients);
    let mut text = String::new();
    encode_registry(&mut text, &state.registry)
        .and_then(|()| encode_registry(&mut text, &ours))
        .and_then(|()| encode_eof(&mut text))
        .map_err(|e| ApiError::internal(format!("cannot encode the metrics: {e}")))?;
    Ok(([(CONTENT_TYPE, CONTENT)], text).into_response())
}

type Labels = Vec<(&'static str, String)>;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: usize) {
    let g = Gauge::<i64>::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn family(
    registry: &mut Registry,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (Labels, u64)>,
) {
    let f = Family::<Labels, Gauge<i64>>::default();
    for (labels, v) in values {
        f.get_or_create(&labels)
            .set(i64::try_from(v).unwrap_or(i64::MAX));
    }
    registry.register(name, help, f);
}

/// The engine's numbers as a registry (prefix `peerbook_`).
fn engine_registry(s: &Snapshot, sse_clients: usize) -> Registry {
    let mut r = Registry::with_prefix("peerbook");
    let c = &s.counters;
    counter(
        &mut r,
        "orders_placed",
        "Orders this node accepted",
        c.orders_placed,
    );
    counter(
        &mut r,
        "orders_refused",
        "Orders refused (invalid, unknown market, storage failing); nothing changed",
        c.orders_refused,
    );
    counter(
        &mut r,
        "orders_rejected",
        "Orders ended rejected (post-only that would take, fill-or-kill the book cannot fill)",
        c.orders_rejected,
    );
    let fills = Family::<Labels, Counter<u64>>::default();
    fills
        .get_or_create(&vec![("role", "maker".into())])
        .inc_by(c.fills_maker);
    fills
        .get_or_create(&vec![("role", "taker".into())])
        .inc_by(c.fills_taker);
    r.register("fills", "Fills this node took part in, by its role", fills);
    counter(
        &mut r,
        "takes_sent",
        "Take requests sent to makers",
        c.takes_sent,
    );
    counter(
        &mut r,
        "takes_refused",
        "Take requests makers refused",
        c.takes_refused,
    );
    counter(
        &mut r,
        "takes_refused_as_maker",
        "Take requests this node refused as maker",
        c.takes_refused_as_maker,
    );
    counter(
        &mut r,
        "takes_in_doubt",
        "Take requests that got no answer (resolved later with status requests)",
        c.takes_in_doubt,
    );
    counter(
        &mut r,
        "gossip_sent",
        "Gossip messages published",
        c.gossip_sent,
    );
    counter(
        &mut r,
        "gossip_rejected",
        "Gossip messages rejected as invalid",
        c.gossip_rejected,
    );
    counter(
        &mut r,
        "gossip_ignored",
        "Gossip messages ignored (stale or duplicate)",
        c.gossip_ignored,
    );
    counter(
        &mut r,
        "sync_requests",
        "Sync requests sent",
        c.sync_requests,
    );
    counter(
        &mut r,
        "sync_answers",
        "Sync requests answered",
        c.sync_answers,
    );
    counter(&mut r, "sync_pages", "Sync pages received", c.sync_pages);
    counter(
        &mut r,
        "owner_syncs",
        "Syncs of one owner's orders after a digest mismatch",
        c.owner_syncs,
    );
    counter(
        &mut r,
        "owner_limit_hits",
        "Remote orders left out of a replica because their owner reached its limit",
        c.owner_limit_hits,
    );
    family(
        &mut r,
        "book_orders",
        "Open orders in the replicated book, per market",
        s.markets
            .iter()
            .map(|m| (vec![("market", m.name.clone())], m.orders as u64)),
    );
    family(
        &mut r,
        "own_open_orders",
        "This node's open orders, per market",
        s.markets
            .iter()
            .map(|m| (vec![("market", m.name.clone())], m.own_open as u64)),
    );
    family(
        &mut r,
        "book_synced",
        "1 once the market's book has been pulled from a peer",
        s.markets
            .iter()
            .map(|m| (vec![("market", m.name.clone())], u64::from(m.synced))),
    );
    let stale = s.owners.iter().filter(|o| o.stale).count();
    gauge(
        &mut r,
        "owners",
        "Owners (peers with orders) this node has heard of",
        s.owners.len(),
    );
    gauge(
        &mut r,
        "owners_stale",
        "Owners not heard from lately (their orders are not taken)",
        stale,
    );
    gauge(
        &mut r,
        "degraded",
        "1 while the node refuses orders because its storage fails",
        usize::from(s.degraded),
    );
    gauge(
        &mut r,
        "sse_clients",
        "Open event streams (GET /api/v1/events)",
        sse_clients,
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_numbers_render_as_prometheus_text_with_help_and_type() {
        let s = Snapshot {
            counters: Counters {
                orders_placed: 7,
                fills_maker: 2,
                fills_taker: 3,
                ..Counters::default()
            },
            markets: vec![MarketInfo {
                name: "BTC-USD".into(),
                tick: rust_decimal::Decimal::ONE,
                lot: rust_decimal::Decimal::ONE,
                topic: "t".into(),
                digest: "d".into(),
                orders: 4,
                own_open: 1,
                synced: true,
            }],
            owners: Vec::new(),
            degraded: false,
        };
        let mut text = String::new();
        encode_registry(&mut text, &engine_registry(&s, 2)).unwrap();
        for line in [
            "# HELP peerbook_orders_placed Orders this node accepted",
            "# TYPE peerbook_orders_placed counter",
            "peerbook_orders_placed_total 7",
            "peerbook_fills_total{role=\"maker\"} 2",
            "peerbook_fills_total{role=\"taker\"} 3",
            "# TYPE peerbook_book_orders gauge",
            "peerbook_book_orders{market=\"BTC-USD\"} 4",
            "peerbook_own_open_orders{market=\"BTC-USD\"} 1",
            "peerbook_sse_clients 2",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }
}
