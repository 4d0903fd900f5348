//! What the engine keeps durably, and the writes it asks for.
//!
//! The engine never touches the disk: it emits `Action::Persist` with a list
//! of `Op`s and holds back everything that depends on them (the answer to a
//! take, the fill it publishes, the reply to the user) until the driver says
//! the batch is durable. At start it is rebuilt from a `Snapshot` of the same
//! records. The store (`crate::store`) and the simulated store of the engine
//! tests implement the same small set of operations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::{OrderId, TradeId};
use crate::market::{Price, Qty, Side};

/// Limit or market order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderKind {
    Limit,
    Market,
}

/// Time in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tif {
    /// Good till cancelled: what is not filled at once rests.
    Gtc,
    /// Immediate or cancel: what is not filled at once is dropped.
    Ioc,
    /// Fill or kill: refused whole unless the book shows enough to fill it.
    Fok,
    /// Refused if it would take; otherwise rests.
    PostOnly,
}

/// Where an own order is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Taking liquidity from makers; not on the book yet.
    Taking,
    /// On the book (possibly partly filled).
    Open,
    Filled,
    Cancelled,
    /// An IOC, FOK or market order whose rest was dropped.
    Expired,
    /// Refused whole (post-only that would take, FOK that cannot fill).
    Rejected,
}

impl OrderStatus {
    /// Whether nothing more can happen to the order (but late answers to
    /// takes that were in doubt, which only ever add fills).
    pub fn is_done(self) -> bool {
        !matches!(self, OrderStatus::Taking | OrderStatus::Open)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Taking => "taking",
            OrderStatus::Open => "open",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
            OrderStatus::Rejected => "rejected",
        }
    }
}

/// One of this node's orders, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnOrder {
    pub seq: u64,
    pub market: String,
    pub side: Side,
    pub kind: OrderKind,
    pub tif: Tif,
    pub price: Option<Price>,
    pub qty: Qty,
    pub filled: Qty,
    /// Version of the published state (bumped on every published change).
    pub ver: u64,
    /// Fills of this order as maker (the last part of their trade ids).
    pub fill_seq: u64,
    /// Takes this order has sent (the next take number).
    pub takes: u32,
    pub status: OrderStatus,
    pub reason: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub client_id: Option<String>,
    /// Good till this time (ms since the Unix epoch), if the user said so.
    #[serde(default)]
    pub expires_ms: Option<u64>,
}

impl OwnOrder {
    pub fn remaining(&self) -> Qty {
        self.qty.saturating_sub(self.filled)
    }
}

/// A fill, as both sides and every replica know it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub id: TradeId,
    pub market: String,
    pub maker_side: Side,
    pub price: Price,
    pub qty: Qty,
    pub taker: OrderId,
    pub take_n: u32,
    /// The maker's fill counter on this market.
    pub mseq: u64,
    /// The maker order's remaining quantity and version after this fill.
    pub maker_remaining: Qty,
    pub maker_ver: u64,
    pub ts_ms: u64,
}

impl Trade {
    /// The fill message that states this trade, as its maker gossips it.
    pub fn fill_msg(&self) -> crate::wire::FillMsg {
        crate::wire::FillMsg {
            maker_seq: self.id.maker.seq,
            fill_seq: self.id.fill_seq,
            mseq: self.mseq,
            maker_side: self.maker_side,
            price: self.price,
            qty: self.qty,
            maker_remaining: self.maker_remaining,
            maker_ver: self.maker_ver,
            taker: self.taker.owner,
            taker_seq: self.taker.seq,
            take_n: self.take_n,
            ts_ms: self.ts_ms,
        }
    }

    /// The trade a maker's fill of its own order states (the fill's
    /// source is the maker).
    pub fn of_fill(maker: libp2p::PeerId, market: &str, f: &crate::wire::FillMsg) -> Trade {
        Trade {
            id: TradeId {
                maker: OrderId::new(maker, f.maker_seq),
                fill_seq: f.fill_seq,
            },
            market: market.to_string(),
            maker_side: f.maker_side,
            price: f.price,
            qty: f.qty,
            taker: OrderId::new(f.taker, f.taker_seq),
            take_n: f.take_n,
            mseq: f.mseq,
            maker_remaining: f.maker_remaining,
            maker_ver: f.maker_ver,
            ts_ms: f.ts_ms,
        }
    }
}

