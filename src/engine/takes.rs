//! The taker's ledger: what this node has asked of each maker order, and
//! the takes whose answer never came (in doubt).
//!
//! Two of our orders never ask for the same lots of one maker order: the
//! quantity asked and not answered is counted per maker order, and a plan
//! only asks for what is left of it. A take with no answer (a timeout, a
//! lost connection) stays in doubt, its quantity reserved, until the maker
//! says what became of it: a status request, retried with backoff, the
//! fill seen in gossip, or the maker's heartbeat saying it served every
//! take up to past the take's deadline (relayed by any peer, so a maker
//! this node cannot reach still settles it).

use std::collections::{BTreeMap, HashMap};

use libp2p::PeerId;

use super::ids::OrderId;
use super::Millis;
use crate::book::OrderKey;
use crate::market::Qty;
use crate::wire::FillMsg;

/// First wait before asking a maker about a take in doubt.
pub const FIRST_DOUBT_BACKOFF: Millis = 500;
/// Longest wait between status requests for a take in doubt.
///
/// This bounds how long an order stays `taking` once its maker is alive and
/// reachable: the next status request leaves within this (or at once when
/// the maker reconnects), and the maker answers it from its records within
/// the take timeout. So a take in doubt is resolved at most
/// `MAX_DOUBT_BACKOFF + net.take_timeout_ms` (13 s by default) after the
/// maker can be reached again, and `2 × take_timeout + FIRST_DOUBT_BACKOFF`
/// (6.5 s) after it was sent if the maker was reachable all along and only
/// the first answer was lost. Status requests are a few bytes, so the
/// bound is kept short rather than the load light.
///
/// A maker this node cannot reach at all, but whose gossip arrives through
/// other peers, settles the take by its heartbeat: at most
/// `engine.take_deadline_ms + engine.heartbeat_ms` after the take was sent,
/// plus the gossip's way here and how far the maker's clock is behind ours
/// (6 s and a little by default; see [`Takes::settled_by`]).
pub const MAX_DOUBT_BACKOFF: Millis = 10_000;

/// A take: our order `seq`'s take number `n`.
pub(super) type TakeKey = (u64, u32);

/// A take that was sent, as its answer finds it.
#[derive(Clone, Debug)]
pub(super) struct Sent {
    pub mkt: usize,
    pub seq: u64,
    pub n: u32,
    pub maker: OrderId,
    pub maker_key: Option<OrderKey>,
    pub qty: Qty,
    pub kind: SentKind,
    /// How the maker's heartbeat can settle it (fills and commits).
    pub settle: Option<Settle>,
}

/// What lets a maker's heartbeat settle a take in doubt as not filled: the
/// take's deadline, and the maker's fills known when it was sent (its fill,
/// if any, comes after them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Settle {
    pub deadline: Millis,
    pub fills_before: u64,
}

impl Sent {
    pub fn key(&self) -> TakeKey {
        (self.seq, self.n)
    }
}

/// What a take request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SentKind {
    Fill,
    /// What became of a take in doubt.
    Status,
    /// Fill-or-kill, first round.
    Hold,
    /// Fill-or-kill, second round (a fill).
    Commit,
}

/// A take whose answer never came: its quantity stays reserved until the
/// maker tells (a status request, or the fill seen in gossip).
#[derive(Clone, Debug)]
pub(super) struct Doubt {
    pub mkt: usize,
    pub maker: OrderId,
    pub maker_key: Option<OrderKey>,
    pub qty: Qty,
    pub settle: Option<Settle>,
    next_try: Millis,
    backoff: Millis,
    querying: bool,
}

impl Doubt {
    /// A take in doubt, first asked about at `first_try`.
    pub fn new(
        mkt: usize,
        maker: OrderId,
        maker_key: Option<OrderKey>,
        qty: Qty,
        settle: Option<Settle>,
        first_try: Millis,
    ) -> Doubt {
        Doubt {
            mkt,
            maker,
            maker_key,
            qty,
            settle,
            next_try: first_try,
            backoff: FIRST_DOUBT_BACKOFF,
            querying: false,
        }
    }

    /// The take this doubt is about, as it was sent.
    pub fn sent(&self, key: TakeKey, kind: SentKind) -> Sent {
        Sent {
            mkt: self.mkt,
            seq: key.0,
            n: key.1,
            maker: self.maker,
            maker_key: self.maker_key,
            qty: self.qty,
            kind,
            settle: self.settle,
        }
    }
}

