//! The replica of one market: every owner's open orders, as registers.
//!
//! An order's replicated state is a register: the owner's highest version
//! wins, and a cancel (or a fill to zero) is a tombstone. Per owner the
//! replica also keeps a *floor*: every order of that owner with a sequence
//! number at or below the floor that is not open here is gone for good, so a
//! late or replayed message cannot bring it back. Together these make
//! duplicated, late and reordered messages converge to one state.
//!
//! Orders live in a `Book` (the same price-time book the node matches with),
//! ordered by price and then by created time, so every replica walks them in
//! the same order; the digests are kept up to date on every change.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use libp2p::PeerId;

use super::digest::Digest;
use super::durable::Trade;
use super::ids::TradeId;
use super::proven::StateProof;
use super::Millis;
use crate::book::{Book, OrderKey, OrderView, OwnerKey};
use crate::market::{MarketSpec, Qty, Side};
use crate::wire::proof::Stored;
use crate::wire::{Heartbeat, OrderState};

/// What applying a message did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    New,
    Updated,
    Removed,
    Ignored,
    /// The owner already has the most open orders allowed.
    OverLimit,
}

/// One replicated order.
#[derive(Clone, Debug)]
pub struct RepOrder {
    pub state: OrderState,
    /// The owner's signed records of its latest version that has them
    /// (the state itself may be newer: a fill learnt from a take answer).
    pub proof: Option<StateProof>,
}

/// What the replica knows of one owner on this market.
#[derive(Clone, Debug, Default)]
pub struct OwnerRep {
    /// Open orders by sequence number.
    pub live: BTreeMap<u64, OrderKey>,
    pub digest: Digest,
    pub floor: u64,
    pub tombstones: BTreeSet<u64>,
    pub last_hb: Option<Heartbeat>,
    /// Heartbeats in a row whose digest differed from ours.
    pub mismatches: u32,
    /// Heartbeats in a row announcing fills we do not hold.
    pub fill_gaps: u32,
    /// Every fill of this owner as maker with `mseq` up to this is known.
    pub fills_known: u64,
    /// Fills known beyond `fills_known` (arrived out of order).
    pub fills_ahead: BTreeSet<u64>,
    /// The highest fill we stopped waiting for unseen (no peer held it any
    /// more): a heartbeat cannot vouch for takes sent before it.
    pub skipped_to: u64,
    /// While a repair of its orders runs: when its last page was asked.
    pub syncing: Option<Millis>,
    /// While a repair of its fills runs: when its last page was asked.
    pub fills_syncing: Option<Millis>,
    /// Repairs started for this owner (to alternate whom we ask).
    pub sync_attempts: u32,
}

impl OwnerRep {
    fn is_dead(&self, seq: u64) -> bool {
        !self.live.contains_key(&seq) && (seq <= self.floor || self.tombstones.contains(&seq))
    }

    fn note_fill(&mut self, mseq: u64) {
        if mseq <= self.fills_known {
            return;
        }
        self.fills_ahead.insert(mseq);
        while self.fills_ahead.remove(&(self.fills_known + 1)) {
            self.fills_known += 1;
        }
    }

    /// Fills older than `oldest` cannot be had any more: stop waiting.
    pub fn skip_fills_below(&mut self, oldest: u64) {
        if oldest > self.fills_known + 1 {
            self.skipped_to = self.skipped_to.max(oldest - 1);
            self.fills_known = oldest - 1;
            self.fills_ahead = self.fills_ahead.split_off(&oldest);
        }
        while self.fills_ahead.remove(&(self.fills_known + 1)) {
            self.fills_known += 1;
        }
    }

    /// Raise the floor and forget the tombstones it covers.
    pub fn raise_floor(&mut self, floor: u64) {
        if floor > self.floor {
            self.floor = floor;
            self.tombstones = self.tombstones.split_off(&(floor + 1));
        }
    }
}

