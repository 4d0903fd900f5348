//! What the engine shows the outside: orders, trades, books and counters in
//! the decimal units of their market, ready to serialise for the API.

use libp2p::PeerId;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::durable::{OrderKind, OrderStatus, OwnOrder, Tif, Trade};
use super::ids::OrderId;
use super::market::BookSync;
use super::replica::{RepOrder, Replica};
use crate::market::{MarketSpec, Qty, Side};

/// An order as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderInfo {
    pub id: String,
    pub market: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub kind: OrderKind,
    pub time_in_force: Tif,
    pub price: Option<Decimal>,
    pub quantity: Decimal,
    pub filled: Decimal,
    pub remaining: Decimal,
    /// Quantity asked of makers with no answer yet.
    pub pending: Decimal,
    pub status: OrderStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub own: bool,
    pub stale: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub fills: Vec<TradeInfo>,
}

/// A trade as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeInfo {
    pub id: String,
    pub market: String,
    pub maker_order_id: String,
    pub taker_order_id: String,
    /// The taker's side.
    pub side: Side,
    pub price: Decimal,
    pub quantity: Decimal,
    pub ts_ms: u64,
}

/// A market's replicated book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookInfo {
    pub market: String,
    pub bids: Vec<(Decimal, Decimal)>,
    pub asks: Vec<(Decimal, Decimal)>,
    pub digest: String,
    pub orders: usize,
}

/// A market's summary for the status page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketInfo {
    pub name: String,
    pub tick: Decimal,
    pub lot: Decimal,
    pub topic: String,
    pub digest: String,
    pub orders: usize,
    pub own_open: usize,
    pub synced: bool,
}

/// An owner this node has heard of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerInfo {
    pub peer_id: String,
    pub stale: bool,
    pub last_heard_ms: u64,
    pub open_orders: usize,
}

/// What the engine counted, for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub orders_placed: u64,
    pub orders_refused: u64,
    pub orders_rejected: u64,
    pub fills_maker: u64,
    pub fills_taker: u64,
    pub takes_sent: u64,
    pub takes_refused: u64,
    pub takes_refused_as_maker: u64,
    pub takes_in_doubt: u64,
    pub gossip_sent: u64,
    pub gossip_rejected: u64,
    pub gossip_ignored: u64,
    /// Gossip that arrived too late to apply (ignored, not penalised).
    pub gossip_late: u64,
    pub sync_requests: u64,
    pub sync_answers: u64,
    pub sync_pages: u64,
    pub owner_syncs: u64,
    pub owner_limit_hits: u64,
    pub owners_limit_hits: u64,
    pub gossip_rate_limited: u64,
    pub takes_rate_limited: u64,
    pub syncs_rate_limited: u64,
    /// Fill-or-kill holds granted by makers to our orders.
    pub fok_holds: u64,
    /// Fill-or-kill commits a maker refused (its hold had run out).
    pub fok_commits_refused: u64,
    /// Fill-or-kill orders given up after their holds (nothing filled).
    pub fok_aborted: u64,
    /// Messages of ours that could not be encoded (not sent).
    pub encode_failures: u64,
    /// Records refused because they do not verify as their owner's, by
    /// reason: no signature, a proof that leads nowhere, a signature that is
    /// not the owner's, an owner id without a key, records that disagree.
    pub records_refused_unsigned: u64,
    pub records_refused_bad_proof: u64,
    pub records_refused_bad_signature: u64,
    pub records_refused_no_key: u64,
    pub records_refused_inconsistent: u64,
    /// Peers banned for serving records that do not verify.
    pub peers_banned: u64,
    /// Messages refused because their sender speaks an older wire version.
    pub old_wire_refused: u64,
}

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
        fills: trades.iter().map(|t| trade(spec, t)).collect(),
    }
}

pub(super) fn remote_order(r: &Replica, id: OrderId, o: &RepOrder, stale: bool) -> OrderInfo {
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
        status: OrderStatus::Open,
        reason: None,
        own: false,
        stale,
        created_ms: s.created_ms,
        updated_ms: s.created_ms,
        client_id: None,
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
                .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
            return Ok(self.own_info(own));
        }
        let key = self
            .peers
            .key(&oid.owner)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        for m in self.markets.iter() {
            if let Some(o) = m.replica.get_by_id(key, oid.seq) {
                return Ok(remote_order(&m.replica, oid, o, self.peers.is_stale(key)));
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
        let mkt = market.map(|m| self.market_idx(m)).transpose()?;
        Ok(self
            .own
            .values()
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

    pub(super) fn own_info(&self, o: &Own) -> OrderInfo {
        let spec = &self.markets[o.mkt].replica.spec;
        own_order(spec, self.me, &o.rec, o.reserved(), &self.own.trades_of(o))
    }
}
