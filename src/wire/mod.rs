//! The wire: every message peerbook nodes exchange, and its one codec.
//!
//! Gossip messages, take requests and sync requests are CBOR (through
//! `cbor4ii`'s serde support: `serde_cbor` is unmaintained, RUSTSEC-2021-0127),
//! each in a versioned envelope. Nothing else in the crate encodes or decodes
//! wire bytes, so the codec can change in one place.
//!
//! Prices and quantities travel as integer ticks and lots: the market's
//! topic already pins its tick and lot sizes, so integers are exact and short.
//! Orders never name their owner: the owner of everything in a gossip message
//! is the message's signed source, so a peer cannot even express an order,
//! cancel or fill of somebody else's order.
//!
//! Since version 2 every gossip batch carries its author's own signature
//! over a Merkle root of its items (`proof.rs`), and every record in a sync
//! page carries its place in such a batch, so a record is verifiable as its
//! owner's whoever hands it on. Version 1 records (unsigned) are refused.

pub mod proof;

use libp2p::PeerId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::market::{Price, Qty, Side, MAX_UNITS};

/// Version of every envelope this node writes. A message with a newer version
/// is ignored (not penalised), so nodes can be upgraded one at a time; an
/// older one (version 1: unsigned records) is refused, and said so.
pub const WIRE_VERSION: u16 = 2;

/// The version field every envelope starts with, read before the rest so a
/// message of another version is told apart from a malformed one.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct Envelope {
    pub v: u16,
}

/// The version of an envelope, if the bytes carry one.
pub fn version_of(bytes: &[u8], limit: usize) -> Option<u16> {
    decode::<Envelope>(bytes, limit).ok().map(|e| e.v)
}

/// Why bytes from the wire could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("unsupported wire version {0}")]
    Version(u16),
    #[error("cannot encode the message: {0}")]
    Encode(String),
}

/// How large what travels on the wire may be. One set for both ends: the
/// network enforces it on gossipsub and on request-response streams, and
/// the engine decodes nothing larger. It comes from the `[net]` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireLimits {
    /// A gossip message.
    pub gossip: usize,
    /// A take or sync request.
    pub request: usize,
    /// An answer to a request (sync pages are the large ones).
    pub response: usize,
}

impl Default for WireLimits {
    fn default() -> Self {
        WireLimits {
            gossip: 1024 * 1024,
            request: 64 * 1024,
            response: 8 * 1024 * 1024,
        }
    }
}

/// Encode any wire message. It fails only if the message cannot be
/// represented at all (never for the messages of this module): the caller
/// must then send nothing, never empty bytes.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    cbor4ii::serde::to_vec(Vec::new(), msg).map_err(|e| WireError::Encode(e.to_string()))
}

/// Decode a wire message of at most `limit` bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, WireError> {
    if bytes.len() > limit {
        return Err(WireError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    cbor4ii::serde::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))
}

// ---------------------------------------------------------------- gossip

/// One gossip message: a batch of items about one market, all by the source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gossip {
    pub v: u16,
    pub market: String,
    /// When the source sent it (ms since the Unix epoch); far from the
    /// receiver's clock means a replay or a broken clock, and is refused.
    pub sent_ms: u64,
    pub items: Vec<Item>,
    /// The source's signature over the batch (see `proof.rs`).
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

impl Gossip {
    /// A batch of items signed by `key`, with each item's proof.
    pub fn signed(
        key: &libp2p::identity::Keypair,
        market: &str,
        sent_ms: u64,
        items: Vec<Item>,
    ) -> (Gossip, Vec<proof::Stored>) {
        let (sig, stored) = proof::sign_batch(key, market, sent_ms, &items);
        let g = Gossip {
            v: WIRE_VERSION,
            market: market.to_string(),
            sent_ms,
            items,
            sig,
        };
        (g, stored)
    }
}

/// Something the source says about its own orders on the market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Item {
    /// A resting order of the source, with its current state.
    Order(OrderState),
    /// The source cancelled its order `seq`: a tombstone.
    Cancel { seq: u64 },
    /// The source, as maker, filled its order.
    Fill(FillMsg),
    /// The source's periodic summary of its open orders on the market.
    Heartbeat(Heartbeat),
}

/// The replicated state of one resting order. `ver` orders the owner's
/// updates: a replica keeps the highest version it has seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub seq: u64,
    pub side: Side,
    pub price: Price,
    /// Original quantity.
    pub qty: Qty,
    /// What is left to fill.
    pub remaining: Qty,
    pub ver: u64,
    pub created_ms: u64,
    /// Good till this time (ms since the Unix epoch): from then on no
    /// replica counts it as liquidity, whether or not its cancel has come.
    pub expires_ms: Option<u64>,
}

