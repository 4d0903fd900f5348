//! The engine's queries, and how its state becomes what the outside sees
//! (`info.rs`): orders, trades, books in the decimal units of their market.

use libp2p::PeerId;
use rust_decimal::Decimal;

use super::durable::{OrderKind, OrderStatus, OwnOrder, Tif, Trade};
use super::ids::OrderId;
use super::info::{BookInfo, MarketInfo, OrderInfo, OwnerInfo, TradeInfo, UnreachableLevels};
use super::market::BookSync;
use super::replica::{RepOrder, Replica};
use crate::book::OwnerKey;
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
        reachable: true,
        created_ms: o.created_ms,
        updated_ms: o.updated_ms,
        client_id: o.client_id.clone(),
        expires_at: o.expires_ms,
        fills: trades.iter().map(|t| trade(spec, t)).collect(),
    }
}

/// A replicated order; `lapsed`: past its expiry here, its owner's word
/// that it ended not yet come; `reachable`: this node could reach its
/// owner lately (`reach.rs`). Its fills are the ones among the replica's
/// recent trades (the window of `engine.recent_fills`), oldest first, and
/// it was last updated by the latest of them.
pub(super) fn remote_order(
    r: &Replica,
    id: OrderId,
    o: &RepOrder,
    stale: bool,
    lapsed: bool,
    reachable: bool,
) -> OrderInfo {
    let spec = &r.spec;
    let s = &o.state;
    let mut fills: Vec<TradeInfo> = r
        .recent_trades()
        .filter(|t| t.id.maker == id)
        .map(|t| trade(spec, t))
        .collect();
    fills.reverse();
    let updated_ms = fills.iter().map(|f| f.ts_ms).fold(s.created_ms, u64::max);
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
        reachable,
        created_ms: s.created_ms,
        updated_ms,
        client_id: None,
        expires_at: s.expires_ms,
        fills,
    }
}

pub(super) fn book(r: &Replica, depth: usize, is_stale: impl Fn(OwnerKey) -> bool) -> BookInfo {
    let spec = &r.spec;
    let conv = |v: Vec<(crate::market::Price, Qty)>| {
        v.into_iter()
            .map(|(p, q)| (spec.ticks_to_price(p), spec.lots_to_qty(q)))
            .collect()
    };
    // Within the levels shown: how much of each is ours, and how much is
    // of owners gone stale (not taken until they are heard from again).
    let marked = |side: Side| {
        let (mut own, mut stale) = (Vec::new(), Vec::new());
        let mut levels = 0;
        let mut last = None;
        for o in r.book.iter_side(side) {
            if last != Some(o.price) {
                levels += 1;
                if levels > depth {
                    break;
                }
                last = Some(o.price);
            }
            let add = |v: &mut Vec<(crate::market::Price, Qty)>| match v.last_mut() {
                Some((p, q)) if *p == o.price => *q = Qty(q.0 + o.remaining.0),
                _ => v.push((o.price, o.remaining)),
            };
            if o.owner == ME {
                add(&mut own);
            } else if is_stale(o.owner) {
                add(&mut stale);
            }
        }
        (conv(own), conv(stale))
    };
    let (own_bids, stale_bids) = marked(Side::Buy);
    let (own_asks, stale_asks) = marked(Side::Sell);
    let stale_orders = r
        .owners
        .iter()
        .filter(|(k, _)| is_stale(**k))
        .map(|(_, rep)| rep.live.len())
        .sum();
    BookInfo {
        market: spec.name.clone(),
        bids: conv(r.depth(Side::Buy, depth)),
        asks: conv(r.depth(Side::Sell, depth)),
        digest: r.digest.to_hex(),
        orders: r.len(),
        own_bids,
        own_asks,
        stale_bids,
        stale_asks,
        stale_orders,
        unreachable: UnreachableLevels::default(),
    }
}

pub(super) fn market(r: &Replica, synced: bool, own_open: usize, fills: [u64; 2]) -> MarketInfo {
    MarketInfo {
        name: r.spec.name.clone(),
        tick: r.spec.tick,
        lot: r.spec.lot,
        topic: r.topic.clone(),
        digest: r.digest.to_hex(),
        orders: r.len(),
        own_open,
        synced,
        fills_maker: fills[0],
        fills_taker: fills[1],
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
        let r = &self.markets[mkt].replica;
        let mut info = book(r, depth, |k| self.peers.is_stale(k));
        let spec = &r.spec;
        let levels = |side: Side| {
            let mut out: Vec<(Decimal, Decimal)> = Vec::new();
            let mut last: Option<crate::market::Price> = None;
            let mut seen = 0;
            for v in r.book.iter_side(side) {
                if last != Some(v.price) {
                    seen += 1;
                    if seen > depth {
                        break;
                    }
                }
                if self.owner_unreachable(v.owner) {
                    let (p, q) = (spec.ticks_to_price(v.price), spec.lots_to_qty(v.remaining));
                    match out.last_mut() {
                        Some((lp, lq)) if *lp == p => *lq += q,
                        _ => out.push((p, q)),
                    }
                }
                last = Some(v.price);
            }
            out
        };
        info.unreachable = UnreachableLevels {
            bids: levels(Side::Buy),
            asks: levels(Side::Sell),
        };
        Ok(info)
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
                let reachable = !self.owner_unreachable(key);
                return Ok(remote_order(&m.replica, oid, o, stale, lapsed, reachable));
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
        self.trades_between(market, None, None, limit)
    }

    /// The newest `limit` recent trades with a time before `before` and
    /// after `after` (both exclusive), newest first. Only those are
    /// copied: a candle or trade page asks for a window of the recent
    /// trades, and copying all of them for each request held the engine up.
    pub fn trades_between(
        &self,
        market: Option<&str>,
        before: Option<u64>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TradeInfo>, EngineError> {
        let window = |r: &Replica| -> Vec<TradeInfo> {
            r.recent_trades()
                .filter(|t| before.is_none_or(|b| t.ts_ms < b) && after.is_none_or(|a| t.ts_ms > a))
                .take(limit)
                .map(|t| trade(&r.spec, t))
                .collect()
        };
        if let Some(m) = market {
            return Ok(window(&self.markets[self.market_idx(m)?].replica));
        }
        let mut out: Vec<TradeInfo> = self
            .markets
            .iter()
            .flat_map(|m| window(&m.replica))
            .collect();
        out.sort_by(|a, b| b.ts_ms.cmp(&a.ts_ms).then_with(|| b.id.cmp(&a.id)));
        out.truncate(limit);
        Ok(out)
    }

    /// Per-market summary: digest, sizes, sync state.
    pub fn market_infos(&self) -> Vec<MarketInfo> {
        self.markets
            .iter()
            .map(|m| {
                let own_open = m.replica.owners.get(&ME).map_or(0, |o| o.live.len());
                market(&m.replica, m.book_sync == BookSync::Done, own_open, m.fills)
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
                reachable: !self.owner_unreachable(key),
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
