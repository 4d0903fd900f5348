//! What the engine shows the outside: orders, trades, books, markets,
//! owners and counters in the decimal units of their market, ready to
//! serialise for the API.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::durable::{OrderKind, OrderStatus, Tif};
use crate::market::Side;

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
    /// False when this node could not reach the order's owner lately: the
    /// order is not takeable from here for now (`engine/reach.rs`).
    #[serde(default = "yes")]
    pub reachable: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Good till this time (ms since the Unix epoch), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
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
    /// Of the levels above, the quantity at each that is this node's own
    /// (price, quantity), best first; levels without any are left out.
    #[serde(default)]
    pub own_bids: Vec<(Decimal, Decimal)>,
    #[serde(default)]
    pub own_asks: Vec<(Decimal, Decimal)>,
    /// Of the levels above, the quantity at each whose owner is stale (not
    /// heard from lately: shown, but not taken until it is heard again).
    #[serde(default)]
    pub stale_bids: Vec<(Decimal, Decimal)>,
    #[serde(default)]
    pub stale_asks: Vec<(Decimal, Decimal)>,
    /// Open orders in the whole book whose owner is stale.
    #[serde(default)]
    pub stale_orders: usize,
    /// The part of `bids` and `asks` (price, quantity) whose owners this
    /// node could not reach lately: not takeable from here for now.
    #[serde(default)]
    pub unreachable: UnreachableLevels,
}

/// Levels of orders whose owners this node cannot reach now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreachableLevels {
    pub bids: Vec<(Decimal, Decimal)>,
    pub asks: Vec<(Decimal, Decimal)>,
}

fn yes() -> bool {
    true
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
    /// Fills this node took part in on this market since it started, as
    /// maker and as taker.
    #[serde(default)]
    pub fills_maker: u64,
    #[serde(default)]
    pub fills_taker: u64,
}

/// An owner this node has heard of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerInfo {
    pub peer_id: String,
    pub stale: bool,
    pub last_heard_ms: u64,
    pub open_orders: usize,
    /// False when this node could not reach the owner lately.
    #[serde(default = "yes")]
    pub reachable: bool,
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
    /// Takes refused as maker because they came past their deadline.
    pub takes_late: u64,
    /// Takes of ours in doubt settled as not filled by their maker's
    /// heartbeat (`served_ms`), whoever relayed it.
    pub doubts_settled_by_heartbeat: u64,
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
