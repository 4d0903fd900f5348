//! The engine's queries, and how its state becomes what the outside sees
//! (`info.rs`): orders, trades, books in the decimal units of their market.

use libp2p::PeerId;
use rust_decimal::Decimal;

use super::durable::{OrderKind, OrderStatus, OwnOrder, Tif, Trade};
use super::ids::OrderId;
use super::info::{BookInfo, MarketInfo, OrderInfo, OwnerInfo, TradeInfo};
use super::market::BookSync;
use super::replica::{RepOrder, Replica};
use crate::market::{MarketSpec, Qty, Side};

pub(crate) fn tif_str(t: Tif) -> &'static str {
    match t {
        Tif::Gtc => "gtc",
        Tif::Ioc => "ioc",
        Tif::Fok => "fok",
        Tif::PostOnly => "post-only",
    }
}

pub(super) fn trade(spec: &MarketSpec, t: &Trade) -> TradeInfo {
    TradeInfo {
        id: t.id.to_string(),
        market: spec.name.clone(),
        maker_order_id: t.id.maker.to_string(),
        taker_order_id: t.taker.to_string(),
        side: t.maker_side.opposite(),
        price: spec.ticks_to_price(t.price),
        quantity: spec.lots_to_qty(t.qty),
        ts_ms: t.ts_ms,
    }
}

/// An own order as the API shows it, from its stored record and trades
/// (for orders the engine no longer holds in memory).
pub fn stored_order_info(
    spec: &MarketSpec,
    me: PeerId,
    o: &OwnOrder,
    trades: &[Trade],
) -> OrderInfo {
    let refs: Vec<&Trade> = trades.iter().collect();
    own_order(spec, me, o, Qty::ZERO, &refs)
}

pub(super) fn own_order(
    spec: &MarketSpec,
    me: PeerId,
    o: &OwnOrder,
    pending: Qty,
    trades: &[&Trade],
) -> OrderInfo {
    let open = !o.status.is_done();
    OrderInfo {
        id: OrderId::new(me, o.seq).to_string(),
        market: o.market.clone(),
        side: o.side,
        kind: o.kind,
        time_in_force: o.tif,
        price: o.price.map(|p| spec.ticks_to_price(p)),
        quantity: spec.lots_to_qty(o.qty),
        filled: spec.lots_to_qty(o.filled),
        remaining: if open {
            spec.lots_to_qty(o.remaining())
        } else {
            Decimal::ZERO
        },
        pending: spec.lots_to_qty(pending),
        status: o.status,
        reason: o.reason.clone(),
        own: true,
        stale: false,
        created_ms: o.created_ms,
        updated_ms: o.updated_ms,
        client_id: o.client_id.clone(),
        expires_at: o.expires_ms,
        fills: trades.iter().map(|t| trade(spec, t)).collect(),
    }
}

/// A replicated order; `lapsed`: past its expiry here, its owner's word
/// that it ended not yet come.
pub(super) fn remote_order(
    r: &Replica,
    id: OrderId,
    o: &RepOrder,
    stale: bool,
    lapsed: bool,
) -> OrderInfo {
    let spec = &r.spec;
    let s = &o.state;
    OrderInfo {
        id: id.to_string(),
        market: spec.name.clone(),
        side: s.side,
        kind: OrderKind::Limit,
        time_in_force: Tif::Gtc,
        price: Some(spec.ticks_to_price(s.price)),
        quantity: spec.lots_to_qty(s.qty),
        filled: spec.lots_to_qty(s.qty.saturating_sub(s.remaining)),
        remaining: spec.lots_to_qty(s.remaining),
        pending: Decimal::ZERO,
        status: if lapsed {
            OrderStatus::Expired
        } else {
            OrderStatus::Open
        },
        reason: lapsed.then(|| "its expires_at has passed".to_string()),
        own: false,
        stale,
        created_ms: s.created_ms,
        updated_ms: s.created_ms,
        client_id: None,
        expires_at: s.expires_ms,
        fills: Vec::new(),
    }
}

pub(super) fn book(r: &Replica, depth: usize) -> BookInfo {
    let spec = &r.spec;
    let conv = |v: Vec<(crate::market::Price, Qty)>| {
        v.into_iter()
            .map(|(p, q)| (spec.ticks_to_price(p), spec.lots_to_qty(q)))
            .collect()
    };
    BookInfo {
        market: spec.name.clone(),
        bids: conv(r.depth(Side::Buy, depth)),
        asks: conv(r.depth(Side::Sell, depth)),
        digest: r.digest.to_hex(),
        orders: r.len(),
    }
}

pub(super) fn market(r: &Replica, synced: bool, own_open: usize) -> MarketInfo {
    MarketInfo {
        name: r.spec.name.clone(),
        tick: r.spec.tick,
        lot: r.spec.lot,
        topic: r.topic.clone(),
        digest: r.digest.to_hex(),
        orders: r.len(),
        own_open,
        synced,
    }
}

// ---------------------------------------------------------------- queries