impl OrderState {
    /// Why the order's price or quantities cannot be, if they cannot
    /// (whoever sent it, by gossip or in a sync answer).
    pub fn out_of_range(&self) -> Option<&'static str> {
        if self.price.0 == 0 || self.price.0 > MAX_UNITS {
            return Some("order price out of range");
        }
        if self.qty.is_zero() || self.qty.0 > MAX_UNITS || self.remaining > self.qty {
            return Some("order quantity out of range");
        }
        if self.expires_ms.is_some_and(|at| at <= self.created_ms) {
            return Some("order expires before it was placed");
        }
        None
    }
}

/// A fill of the source's order `maker_seq`, as the maker decided it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillMsg {
    pub maker_seq: u64,
    /// The maker order's fill sequence number: the trade id is
    /// `<maker order id>/<fill_seq>`.
    pub fill_seq: u64,
    /// The maker's fill counter on this market, for fill-log repair.
    pub mseq: u64,
    pub maker_side: Side,
    pub price: Price,
    pub qty: Qty,
    /// The maker order's state after the fill.
    pub maker_remaining: Qty,
    pub maker_ver: u64,
    pub taker: PeerId,
    pub taker_seq: u64,
    /// Which of the taker order's takes this answers.
    pub take_n: u32,
    pub ts_ms: u64,
}

impl FillMsg {
    /// Whether the fill's numbers can be (whoever sent it, by gossip or in
    /// a sync answer).
    pub fn in_range(&self) -> bool {
        !self.qty.is_zero()
            && self.qty.0 <= MAX_UNITS
            && self.price.0 != 0
            && self.price.0 <= MAX_UNITS
            && self.maker_remaining.0 <= MAX_UNITS
            && self.fill_seq != 0
            && self.mseq != 0
    }
}

/// An owner's summary of its open orders on one market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub open: u64,
    /// Digest of the owner's open orders (see `engine::digest`).
    pub digest: [u8; 16],
    /// Every order of the owner with a sequence number at or below this is
    /// either among the open ones or gone for good.
    pub watermark: u64,
    /// How many fills the owner has made as maker on this market.
    pub fills: u64,
    /// The owner's statement of the takes it served (ms since the Unix
    /// epoch, by its clock): every take request it answered before this
    /// time is either among the `fills` or was not filled, and from this
    /// time on it refuses every take whose deadline is at or before it. A
    /// taker whose take is in doubt and whose deadline is at or before this
    /// time, and who holds all `fills`, knows the take was not filled,
    /// whichever peer relayed the heartbeat. 0 says nothing (an older node).
    #[serde(default)]
    pub served_ms: u64,
}

// ---------------------------------------------------------------- takes

/// Request-response `/peerbook/take/1`: a taker asks a maker to fill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeRequest {
    pub v: u16,
    pub market: String,
    pub maker_seq: u64,
    /// The taker's order (its owner is the requesting peer).
    pub taker_seq: u64,
    /// Number of this take among the taker order's takes: with the taker
    /// and its order, the take's id. The maker answers a repeated id with
    /// the first answer, never a second fill.
    pub take_n: u32,
    pub kind: TakeKind,
    /// A fill or commit is good until this time by the maker's clock (ms
    /// since the Unix epoch): from then on the maker refuses it as `Late`,
    /// which its heartbeats' `served_ms` then vouches for.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TakeKind {
    /// Fill up to `qty` if the maker's price is within `limit`.
    Fill {
        side: Side,
        limit: Option<Price>,
        qty: Qty,
    },
    /// The taker never got an answer: what became of this take? The maker
    /// answers from its records only and never fills on a status request.
    Status,
    /// Fill-or-kill, first round: set aside up to `qty` for this take id for
    /// a short time (`Held`), so the taker can learn whether the whole order
    /// can be filled before anything is.
    Hold {
        side: Side,
        limit: Option<Price>,
        qty: Qty,
    },
    /// Fill-or-kill, second round: fill what this take id holds.
    Commit,
    /// Fill-or-kill gave up: drop what this take id holds.
    Release,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TakeResponse {
    Filled(FillMsg),
    Refused(Refusal),
    /// This much is set aside for the take id until a commit, a release, or
    /// the hold's time runs out.
    Held {
        qty: Qty,
    },
    Released,
}

/// Why a maker did not fill a take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    UnknownMarket,
    UnknownOrder,
    /// The order is filled or cancelled.
    Done,
    /// Nothing of the order is free right now.
    NoQuantity,
    /// The order's price is outside the taker's limit.
    Price,
    /// The taker named itself as maker.
    SelfTrade,
    /// The maker cannot make fills durable now.
    Storage,
    /// The maker is refusing this peer's takes for now (rate limit).
    Busy,
    /// A status request for a take the maker never filled.
    NotFilled,
    /// A commit for a hold that ran out (or never was).
    NoHold,
    BadRequest,
    /// The take came at or after its deadline.
    Late,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownMarket => "unknown market",
            Refusal::UnknownOrder => "unknown order",
            Refusal::Done => "order is done",
            Refusal::NoQuantity => "no quantity free",
            Refusal::Price => "price outside the limit",
            Refusal::SelfTrade => "self trade",
            Refusal::Storage => "maker storage unavailable",
            Refusal::Busy => "maker busy",
            Refusal::NotFilled => "not filled",
            Refusal::NoHold => "no hold (it expired)",
            Refusal::BadRequest => "bad request",
            Refusal::Late => "past its deadline",
        }
    }
}

