//! The peer table: every peer the engine has heard of, as owners of orders
//! and as senders of gossip, takes and syncs.
//!
//! A peer's place in the table is its *owner key*, the small integer every
//! replica and book files its orders under (this node is key 0). The table
//! is bounded: past its cap a new peer is not admitted, whichever path it
//! comes by (gossip, a take, a sync request or answer), so a flood of fresh
//! identities cannot grow it. It also keeps each peer's liveness (stale
//! after a silence), its connection, its per-second budgets and the fills
//! of its takes still waiting to be durable.

use std::collections::{BTreeSet, HashMap, HashSet};

use libp2p::PeerId;

use super::Millis;
use crate::book::OwnerKey;

/// The owner key of this node in every replica.
pub(super) const ME: OwnerKey = 0;

/// A token bucket: `rate` per second, bursts of `rate`.
#[derive(Clone, Debug, Default)]
struct Bucket {
    tokens: f64,
    at: Millis,
    started: bool,
}

impl Bucket {
    /// Take one token if there is one.
    fn take(&mut self, now: Millis, rate: u32) -> bool {
        let rate = f64::from(rate.max(1));
        if !self.started {
            self.started = true;
            self.tokens = rate;
        } else {
            let dt = now.saturating_sub(self.at) as f64 / 1000.0;
            self.tokens = (self.tokens + dt * rate).min(rate);
        }
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the engine knows of one peer across markets.
#[derive(Clone, Debug)]
pub(super) struct Peer {
    pub id: PeerId,
    pub last_heard: Millis,
    pub stale: bool,
    pub connected: bool,
    gossip: Bucket,
    takes: Bucket,
    syncs: Bucket,
    /// Fills and holds for this peer's takes waiting to end.
    open_takes: u32,
    /// It served records that do not verify: not asked, not answered
    /// until then.
    banned_until: Millis,
    /// How far its clock is ahead of ours (ms, behind when negative), as its
    /// signed batches' sent times say: the least delayed batches count most.
    clock_offset: Option<i64>,
}

impl Peer {
    fn new(id: PeerId, now: Millis, connected: bool) -> Peer {
        Peer {
            id,
            last_heard: now,
            stale: false,
            connected,
            gossip: Bucket::default(),
            takes: Bucket::default(),
            syncs: Bucket::default(),
            open_takes: 0,
            banned_until: 0,
            clock_offset: None,
        }
    }
}

/// Which per-peer budget a message spends.
#[derive(Clone, Copy, Debug)]
pub(super) enum Budget {
    Gossip,
    Takes,
    Syncs,
}

/// Every peer heard of, bounded, and the set of connected ones.
pub(super) struct PeerTable {
    peers: Vec<Peer>,
    keys: HashMap<PeerId, OwnerKey>,
    connected: BTreeSet<PeerId>,
    /// Peers admitted at most (this node included).
    cap: usize,
    /// Round-robin cursor for picking a connected peer to ask.
    rr: usize,
    /// Peers already told they speak an older wire (bounded).
    old_wire: HashSet<PeerId>,
}

impl PeerTable {
    pub fn new(me: PeerId, now: Millis, cap: usize) -> PeerTable {
        PeerTable {
            peers: vec![Peer::new(me, now, true)],
            keys: HashMap::from([(me, ME)]),
            connected: BTreeSet::new(),
            cap: cap.max(2),
            rr: 0,
            old_wire: HashSet::new(),
        }
    }

    /// The key of a peer already in the table.
    pub fn key(&self, peer: &PeerId) -> Option<OwnerKey> {
        self.keys.get(peer).copied()
    }

    /// The key of `peer`, admitting it if there is room; `None` when the
    /// table is full and the peer is new to it.
    pub fn admit(&mut self, peer: PeerId, now: Millis) -> Option<OwnerKey> {
        if let Some(k) = self.keys.get(&peer) {
            return Some(*k);
        }
        if self.peers.len() >= self.cap {
            return None;
        }
        let k = self.peers.len() as OwnerKey;
        let connected = self.connected.contains(&peer);
        self.peers.push(Peer::new(peer, now, connected));
        self.keys.insert(peer, k);
        Some(k)
    }

    /// The peer id behind a key (this node's for an unknown key).
    pub fn id(&self, key: OwnerKey) -> PeerId {
        // The table is never empty: this node is key 0.
        self.peers.get(key as usize).unwrap_or(&self.peers[0]).id
    }

    /// Whether an owner's orders must not be taken: not heard from lately.
    pub fn is_stale(&self, key: OwnerKey) -> bool {
        key != ME && self.peers.get(key as usize).is_none_or(|p| p.stale)
    }

    /// Spend one unit of a peer's per-second budget, if it has one left.
    pub fn spend(&mut self, key: OwnerKey, budget: Budget, now: Millis, rate: u32) -> bool {
        let Some(p) = self.peers.get_mut(key as usize) else {
            return false;
        };
        match budget {
            Budget::Gossip => p.gossip.take(now, rate),
            Budget::Takes => p.takes.take(now, rate),
            Budget::Syncs => p.syncs.take(now, rate),
        }
    }

    /// Fills and holds for a peer's takes that are not done yet.
    pub fn open_takes(&self, key: OwnerKey) -> u32 {
        self.peers.get(key as usize).map_or(0, |p| p.open_takes)
    }

    pub fn take_opened(&mut self, key: OwnerKey) {
        if let Some(p) = self.peers.get_mut(key as usize) {
            p.open_takes += 1;
        }
    }

    pub fn take_closed(&mut self, key: OwnerKey) {
        if let Some(p) = self.peers.get_mut(key as usize) {
            p.open_takes = p.open_takes.saturating_sub(1);
        }
    }

    /// A batch the peer signed at `sent_ms` (its clock) arrived at `now`
    /// (ours). Transit only makes a sample lower than the true offset, so a
    /// higher sample is taken at once and a lower one moves it an eighth of
    /// the way (the clocks do drift).
    pub fn clock_sample(&mut self, key: OwnerKey, sent_ms: Millis, now: Millis) {
        let Some(p) = self.peers.get_mut(key as usize) else {
            return;
        };
        let sample = sent_ms as i64 - now as i64;
        p.clock_offset = Some(match p.clock_offset {
            Some(o) if sample < o => o - (o - sample) / 8,
            _ => sample,
        });
    }

    /// The peer's clock read at least `their` when ours read `now` or
    /// earlier (it refused a take as past that deadline).
    pub fn clock_at_least(&mut self, peer: &PeerId, their: Millis, now: Millis) {
        let Some(p) = self.key(peer).and_then(|k| self.peers.get_mut(k as usize)) else {
            return;
        };
        let least = their as i64 - now as i64;
        p.clock_offset = Some(p.clock_offset.map_or(least, |o| o.max(least)));
    }

    /// Our time `now` on the peer's clock, as far as we know it.
    pub fn their_time(&self, peer: &PeerId, now: Millis) -> Millis {
        let offset = self
            .key(peer)
            .and_then(|k| self.peers.get(k as usize))
            .and_then(|p| p.clock_offset)
            .unwrap_or(0);
        now.saturating_add_signed(offset)
    }

    /// A message from the peer shows it is alive; its id if it was stale
    /// (its orders can be taken again).
    pub fn heard(&mut self, key: OwnerKey, now: Millis) -> Option<PeerId> {
        let p = self.peers.get_mut(key as usize)?;
        p.last_heard = now;
        if p.stale {
            p.stale = false;
            return Some(p.id);
        }
        None
    }

    /// Mark the peers not heard from for `after` ms stale; the newly stale.
    pub fn sweep_stale(&mut self, now: Millis, after: Millis) -> Vec<PeerId> {
        let mut gone = Vec::new();
        for p in self.peers.iter_mut().skip(1) {
            if !p.stale && now.saturating_sub(p.last_heard) > after {
                p.stale = true;
                gone.push(p.id);
            }
        }
        gone
    }

    /// A first connection to `peer`; whether the node had none before.
    pub fn connected(&mut self, peer: PeerId, now: Millis) -> bool {
        let was_alone = self.connected.is_empty();
        self.connected.insert(peer);
        if let Some(k) = self.admit(peer, now) {
            self.peers[k as usize].connected = true;
        }
        was_alone
    }

    pub fn disconnected(&mut self, peer: &PeerId) {
        self.connected.remove(peer);
        if let Some(k) = self.keys.get(peer) {
            self.peers[*k as usize].connected = false;
        }
    }

    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.connected.contains(peer)
    }

    /// A connected peer to ask, taking turns, never a banned one.
    pub fn pick(&mut self, now: Millis) -> Option<PeerId> {
        let usable: Vec<PeerId> = self
            .connected
            .iter()
            .filter(|p| !self.is_banned(p, now))
            .copied()
            .collect();
        if usable.is_empty() {
            return None;
        }
        self.rr = self.rr.wrapping_add(1);
        usable.get(self.rr % usable.len()).copied()
    }

    /// Stop asking and answering a peer until `until`.
    pub fn ban(&mut self, peer: &PeerId, until: Millis) {
        if let Some(k) = self.keys.get(peer) {
            let p = &mut self.peers[*k as usize];
            p.banned_until = p.banned_until.max(until);
        }
    }

    pub fn is_banned(&self, peer: &PeerId, now: Millis) -> bool {
        self.keys
            .get(peer)
            .is_some_and(|k| self.peers[*k as usize].banned_until > now)
    }

    /// Whether this is the first time `peer` is seen speaking an older wire.
    pub fn note_old_wire(&mut self, peer: &PeerId) -> bool {
        if self.old_wire.len() >= 1024 {
            return false;
        }
        self.old_wire.insert(*peer)
    }

    /// Every peer but this node, with its key.
    pub fn others(&self) -> impl Iterator<Item = (OwnerKey, &Peer)> {
        self.peers
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, p)| (k as OwnerKey, p))
    }
}