/// Replica of one market.
pub struct Replica {
    pub spec: MarketSpec,
    pub topic: String,
    pub book: Book,
    orders: HashMap<OrderKey, RepOrder>,
    keys: HashMap<(OwnerKey, u64), OrderKey>,
    next_key: OrderKey,
    pub owners: HashMap<OwnerKey, OwnerRep>,
    pub digest: Digest,
    trades: VecDeque<(OwnerKey, Trade, Option<Stored>)>,
    trade_ids: HashSet<TradeId>,
    max_trades: usize,
    /// Price levels changed since the feed last looked (`track_levels`).
    changed: Option<HashSet<(Side, crate::market::Price)>>,
    /// Orders with an expiry, by when they expire.
    expiring: BTreeSet<(u64, OrderKey)>,
    /// Orders past their expiry by this node's clock whose owner has not
    /// said they ended yet: out of the book (no liquidity, no level), their
    /// registers kept (the digest is of registers, and the owner's word
    /// ends them).
    lapsed: HashSet<OrderKey>,
}

/// Time priority of an order in every replica: created time first, then a
/// hash of its id, so all replicas order a level the same way.
pub fn priority(created_ms: u64, owner: &PeerId, seq: u64) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&owner.to_bytes());
    h.update(&seq.to_le_bytes());
    let b = h.finalize();
    let tie = u64::from_le_bytes(b.as_bytes()[..8].try_into().unwrap_or([0; 8])) & 0xF_FFFF;
    (created_ms.min((1 << 44) - 1) << 20) | tie
}