// ---------------------------------------------------------------- sync

/// Request-response `/peerbook/sync/1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub v: u16,
    pub market: String,
    pub what: SyncWhat,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncWhat {
    /// Every owner's open orders, ordered by (owner, seq), after a cursor.
    Book { after: Option<(PeerId, u64)> },
    /// One owner's open orders with a sequence number above `after`.
    Owner { owner: PeerId, after: u64 },
    /// One owner's fills as maker with `mseq >= from`.
    Fills { owner: PeerId, from: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    Book(BookPage),
    Owner(OwnerPage),
    Fills(FillsPage),
    Refused(SyncRefusal),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRefusal {
    UnknownMarket,
    Busy,
    BadRequest,
}

/// An open order as its owner signed it: the order item that fixed its
/// side, price, quantity and times (at some version), and the owner's last
/// fill of it when that is newer (its remaining quantity and version).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenOrder {
    pub order: proof::Proven<OrderState>,
    pub fill: Option<proof::Proven<FillMsg>>,
}

impl ProvenOrder {
    /// The order's current state, if the two records are of one order.
    pub fn state(&self) -> Option<OrderState> {
        let mut st = self.order.item.clone();
        if let Some(f) = &self.fill {
            let f = &f.item;
            let same = f.maker_seq == st.seq
                && f.maker_side == st.side
                && f.price == st.price
                && f.maker_remaining <= st.qty
                && f.maker_ver > st.ver;
            if !same {
                return None;
            }
            st.remaining = f.maker_remaining;
            st.ver = f.maker_ver;
        }
        Some(st)
    }
}

/// A page of the whole book. Every record's proof points into `batches`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookPage {
    pub batches: Vec<proof::BatchSig>,
    pub owners: Vec<OwnerOrders>,
    /// Recent fills of the market, with their makers (first page only).
    pub fills: Vec<(PeerId, proof::Proven<FillMsg>)>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<(PeerId, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerOrders {
    pub owner: PeerId,
    pub orders: Vec<ProvenOrder>,
}

/// A page of one owner's open orders with `after < seq <= upto`. When the
/// answer comes from the owner itself, every order in that range that is
/// neither in the page nor `pending` (still taking, its state not yet
/// published) is gone for good: the page replaces what the asker held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerPage {
    pub owner: PeerId,
    pub after: u64,
    pub upto: u64,
    pub pending: Vec<u64>,
    pub batches: Vec<proof::BatchSig>,
    pub orders: Vec<ProvenOrder>,
    /// More pages follow (ask again with `after = upto`).
    pub more: bool,
}

/// One owner's fills as maker, ascending by `mseq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillsPage {
    pub owner: PeerId,
    pub batches: Vec<proof::BatchSig>,
    pub fills: Vec<proof::Proven<FillMsg>>,
    /// The oldest `mseq` the responder still holds (older ones are gone).
    pub oldest: u64,
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gossip_batch_survives_the_round_trip() {
        let g = Gossip {
            v: WIRE_VERSION,
            market: "BTC-USD".into(),
            sent_ms: 1,
            items: vec![
                Item::Order(OrderState {
                    seq: 7,
                    side: Side::Buy,
                    price: Price(100),
                    qty: Qty(5),
                    remaining: Qty(5),
                    ver: 0,
                    created_ms: 3,
                    expires_ms: None,
                }),
                Item::Cancel { seq: 6 },
                Item::Heartbeat(Heartbeat {
                    open: 1,
                    digest: [9; 16],
                    watermark: 7,
                    fills: 0,
                    served_ms: 11,
                }),
            ],
            sig: vec![1; 64],
        };
        let bytes = encode(&g).unwrap();
        assert_eq!(decode::<Gossip>(&bytes, 1 << 20).unwrap(), g);
    }

    #[test]
    fn garbage_and_oversized_input_are_errors_not_panics() {
        assert!(matches!(
            decode::<Gossip>(&[0xff, 0x00, 0x13], 1 << 20),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            decode::<Gossip>(&[0u8; 64], 10),
            Err(WireError::TooLarge { .. })
        ));
        // An array header that claims 2^32 elements must not allocate them.
        let hostile = [0x84, 0x01, 0x60, 0x01, 0x9b, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(decode::<Gossip>(&hostile, 1 << 20).is_err());
    }
}