/// What is asked of makers and what is in doubt.
#[derive(Default)]
pub(super) struct Takes {
    /// Quantity asked of each maker order and not answered (in flight or
    /// in doubt), so two orders of ours never ask for the same lots.
    asked: HashMap<(usize, OrderKey), Qty>,
    doubts: BTreeMap<TakeKey, Doubt>,
    /// Fills of takes still in flight, seen in gossip or sync before their
    /// answer: a take whose answer is then lost is filled by them, not
    /// left in doubt (where a heartbeat would settle it wrongly, its fill
    /// already counted). Gone with the answer, so as bounded as the takes
    /// in flight.
    early: HashMap<TakeKey, FillMsg>,
}

impl Takes {
    /// Quantity asked of a maker order and not heard back on.
    pub fn asked_of(&self, mkt: usize, key: OrderKey) -> Qty {
        self.asked.get(&(mkt, key)).copied().unwrap_or(Qty::ZERO)
    }

    pub fn ask(&mut self, mkt: usize, key: Option<OrderKey>, qty: Qty) {
        if let Some(k) = key {
            *self.asked.entry((mkt, k)).or_default() += qty;
        }
    }

    /// A take against `key` is answered: its quantity is no longer asked.
    pub fn unask(&mut self, mkt: usize, key: Option<OrderKey>, qty: Qty) {
        let Some(k) = key else { return };
        if let Some(q) = self.asked.get_mut(&(mkt, k)) {
            *q = q.saturating_sub(qty);
            if q.is_zero() {
                self.asked.remove(&(mkt, k));
            }
        }
    }

    pub fn doubt(&mut self, key: TakeKey, d: Doubt) {
        self.doubts.insert(key, d);
    }

    pub fn in_doubt(&self, key: TakeKey) -> Option<&Doubt> {
        self.doubts.get(&key)
    }

    /// The doubt is over (the maker said, or its fill was seen).
    pub fn resolve(&mut self, key: TakeKey) -> Option<Doubt> {
        self.doubts.remove(&key)
    }

    /// A status request got no usable answer: ask again at the next turn.
    pub fn query_failed(&mut self, key: TakeKey) {
        if let Some(d) = self.doubts.get_mut(&key) {
            d.querying = false;
        }
    }

    /// The maker is reachable again: ask it about its takes at once.
    pub fn maker_back(&mut self, maker: &PeerId, now: Millis) {
        for d in self.doubts.values_mut() {
            if d.maker.owner == *maker {
                d.next_try = now;
            }
        }
    }

    /// The takes in doubt whose status request is due, now marked as
    /// asked (the next one backs off).
    pub fn due(&mut self, now: Millis) -> Vec<(TakeKey, Doubt)> {
        let mut out = Vec::new();
        for (key, d) in self.doubts.iter_mut() {
            if d.querying || d.next_try > now {
                continue;
            }
            d.querying = true;
            d.next_try = now + d.backoff;
            d.backoff = (d.backoff * 2).min(MAX_DOUBT_BACKOFF);
            out.push((*key, d.clone()));
        }
        out
    }

    /// The maker's fill of a take still in flight.
    pub fn early_fill(&mut self, key: TakeKey, fill: FillMsg) {
        self.early.insert(key, fill);
    }

    /// The fill seen for this take before its answer, taken out.
    pub fn take_early(&mut self, key: TakeKey) -> Option<FillMsg> {
        self.early.remove(&key)
    }

    /// The takes in doubt that `maker`'s heartbeat on market `mkt` settles
    /// as not filled: it served every take up to `served_ms`, which is at
    /// or past their deadline, and we hold every fill it counts (none of
    /// them theirs, or the fill would have ended the doubt), skipping none
    /// made after they were sent (`skipped_to`: fills we stopped waiting
    /// for because no peer holds them any more).
    pub fn settled_by(
        &self,
        mkt: usize,
        maker: &PeerId,
        served_ms: Millis,
        skipped_to: u64,
    ) -> Vec<TakeKey> {
        self.doubts
            .iter()
            .filter(|(_, d)| d.mkt == mkt && d.maker.owner == *maker)
            .filter(|(_, d)| {
                d.settle
                    .is_some_and(|s| s.deadline <= served_ms && skipped_to <= s.fills_before)
            })
            .map(|(k, _)| *k)
            .collect()
    }

    /// Every take in doubt, for explanations in tests.
    #[cfg(any(test, feature = "testkit"))]
    pub fn doubts(&self) -> &BTreeMap<TakeKey, Doubt> {
        &self.doubts
    }
}