impl Replica {
    pub fn new(spec: MarketSpec, max_trades: usize) -> Self {
        Replica {
            topic: spec.topic(),
            book: Book::new(spec.clone()),
            spec,
            orders: HashMap::new(),
            keys: HashMap::new(),
            next_key: 1,
            owners: HashMap::new(),
            digest: Digest::EMPTY,
            trades: VecDeque::new(),
            trade_ids: HashSet::new(),
            max_trades: max_trades.max(1),
            changed: None,
            expiring: BTreeSet::new(),
            lapsed: HashSet::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.orders.len()
    }

    /// Start or stop noting which price levels change (for a level-2 feed).
    pub fn track_levels(&mut self, on: bool) {
        match (on, self.changed.is_some()) {
            (true, false) => self.changed = Some(HashSet::new()),
            (false, true) => self.changed = None,
            _ => {}
        }
    }

    fn touch(&mut self, side: Side, price: crate::market::Price) {
        if let Some(c) = &mut self.changed {
            c.insert((side, price));
        }
    }

    /// The levels changed since the last call, with their quantity now
    /// (zero: the level is gone), bids before asks, each side best first.
    pub fn take_changed_levels(&mut self) -> Vec<(Side, crate::market::Price, Qty)> {
        let Some(c) = &mut self.changed else {
            return Vec::new();
        };
        if c.is_empty() {
            return Vec::new();
        }
        let mut levels: Vec<(Side, crate::market::Price)> = c.drain().collect();
        levels.sort_by(|a, b| match (a.0, b.0) {
            (Side::Buy, Side::Buy) => b.1.cmp(&a.1),
            (Side::Sell, Side::Sell) => a.1.cmp(&b.1),
            (Side::Buy, Side::Sell) => std::cmp::Ordering::Less,
            (Side::Sell, Side::Buy) => std::cmp::Ordering::Greater,
        });
        levels
            .into_iter()
            .map(|(side, price)| (side, price, self.book.level_qty(side, price)))
            .collect()
    }

    pub fn owner(&mut self, owner: OwnerKey) -> &mut OwnerRep {
        self.owners.entry(owner).or_default()
    }

    pub fn key_of(&self, owner: OwnerKey, seq: u64) -> Option<OrderKey> {
        self.keys.get(&(owner, seq)).copied()
    }

    pub fn get(&self, key: OrderKey) -> Option<&RepOrder> {
        self.orders.get(&key)
    }

    pub fn get_by_id(&self, owner: OwnerKey, seq: u64) -> Option<&RepOrder> {
        self.key_of(owner, seq).and_then(|k| self.orders.get(&k))
    }

    /// Apply an order's state from its owner: the highest version wins.
    /// `proof` is where the state sits in a batch its owner signed, when
    /// it came in one.
    pub fn upsert(
        &mut self,
        owner: OwnerKey,
        peer: &PeerId,
        state: OrderState,
        max_per_owner: usize,
        proof: Option<Stored>,
    ) -> Applied {
        if let Some(key) = self.key_of(owner, state.seq) {
            let Some(cur) = self.orders.get_mut(&key) else {
                return Applied::Ignored;
            };
            let c = &cur.state;
            let same_order = c.side == state.side
                && c.price == state.price
                && c.qty == state.qty
                && c.created_ms == state.created_ms
                && c.expires_ms == state.expires_ms;
            if state == cur.state && cur.proof.as_ref().is_none_or(|p| p.ver() < state.ver) {
                // The same state again, signed: keep its proof to hand on.
                if let Some(p) = proof {
                    cur.proof = Some(StateProof::new(state, p));
                }
                return Applied::Ignored;
            }
            if state.ver <= c.ver || !same_order || state.remaining > c.qty {
                return Applied::Ignored;
            }
            if state.remaining.is_zero() {
                self.remove(owner, peer, state.seq, true);
                return Applied::Removed;
            }
            let old = Digest::of_order(peer, &cur.state);
            let new = Digest::of_order(peer, &state);
            let _ = self.book.set_remaining(key, state.remaining);
            self.touch(state.side, state.price);
            self.digest.remove(old);
            self.digest.add(new);
            let rep = self.owners.entry(owner).or_default();
            rep.digest.remove(old);
            rep.digest.add(new);
            if let Some(o) = self.orders.get_mut(&key) {
                if let Some(p) = proof {
                    o.proof = Some(StateProof::new(state.clone(), p));
                }
                o.state = state;
            }
            return Applied::Updated;
        }
        let rep = self.owners.entry(owner).or_default();
        if rep.is_dead(state.seq) {
            return Applied::Ignored;
        }
        if state.remaining.is_zero() {
            rep.tombstones.insert(state.seq);
            return Applied::Ignored;
        }
        if rep.live.len() >= max_per_owner {
            return Applied::OverLimit;
        }
        let key = self.next_key;
        let view = OrderView {
            id: key,
            owner,
            side: state.side,
            price: state.price,
            remaining: state.remaining,
            priority: priority(state.created_ms, peer, state.seq),
        };
        if self.book.insert_resting(view).is_err() {
            return Applied::Ignored;
        }
        if let Some(c) = &mut self.changed {
            c.insert((state.side, state.price));
        }
        self.next_key += 1;
        let d = Digest::of_order(peer, &state);
        rep.live.insert(state.seq, key);
        rep.digest.add(d);
        self.digest.add(d);
        self.keys.insert((owner, state.seq), key);
        if let Some(at) = state.expires_ms {
            self.expiring.insert((at, key));
        }
        let proof = proof.map(|p| StateProof::new(state.clone(), p));
        self.orders.insert(key, RepOrder { state, proof });
        Applied::New
    }

    /// Take the orders whose expiry is at or before `now` out of the book:
    /// they are no liquidity from then on, whenever their owner's word that
    /// they ended comes. Whether any went.
    pub fn lapse(&mut self, now: u64) -> bool {
        let mut any = false;
        while let Some(&(at, key)) = self.expiring.first() {
            if at > now {
                break;
            }
            self.expiring.pop_first();
            let Some(o) = self.orders.get(&key) else {
                continue;
            };
            let (side, price) = (o.state.side, o.state.price);
            let _ = self.book.cancel(key);
            self.lapsed.insert(key);
            self.touch(side, price);
            any = true;
        }
        any
    }

    /// Whether an order is past its expiry here (out of the book).
    pub fn is_lapsed(&self, key: OrderKey) -> bool {
        self.lapsed.contains(&key)
    }

    /// Remove an open order; with `tombstone` it can never come back.
    pub fn remove(&mut self, owner: OwnerKey, peer: &PeerId, seq: u64, tombstone: bool) -> bool {
        let rep = self.owners.entry(owner).or_default();
        if tombstone && seq > rep.floor {
            rep.tombstones.insert(seq);
        }
        let Some(key) = self.keys.remove(&(owner, seq)) else {
            return false;
        };
        rep.live.remove(&seq);
        let _ = self.book.cancel(key);
        if let Some(o) = self.orders.remove(&key) {
            if let Some(at) = o.state.expires_ms {
                self.expiring.remove(&(at, key));
            }
            self.lapsed.remove(&key);
            if let Some(c) = &mut self.changed {
                c.insert((o.state.side, o.state.price));
            }
            let d = Digest::of_order(peer, &o.state);
            rep.digest.remove(d);
            self.digest.remove(d);
        }
        true
    }

    /// Replace what is held of `owner`'s orders with `after < seq <= upto`
    /// by `orders` (the owner's own page): the ones it does not list, and
    /// does not say are still `pending`, are gone.
    #[allow(clippy::too_many_arguments)]
    pub fn replace_range(
        &mut self,
        owner: OwnerKey,
        peer: &PeerId,
        after: u64,
        upto: u64,
        pending: &HashSet<u64>,
        orders: Vec<StateProof>,
        max_per_owner: usize,
    ) {
        if upto <= after {
            // An empty (or nonsensical) range says nothing about any order.
            return;
        }
        let keep: HashSet<u64> = orders.iter().map(|o| o.order.seq).collect();
        let gone: Vec<u64> = self
            .owners
            .get(&owner)
            .map(|rep| {
                rep.live
                    .range(after.saturating_add(1)..=upto)
                    .map(|(s, _)| *s)
                    .filter(|s| !keep.contains(s) && !pending.contains(s))
                    .collect()
            })
            .unwrap_or_default();
        for seq in gone {
            self.remove(owner, peer, seq, true);
        }
        for p in orders {
            if p.order.seq > after && p.order.seq <= upto {
                self.upsert_proven(owner, peer, p, max_per_owner);
            }
        }
        let rep = self.owner(owner);
        if after <= rep.floor && pending.is_empty() {
            rep.raise_floor(upto);
        }
    }

    /// Apply an order whose owner's signed records were checked: its
    /// current state, and those records to hand on.
    pub fn upsert_proven(
        &mut self,
        owner: OwnerKey,
        peer: &PeerId,
        p: StateProof,
        max_per_owner: usize,
    ) -> Applied {
        let state = p.state();
        let applied = self.upsert(owner, peer, p.order.clone(), max_per_owner, None);
        let applied = match &p.fill {
            None => applied,
            Some(_) if applied == Applied::OverLimit => applied,
            Some(_) => {
                // The fill's remaining and version, on top of the order item.
                let a = self.upsert(owner, peer, state.clone(), max_per_owner, None);
                if a == Applied::Ignored {
                    applied
                } else {
                    a
                }
            }
        };
        if let Some(key) = self.key_of(owner, state.seq) {
            if let Some(o) = self.orders.get_mut(&key) {
                let newer = o.proof.as_ref().is_none_or(|q| q.ver() < p.ver());
                if newer && o.state.ver >= p.ver() {
                    o.proof = Some(p);
                }
            }
        }
        applied
    }

    /// Record a trade (once), and apply what it says of the maker's order.
    /// Returns whether the trade was new here. `proof` is where its fill
    /// sits in a batch the maker signed, when it came in one.
    pub fn apply_trade(
        &mut self,
        maker: OwnerKey,
        maker_peer: &PeerId,
        t: &Trade,
        proof: Option<Stored>,
    ) -> bool {
        self.apply_maker_side(maker, maker_peer, t, proof.as_ref());
        if !self.trade_ids.insert(t.id) {
            if let Some(p) = proof {
                if let Some(entry) = self
                    .trades
                    .iter_mut()
                    .rev()
                    .find(|(_, old, pr)| old.id == t.id && pr.is_none())
                {
                    entry.2 = Some(p);
                }
            }
            return false;
        }
        self.trades.push_back((maker, t.clone(), proof));
        while self.trades.len() > self.max_trades {
            if let Some((_, old, _)) = self.trades.pop_front() {
                self.trade_ids.remove(&old.id);
            }
        }
        true
    }

    /// Apply what a trade says of the maker's own order and fill count,
    /// without recording the trade itself.
    pub fn apply_maker_side(
        &mut self,
        maker: OwnerKey,
        maker_peer: &PeerId,
        t: &Trade,
        proof: Option<&Stored>,
    ) {
        if let Some(key) = self.key_of(maker, t.id.maker.seq) {
            let newer = self
                .orders
                .get(&key)
                .is_some_and(|o| t.maker_ver > o.state.ver);
            if newer {
                if t.maker_remaining.is_zero() {
                    self.remove(maker, maker_peer, t.id.maker.seq, true);
                } else if let Some(o) = self.orders.get(&key) {
                    let mut s = o.state.clone();
                    s.remaining = t.maker_remaining;
                    s.ver = t.maker_ver;
                    let proof = match (&o.proof, proof) {
                        (Some(base), Some(p)) => Some(base.with_fill(t.fill_msg(), p.clone())),
                        (old, _) => old.clone(),
                    };
                    self.upsert(maker, maker_peer, s, usize::MAX, None);
                    if let Some(o) = self.orders.get_mut(&key) {
                        o.proof = proof;
                    }
                }
            }
        } else if t.maker_remaining.is_zero() {
            let rep = self.owner(maker);
            if t.id.maker.seq > rep.floor {
                rep.tombstones.insert(t.id.maker.seq);
            }
        }
        self.owner(maker).note_fill(t.mseq);
    }

    /// Recent trades, newest first.
    pub fn recent_trades(&self) -> impl Iterator<Item = &Trade> {
        self.trades.iter().rev().map(|(_, t, _)| t)
    }

    /// Recent trades whose fills the makers signed, newest first, with the
    /// maker's key and the proof.
    pub fn recent_proven_trades(&self) -> impl Iterator<Item = (OwnerKey, &Trade, &Stored)> {
        self.trades
            .iter()
            .rev()
            .filter_map(|(k, t, p)| p.as_ref().map(|p| (*k, t, p)))
    }

    /// One owner's signed fills as maker with `mseq >= from`, oldest first,
    /// and the oldest `mseq` held.
    pub fn owner_trades(
        &self,
        owner: OwnerKey,
        from: u64,
        limit: usize,
    ) -> (Vec<(&Trade, &Stored)>, u64, bool) {
        let mut all: Vec<(&Trade, &Stored)> = self
            .trades
            .iter()
            .filter(|(o, _, _)| *o == owner)
            .filter_map(|(_, t, p)| p.as_ref().map(|p| (t, p)))
            .collect();
        all.sort_by_key(|(t, _)| t.mseq);
        let oldest = all.first().map(|(t, _)| t.mseq).unwrap_or(from);
        let mut out: Vec<(&Trade, &Stored)> = all
            .into_iter()
            .filter(|(t, _)| t.mseq >= from)
            .take(limit.saturating_add(1))
            .collect();
        let more = out.len() > limit;
        out.truncate(limit);
        (out, oldest, more)
    }

    /// Open orders of `owner` with `seq > after` that can be handed on
    /// (their owner's signed records are known), ascending.
    pub fn owner_orders(&self, owner: OwnerKey, after: u64) -> impl Iterator<Item = &StateProof> {
        self.owners
            .get(&owner)
            .into_iter()
            .flat_map(move |rep| rep.live.range(after.saturating_add(1)..))
            .filter_map(|(_, k)| self.orders.get(k).and_then(|o| o.proof.as_ref()))
    }

    /// Aggregated depth, best first, `levels` per side.
    pub fn depth(&self, side: Side, levels: usize) -> Vec<(crate::market::Price, Qty)> {
        self.book.depth(side, levels)
    }
}