use super::own::Own;
use super::{BadId, Digest, Engine, EngineError, ME};

impl Engine {
    /// The configured markets.
    pub fn markets(&self) -> impl Iterator<Item = &MarketSpec> {
        self.markets.iter().map(|m| &m.replica.spec)
    }

    /// The replicated book of a market, `depth` levels per side.
    pub fn book(&self, market: &str, depth: usize) -> Result<BookInfo, EngineError> {
        let mkt = self.market_idx(market)?;
        Ok(book(&self.markets[mkt].replica, depth))
    }

    /// The digest of a market's replicated book.
    pub fn digest(&self, market: &str) -> Result<Digest, EngineError> {
        Ok(self.markets[self.market_idx(market)?].replica.digest)
    }

    /// One order: any of ours, or one of the replica.
    pub fn order(&self, id: &str) -> Result<OrderInfo, EngineError> {
        let oid: OrderId = id
            .parse()
            .map_err(|e: BadId| EngineError::Invalid(e.to_string()))?;
        if oid.owner == self.me {
            let own = self
                .own
                .get(oid.seq)
                .ok_or_else(|| self.own_missing(id, oid.seq))?;
            return Ok(self.own_info(own));
        }
        let key = self
            .peers
            .key(&oid.owner)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        for m in self.markets.iter() {
            if let Some(o) = m.replica.get_by_id(key, oid.seq) {
                let lapsed = m
                    .replica
                    .key_of(key, oid.seq)
                    .is_some_and(|k| m.replica.is_lapsed(k));
                let stale = self.peers.is_stale(key);
                return Ok(remote_order(&m.replica, oid, o, stale, lapsed));
            }
        }
        Err(EngineError::NotFound(id.to_string()))
    }

    /// Own orders, newest first, optionally of one market and status.
    pub fn orders(
        &self,
        market: Option<&str>,
        status: Option<OrderStatus>,
        limit: usize,
    ) -> Result<Vec<OrderInfo>, EngineError> {
        self.orders_before(market, status, u64::MAX, limit)
    }

    /// Own orders held in memory (every live one and the recently done)
    /// with a sequence number below `before`, newest first.
    pub fn orders_before(
        &self,
        market: Option<&str>,
        status: Option<OrderStatus>,
        before: u64,
        limit: usize,
    ) -> Result<Vec<OrderInfo>, EngineError> {
        let mkt = market.map(|m| self.market_idx(m)).transpose()?;
        Ok(self
            .own
            .below(before)
            .rev()
            .filter(|o| mkt.is_none_or(|m| o.mkt == m))
            .filter(|o| status.is_none_or(|s| o.rec.status == s))
            .take(limit)
            .map(|o| self.own_info(o))
            .collect())
    }

    /// Recent trades this node knows, newest first.
    pub fn trades(
        &self,
        market: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TradeInfo>, EngineError> {
        let mut out = Vec::new();
        match market {
            Some(m) => {
                let r = &self.markets[self.market_idx(m)?].replica;
                out.extend(r.recent_trades().take(limit).map(|t| trade(&r.spec, t)));
            }
            None => {
                for m in self.markets.iter() {
                    let r = &m.replica;
                    out.extend(r.recent_trades().take(limit).map(|t| trade(&r.spec, t)));
                }
                out.sort_by(|a, b| b.ts_ms.cmp(&a.ts_ms).then_with(|| b.id.cmp(&a.id)));
                out.truncate(limit);
            }
        }
        Ok(out)
    }

    /// Per-market summary: digest, sizes, sync state.
    pub fn market_infos(&self) -> Vec<MarketInfo> {
        self.markets
            .iter()
            .map(|m| {
                let own_open = m.replica.owners.get(&ME).map_or(0, |o| o.live.len());
                market(&m.replica, m.book_sync == BookSync::Done, own_open)
            })
            .collect()
    }

    /// Every owner this node has heard of, with its staleness.
    pub fn owners(&self) -> Vec<OwnerInfo> {
        self.peers
            .others()
            .map(|(key, p)| OwnerInfo {
                peer_id: p.id.to_string(),
                stale: p.stale,
                last_heard_ms: p.last_heard,
                open_orders: self
                    .markets
                    .iter()
                    .map(|m| m.replica.owners.get(&key).map_or(0, |o| o.live.len()))
                    .sum(),
            })
            .collect()
    }

    /// Why one of our order ids is not here: one we handed out and let go
    /// of (the store has it, or had it), or one we never handed out.
    pub(super) fn own_missing(&self, id: &str, seq: u64) -> EngineError {
        if seq >= 1 && seq <= self.own.last_seq() {
            EngineError::NotHeld(id.to_string())
        } else {
            EngineError::NotFound(id.to_string())
        }
    }

    pub(super) fn own_info(&self, o: &Own) -> OrderInfo {
        let spec = &self.markets[o.mkt].replica.spec;
        own_order(spec, self.me, &o.rec, o.reserved(), &self.own.trades_of(o))
    }
}