/// A take this node sent and has no answer for yet: it may or may not have
/// been filled, so its quantity stays reserved until the maker says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeIntent {
    pub taker_seq: u64,
    pub n: u32,
    pub market: String,
    pub maker: OrderId,
    pub qty: Qty,
    /// The take's deadline on the maker's clock and the maker's fills
    /// known when it left (`takes::Settle`): after a restart the maker's
    /// heartbeats can still settle it. Intents written before these were
    /// kept have neither, and are settled by status requests only.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    #[serde(default)]
    pub fills_before: u64,
}

/// One durable write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Insert or replace an own order.
    PutOrder(OwnOrder),
    /// Record a fill this node took part in (as maker or taker).
    PutTrade(Trade),
    PutIntent(TakeIntent),
    DelIntent {
        taker_seq: u64,
        n: u32,
    },
    /// No order sequence number below this has been or will be handed out
    /// by an earlier run: the next run starts here.
    ReserveSeq(u64),
}

/// Everything the engine is rebuilt from at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub orders: BTreeMap<u64, OwnOrder>,
    pub trades: BTreeMap<TradeId, Trade>,
    pub intents: BTreeMap<(u64, u32), TakeIntent>,
    pub reserved_seq: u64,
    /// This node's highest fill counter as maker, per market (its trades
    /// may be older than the store keeps).
    pub mseq: BTreeMap<String, u64>,
}

impl Snapshot {
    /// Apply a batch of writes, as a store does. Used by stores that keep
    /// their state in memory (the engine's simulation tests).
    pub fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::PutOrder(o) => {
                    self.orders.insert(o.seq, o.clone());
                }
                Op::PutTrade(t) => {
                    self.trades.entry(t.id).or_insert_with(|| t.clone());
                }
                Op::PutIntent(i) => {
                    self.intents.insert((i.taker_seq, i.n), i.clone());
                }
                Op::DelIntent { taker_seq, n } => {
                    self.intents.remove(&(*taker_seq, *n));
                }
                Op::ReserveSeq(s) => self.reserved_seq = self.reserved_seq.max(*s),
            }
        }
    }
}

// ---- names, as the API, the CLI and the wire spell them ------------------

impl std::fmt::Display for OrderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OrderKind::Limit => "limit",
            OrderKind::Market => "market",
        })
    }
}

/// `limit` or `market`, in any case.
impl std::str::FromStr for OrderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "limit" => Ok(OrderKind::Limit),
            "market" => Ok(OrderKind::Market),
            other => Err(format!("type must be limit or market, got {other:?}")),
        }
    }
}

impl std::fmt::Display for Tif {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tif::Gtc => "gtc",
            Tif::Ioc => "ioc",
            Tif::Fok => "fok",
            Tif::PostOnly => "post-only",
        })
    }
}

/// `gtc`, `ioc`, `fok` or `post-only` (also `post_only`, `postonly`), in
/// any case.
impl std::str::FromStr for Tif {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "gtc" => Ok(Tif::Gtc),
            "ioc" => Ok(Tif::Ioc),
            "fok" => Ok(Tif::Fok),
            "post-only" | "postonly" => Ok(Tif::PostOnly),
            other => Err(format!(
                "time_in_force must be gtc, ioc, fok or post-only, got {other:?}"
            )),
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status by its name (also `canceled`), in any case.
impl std::str::FromStr for OrderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "taking" => OrderStatus::Taking,
            "open" => OrderStatus::Open,
            "filled" => OrderStatus::Filled,
            "cancelled" | "canceled" => OrderStatus::Cancelled,
            "expired" => OrderStatus::Expired,
            "rejected" => OrderStatus::Rejected,
            other => {
                return Err(format!(
                    "status must be taking, open, filled, cancelled, expired or rejected, got {other:?}"
                ))
            }
        })
    }
}
