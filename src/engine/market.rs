//! One market as the engine keeps it: the replica of every owner's open
//! orders, this node's gossip stream on it, its fills as maker, and whether
//! its book has been pulled from a peer.
//!
//! The gossip stream keeps the digest and count of our open orders *as
//! published so far*, updated as items enter it, so a replica that received
//! the stream in order holds exactly the digest our heartbeat carries.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use libp2p::PeerId;

use super::digest::Digest;
use super::ids::TradeId;
use super::replica::Replica;
use super::Millis;
use crate::book::OrderKey;
use crate::market::MarketSpec;
use crate::wire::{Item, OrderState};

/// Whether a market's book has been pulled from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum BookSync {
    Needed,
    /// Pulling it from `peer`, whose last page was asked at `asked`.
    Running {
        peer: PeerId,
        asked: Millis,
    },
    Done,
}

/// Our gossip on one market: items waiting for the next flush, and what
/// the stream has said of our orders so far.
pub(super) struct Stream {
    outbox: Vec<Item>,
    flush_at: Option<Millis>,
    /// Digest and count of our open orders as published so far.
    pub digest: Digest,
    pub open: u64,
    /// Our fills as maker published so far.
    pub fills: u64,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            outbox: Vec::new(),
            flush_at: None,
            digest: Digest::EMPTY,
            open: 0,
            fills: 0,
        }
    }

    /// What the stream says of our order changes from `old` to `new`
    /// (`None`: not open).
    pub fn republish(&mut self, me: &PeerId, old: Option<&OrderState>, new: Option<&OrderState>) {
        match old {
            Some(o) => self.digest.remove(Digest::of_order(me, o)),
            None if new.is_some() => self.open += 1,
            None => {}
        }
        match new {
            Some(n) => self.digest.add(Digest::of_order(me, n)),
            None if old.is_some() => self.open = self.open.saturating_sub(1),
            None => {}
        }
    }

    /// Add an item; whether the batch is full and must be flushed now.
    pub fn push(&mut self, item: Item, now: Millis, flush_ms: Millis, max_items: usize) -> bool {
        self.outbox.push(item);
        if self.outbox.len() >= max_items.max(1) {
            return true;
        }
        if self.flush_at.is_none() {
            self.flush_at = Some(now + flush_ms);
        }
        false
    }

    /// The items to send in one message, if any.
    pub fn take_batch(&mut self) -> Option<Vec<Item>> {
        self.flush_at = None;
        if self.outbox.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.outbox))
    }

    pub fn flush_at(&self) -> Option<Millis> {
        self.flush_at
    }

    /// Items waiting for a flush, for explanations in tests.
    #[cfg(any(test, feature = "testkit"))]
    pub fn queued(&self) -> usize {
        self.outbox.len()
    }
}

/// One market.
pub(super) struct Market {
    pub replica: Replica,
    pub stream: Stream,
    /// Our fill counter as maker (including fills not yet published).
    pub mseq: u64,
    /// Our fills as maker, in `mseq` order.
    pub my_fills: Vec<TradeId>,
    /// Our fills as maker not yet in the gossip stream (not durable yet),
    /// by `mseq`, with when they were served: a heartbeat's `served_ms`
    /// stays before the oldest.
    pub unstreamed: BTreeMap<u64, Millis>,
    /// Our open orders not yet in the gossip stream.
    pub unpublished: BTreeSet<u64>,
    pub next_hb: Millis,
    pub book_sync: BookSync,
    /// The book changed since the last `book` event.
    pub book_changed: bool,
    /// Fills this node took part in since it started: as maker, as taker
    /// (for `/metrics`, by market).
    pub fills: [u64; 2],
    /// Replica orders whose makers refused one of our takes as done or
    /// with nothing free, with the version the replica held and when: no
    /// order of ours tries them again until the replica hears of a newer
    /// version or the retry wait passes. Kept per order of ours
    /// (`Own::tried`) only, a replica that lags the network sent every
    /// next order of the node to the same refusal.
    pub refused: HashMap<OrderKey, (u64, Millis)>,
}

impl Market {
    /// The time through which every take we served is in the stream's
    /// fills or was refused: now, or just before the oldest fill not yet
    /// streamed (one that never becomes durable, a storage failure, holds
    /// it there: the node refuses takes then anyway).
    pub fn served_through(&self, now: Millis) -> Millis {
        match self.unstreamed.first_key_value() {
            Some((_, &at)) => at.saturating_sub(1).min(now),
            None => now,
        }
    }

    fn new(spec: MarketSpec, recent_fills: usize, now: Millis) -> Market {
        let mut replica = Replica::new(spec, recent_fills);
        // The level-2 feed follows every market's levels (a set insert per
        // change; the driver takes them after every burst).
        replica.track_levels(true);
        Market {
            replica,
            stream: Stream::new(),
            mseq: 0,
            unstreamed: BTreeMap::new(),
            my_fills: Vec::new(),
            unpublished: BTreeSet::new(),
            next_hb: now,
            book_sync: BookSync::Needed,
            book_changed: false,
            fills: [0; 2],
            refused: HashMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.replica.spec.name
    }

    /// Every own order with a sequence number at or below this is either
    /// among the published open ones or gone for good.
    pub fn watermark(&self, last_seq: u64) -> u64 {
        self.unpublished
            .first()
            .map_or(last_seq, |s| s.saturating_sub(1))
    }
}

/// Every market the node trades, by index, name and topic.
pub(super) struct Markets {
    list: Vec<Market>,
    by_name: HashMap<String, usize>,
    by_topic: HashMap<String, usize>,
}

impl Markets {
    pub fn new(specs: Vec<MarketSpec>, recent_fills: usize, now: Millis) -> Markets {
        let mut m = Markets {
            list: Vec::new(),
            by_name: HashMap::new(),
            by_topic: HashMap::new(),
        };
        for spec in specs {
            let i = m.list.len();
            let market = Market::new(spec, recent_fills, now);
            m.by_name.insert(market.replica.spec.name.clone(), i);
            m.by_topic.insert(market.replica.topic.clone(), i);
            m.list.push(market);
        }
        m
    }

    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn by_topic(&self, topic: &str) -> Option<usize> {
        self.by_topic.get(topic).copied()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Market> {
        self.list.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Market> {
        self.list.iter_mut()
    }
}

impl std::ops::Index<usize> for Markets {
    type Output = Market;
    fn index(&self, i: usize) -> &Market {
        &self.list[i]
    }
}

impl std::ops::IndexMut<usize> for Markets {
    fn index_mut(&mut self, i: usize) -> &mut Market {
        &mut self.list[i]
    }
}
