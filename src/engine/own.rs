//! This node's own orders: their durable records, what is asked of makers
//! and held for takers on each, their taking phase, and the sequence
//! numbers and client ids they are known by.
//!
//! Quantity of an own order is in one of four places: filled, *reserved*
//! (asked of makers and not answered, in flight or in doubt, or held by
//! makers for a fill-or-kill commit: the taker's side), *holding* (set
//! aside for fill-or-kill takers of this order as maker: the maker's side),
//! or free. Each side changes only its own part, through the methods here,
//! and the sum never passes the order's quantity.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use super::durable::{OrderStatus, OwnOrder, Trade};
use super::ids::{TakeId, TradeId};
use super::proven::StateProof;
use super::taking::Taking;
use super::Millis;
use crate::book::OrderKey;
use crate::market::{Price, Qty};
use crate::wire::OrderState;

/// Sequence numbers are reserved durably in blocks of this size, so no id
/// is handed out twice even when a write fails and the node restarts.
const SEQ_BLOCK: u64 = 1024;

/// One of this node's orders and its working state.
#[derive(Clone, Debug)]
pub(super) struct Own {
    pub rec: OwnOrder,
    pub mkt: usize,
    reserved: Qty,
    holding: Qty,
    pub taking: Option<Taking>,
    pub trades: Vec<TradeId>,
    /// The state last put in the gossip stream, if any.
    pub published: Option<OrderState>,
    /// Our signed records of the published state, once its batch went out.
    pub proof: Option<StateProof>,
    /// Maker orders tried and refused, with the maker version and the time:
    /// not tried again until their state changes or a while has passed.
    pub tried: HashMap<OrderKey, (u64, Millis)>,
}

impl Own {
    pub fn new(rec: OwnOrder, mkt: usize, taking: Option<Taking>) -> Own {
        Own {
            rec,
            mkt,
            reserved: Qty::ZERO,
            holding: Qty::ZERO,
            taking,
            trades: Vec::new(),
            published: None,
            proof: None,
            tried: HashMap::new(),
        }
    }

    /// What is neither filled, asked of makers, nor held for takers.
    pub fn free(&self) -> Qty {
        self.rec
            .remaining()
            .saturating_sub(self.reserved)
            .saturating_sub(self.holding)
    }

    /// Quantity asked of makers with no answer yet (shown as `pending`).
    pub fn reserved(&self) -> Qty {
        self.reserved
    }

    /// Quantity set aside for fill-or-kill takers.
    #[cfg(any(test, feature = "testkit"))]
    pub fn holding(&self) -> Qty {
        self.holding
    }

    /// The taker's side: ask makers for `q` more.
    pub fn reserve(&mut self, q: Qty) {
        self.reserved += q;
    }

    /// The taker's side: `q` asked of a maker is answered (or given up).
    pub fn unreserve(&mut self, q: Qty) {
        self.reserved = self.reserved.saturating_sub(q);
    }

    /// The maker's side: set `q` aside for a fill-or-kill taker.
    pub fn set_aside(&mut self, q: Qty) {
        self.holding += q;
    }

    /// The maker's side: a hold of `q` is committed, released or ran out.
    pub fn give_back(&mut self, q: Qty) {
        self.holding = self.holding.saturating_sub(q);
    }

    /// Whether takes of this order may still be in doubt or in flight.
    pub fn has_reserved(&self) -> bool {
        !self.reserved.is_zero()
    }

    /// The replicated state of the order, as gossip carries it.
    pub fn state(&self) -> OrderState {
        OrderState {
            seq: self.rec.seq,
            side: self.rec.side,
            price: self.rec.price.unwrap_or(Price(0)),
            qty: self.rec.qty,
            remaining: self.rec.remaining(),
            ver: self.rec.ver,
            created_ms: self.rec.created_ms,
            expires_ms: self.rec.expires_ms,
        }
    }

    /// Whether the order rests and could take from a crossing order.
    pub fn can_resolve_crossing(&self) -> bool {
        self.rec.status == OrderStatus::Open && self.taking.is_none() && !self.free().is_zero()
    }
}

/// Every own order, the sequence numbers they are given, the client ids
/// they were placed with, and the trades they made.
pub(super) struct OwnOrders {
    orders: BTreeMap<u64, Own>,
    client_ids: HashMap<String, u64>,
    /// The fills of the orders held here, as maker or taker.
    trades: HashMap<TradeId, Trade>,
    /// Done orders held here, oldest done first: beyond a window they are
    /// let go (the store keeps them).
    done: VecDeque<u64>,
    in_done: HashSet<u64>,
    next_seq: u64,
    /// No sequence number at or above this is durably reserved yet.
    reserved_seq: u64,
    /// Orders with an expiry, by when they expire.
    expiring: BTreeSet<(Millis, u64)>,
}

impl OwnOrders {
    pub fn new() -> OwnOrders {
        OwnOrders {
            orders: BTreeMap::new(),
            client_ids: HashMap::new(),
            trades: HashMap::new(),
            done: VecDeque::new(),
            in_done: HashSet::new(),
            next_seq: 1,
            reserved_seq: 0,
            expiring: BTreeSet::new(),
        }
    }

    /// Start numbering after what a previous run used or reserved.
    pub fn resume_numbering(&mut self, max_seq: u64, reserved_seq: u64) {
        self.next_seq = (max_seq + 1).max(reserved_seq).max(1);
    }

    /// The sequence number of the next new order.
    pub fn alloc_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// The highest sequence number handed out so far.
    pub fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// A new block of sequence numbers to reserve durably, when the next
    /// one handed out would pass what is reserved.
    pub fn reservation_due(&mut self) -> Option<u64> {
        if self.next_seq + 1 > self.reserved_seq {
            self.reserved_seq = self.next_seq + SEQ_BLOCK;
            return Some(self.reserved_seq);
        }
        None
    }

    pub fn insert(&mut self, own: Own) {
        if let Some(c) = &own.rec.client_id {
            self.client_ids.insert(c.clone(), own.rec.seq);
        }
        if let Some(at) = own.rec.expires_ms {
            if !own.rec.status.is_done() {
                self.expiring.insert((at, own.rec.seq));
            }
        }
        self.orders.insert(own.rec.seq, own);
    }

    pub fn get(&self, seq: u64) -> Option<&Own> {
        self.orders.get(&seq)
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Own> {
        self.orders.get_mut(&seq)
    }

    /// The orders whose expiry is at or before `now`, taken off the list
    /// (done or not: the caller looks).
    pub fn expiring_by(&mut self, now: Millis) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(&(at, seq)) = self.expiring.first() {
            if at > now {
                break;
            }
            self.expiring.pop_first();
            out.push(seq);
        }
        out
    }

    /// The taking phase of an order, if it is in one.
    pub fn taking_mut(&mut self, seq: u64) -> Option<&mut Taking> {
        self.orders.get_mut(&seq).and_then(|o| o.taking.as_mut())
    }

    /// The order first placed with this client id.
    pub fn by_client_id(&self, client_id: &str) -> Option<&Own> {
        self.client_ids
            .get(client_id)
            .and_then(|s| self.orders.get(s))
    }

    #[cfg(any(test, feature = "testkit"))]
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Own> {
        self.orders.values()
    }

    /// Own orders with a sequence number below `before`, ascending.
    pub fn below(&self, before: u64) -> impl DoubleEndedIterator<Item = &Own> {
        self.orders.range(..before).map(|(_, o)| o)
    }

    /// Own orders with a sequence number above `after`, ascending.
    pub fn after(&self, after: u64) -> impl Iterator<Item = &Own> {
        self.orders.range(after.saturating_add(1)..).map(|(_, o)| o)
    }

    pub fn trade(&self, id: &TradeId) -> Option<&Trade> {
        self.trades.get(id)
    }

    pub fn has_trade(&self, id: &TradeId) -> bool {
        self.trades.contains_key(id)
    }

    pub fn record_trade(&mut self, t: Trade) {
        self.trades.insert(t.id, t);
    }

    /// Every trade of ours, in no particular order.
    pub fn all_trades(&self) -> impl Iterator<Item = &Trade> {
        self.trades.values()
    }

    /// An order's trades, oldest first.
    pub fn trades_of(&self, o: &Own) -> Vec<&Trade> {
        o.trades
            .iter()
            .filter_map(|id| self.trades.get(id))
            .collect()
    }

    /// An order is done: it joins the window of done orders kept here.
    pub fn note_done(&mut self, seq: u64) {
        if let Some(at) = self.orders.get(&seq).and_then(|o| o.rec.expires_ms) {
            self.expiring.remove(&(at, seq));
        }
        if self.in_done.insert(seq) {
            self.done.push_back(seq);
        }
    }

    /// Let go of the oldest done orders beyond `keep`, with their trades;
    /// an order with takes still in doubt (its quantity reserved) stays.
    /// The takes their trades filled (for the maker's ledger, which
    /// forgets them too).
    pub fn evict_done(&mut self, keep: usize) -> Vec<TakeId> {
        let mut takes = Vec::new();
        let mut tries = self.done.len();
        while self.done.len() > keep && tries > 0 {
            tries -= 1;
            let Some(seq) = self.done.pop_front() else {
                break;
            };
            match self.orders.get(&seq) {
                Some(o) if o.has_reserved() || o.taking.is_some() => {
                    self.done.push_back(seq);
                    continue;
                }
                Some(_) => {}
                None => {
                    self.in_done.remove(&seq);
                    continue;
                }
            }
            self.in_done.remove(&seq);
            if let Some(o) = self.orders.remove(&seq) {
                if let Some(c) = &o.rec.client_id {
                    if self.client_ids.get(c) == Some(&seq) {
                        self.client_ids.remove(c);
                    }
                }
                for id in &o.trades {
                    if let Some(t) = self.trades.remove(id) {
                        takes.push(TakeId {
                            taker: t.taker,
                            n: t.take_n,
                        });
                    }
                }
            }
        }
        takes
    }

    /// The sequence numbers of the orders in a taking phase.
    pub fn taking(&self) -> Vec<u64> {
        self.orders
            .iter()
            .filter(|(_, o)| o.taking.is_some())
            .map(|(s, _)| *s)
            .collect()
    }
}
