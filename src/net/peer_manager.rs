//! How many peers the node keeps, and which it lets go.
//!
//! A real network is not a full mesh: each node holds a few connections of
//! the many nodes there are. Refusing a newcomer at the connection limit
//! before identify or Kademlia ran leaves it with nothing learned (it then
//! redials the same full node), and a node that never makes room splits the
//! network. So, as Lighthouse's peer manager does, the node takes every
//! connection up to a hard limit and prunes afterwards:
//!
//! - below `net.target_peers` it dials (the dialer, DHT walks and
//!   discovery, never more dials in flight than it is short of peers);
//! - it accepts connections up to `net.max_established_total` and keeps,
//!   over the target, what it is given, but no more than
//!   `max_established_total - 1` for long: one slot stays free for a
//!   newcomer or a short-lived take connection (the *reserve*);
//! - connections beyond `max_established_total` (at most
//!   `net.overflow_connections` more, libp2p's hard limit) are accepted too,
//!   so the newcomer completes identify and asks the DHT;
//! - over the kept number, peers past their grace and idle for it (no take
//!   or sync either way; a peer in use is never closed, which would leave
//!   its take in doubt) are pruned, one a second, least useful first: not
//!   in the gossip mesh, lowest gossip score, then a pseudo-random order of
//!   its own (a hash of both ids), so a full network drops different peers
//!   on different nodes rather than always the newest. (Preferring to keep
//!   the peers a node dialled itself, as Lighthouse does against eclipse
//!   attacks, made every node prune first the peers that had dialled it: a
//!   node short of peers, which dials, was pruned everywhere at once, fell
//!   to no peer, and dialled again. Pruning one at a time keeps one close
//!   from cascading into others.)
//! - over the ceiling, the node gets back to it at once, closing peers past
//!   their grace with no take for it (a sync is only asked again
//!   elsewhere), so the overflow is free for the next newcomer: a node
//!   held at its hard limit by newcomers syncing from it refused every
//!   later one before it learned anything.
//!
//! A peer is never pruned within its grace: it has that long to identify
//! itself, answer or ask a DHT query and use its take. The decisions are
//! pure functions of a snapshot, tested below; the event loop feeds the
//! snapshot and closes what they name.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::config::NetTuning;

/// What the manager knows of one connected peer.
#[derive(Clone, Debug)]
struct Entry {
    /// When its first connection was established.
    since: Instant,
    /// Whether we dialled it.
    outbound: bool,
    /// Last take or sync request, either way.
    last_used: Option<Instant>,
    /// Last take request, either way.
    last_take: Option<Instant>,
}

/// A connected peer as the pruning sees it, with what only the swarm knows.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerView {
    pub peer: PeerId,
    /// How long it has been connected.
    pub age: Duration,
    /// Time since its last take or sync request, if any.
    pub idle: Option<Duration>,
    /// Time since its last take request, if any.
    pub take_idle: Option<Duration>,
    pub outbound: bool,
    /// In the gossip mesh of one of our topics.
    pub in_mesh: bool,
    /// Its gossipsub score (0 if none).
    pub score: f64,
}

/// The limits the manager works within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Dial while fewer peers than this are connected.
    pub target: usize,
    /// Peers kept for long (one slot under the ceiling, never under the target).
    pub keep: usize,
    /// `net.max_established_total`; libp2p refuses beyond it plus the overflow.
    pub ceiling: usize,
    /// A new peer is never pruned within this.
    pub grace: Duration,
}

impl Limits {
    pub fn from_tuning(t: &NetTuning) -> Limits {
        // A target above the ceiling cannot be met: the ceiling wins.
        let ceiling = t.max_established_total as usize;
        let target = (t.target_peers as usize).min(ceiling);
        Limits {
            target,
            keep: ceiling.saturating_sub(1).max(target),
            ceiling,
            grace: Duration::from_millis(t.peer_grace_ms),
        }
    }

    /// How many more dials may start, with `connected` peers and `dialing`
    /// dials in flight: no more than the node is short of peers.
    pub fn dial_budget(&self, connected: usize, dialing: usize) -> usize {
        self.target.saturating_sub(connected + dialing)
    }
}

/// The peers to close now, least useful first (see the module comment).
///
/// Over the kept number and up to the ceiling: one peer per call, among
/// peers past their grace and idle for it (no take or sync). Over the
/// ceiling: as many as it takes to get back to it, among peers past their
/// grace with no take for it (a sync is asked again elsewhere, a take cut
/// off would be left in doubt), so the overflow is free again for the next
/// newcomer. A node that stays at its hard limit refuses newcomers before
/// they learned anything; with everyone bootstrapped to the first few
/// nodes, those stayed there while newcomers synced from them.
pub fn to_prune(limits: &Limits, peers: &[PeerView], local: &PeerId) -> Vec<PeerId> {
    let n = peers.len();
    if n <= limits.keep {
        return Vec::new();
    }
    let over_ceiling = n > limits.ceiling;
    let quiet = |idle: Option<Duration>| idle.is_none_or(|idle| idle >= limits.grace);
    let mut candidates: Vec<&PeerView> = peers
        .iter()
        .filter(|p| p.age >= limits.grace)
        .filter(|p| {
            if over_ceiling {
                quiet(p.take_idle)
            } else {
                quiet(p.idle)
            }
        })
        .collect();
    candidates.sort_by(|a, b| {
        usefulness(a, local)
            .partial_cmp(&usefulness(b, local))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let count = if over_ceiling {
        n - limits.ceiling
    } else {
        PRUNE_PER_TICK
    };
    candidates.into_iter().take(count).map(|p| p.peer).collect()
}

/// Peers closed per call of [`to_prune`] while the node is over the kept
/// number but not over the ceiling (the event loop calls it every second).
pub const PRUNE_PER_TICK: usize = 1;

/// Sort key: smaller is less useful.
fn usefulness(p: &PeerView, local: &PeerId) -> (bool, bool, f64, u64) {
    (
        p.in_mesh,
        p.score >= 0.0,
        p.score,
        tie_break(local, &p.peer),
    )
}

/// A pseudo-random order of peers that differs from node to node.
fn tie_break(local: &PeerId, peer: &PeerId) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&local.to_bytes());
    h.update(&peer.to_bytes());
    let bytes = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// The connected peers, as the manager tracks them.
#[derive(Debug)]
pub struct PeerManager {
    limits: Limits,
    peers: HashMap<PeerId, Entry>,
}

impl PeerManager {
    pub fn new(tuning: &NetTuning) -> Self {
        PeerManager {
            limits: Limits::from_tuning(tuning),
            peers: HashMap::new(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A connection to `peer` is up; a peer already tracked keeps its
    /// entry (a second connection, or a new one racing a pruned one's close).
    pub fn connected(&mut self, peer: PeerId, outbound: bool, now: Instant) {
        self.peers.entry(peer).or_insert(Entry {
            since: now,
            outbound,
            last_used: None,
            last_take: None,
        });
    }

    /// A peer's last connection is gone; how long it was connected.
    pub fn disconnected(&mut self, peer: &PeerId, now: Instant) -> Option<Duration> {
        self.peers
            .remove(peer)
            .map(|e| now.saturating_duration_since(e.since))
    }

    /// A take (`take`) or sync request went to or came from `peer`.
    pub fn used(&mut self, peer: &PeerId, take: bool, now: Instant) {
        if let Some(e) = self.peers.get_mut(peer) {
            e.last_used = Some(now);
            if take {
                e.last_take = Some(now);
            }
        }
    }

    /// The snapshot [`to_prune`] judges, with the swarm's view of each peer.
    pub fn views(
        &self,
        now: Instant,
        in_mesh: impl Fn(&PeerId) -> bool,
        score: impl Fn(&PeerId) -> f64,
    ) -> Vec<PeerView> {
        self.peers
            .iter()
            .map(|(peer, e)| PeerView {
                peer: *peer,
                age: now.saturating_duration_since(e.since),
                idle: e.last_used.map(|t| now.saturating_duration_since(t)),
                take_idle: e.last_take.map(|t| now.saturating_duration_since(t)),
                outbound: e.outbound,
                in_mesh: in_mesh(peer),
                score: score(peer),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::from_tuning(&NetTuning {
            target_peers: 4,
            max_established_total: 6,
            peer_grace_ms: 5_000,
            ..NetTuning::default()
        })
    }

    fn view(age_s: u64) -> PeerView {
        PeerView {
            peer: PeerId::random(),
            age: Duration::from_secs(age_s),
            idle: None,
            take_idle: None,
            outbound: false,
            in_mesh: false,
            score: 0.0,
        }
    }

    #[test]
    fn limits_keep_one_slot_free_under_the_ceiling_and_never_go_under_the_target() {
        let l = limits();
        assert_eq!((l.target, l.keep, l.ceiling), (4, 5, 6));
        let tight = Limits::from_tuning(&NetTuning {
            target_peers: 6,
            max_established_total: 6,
            ..NetTuning::default()
        });
        assert_eq!((tight.keep, tight.ceiling), (6, 6));
        // One connection at most: the default target of 16 cannot raise it.
        let one = Limits::from_tuning(&NetTuning {
            max_established_total: 1,
            ..NetTuning::default()
        });
        assert_eq!((one.target, one.keep, one.ceiling), (1, 1, 1));
    }

    #[test]
    fn dials_never_exceed_what_the_node_is_short_of() {
        let l = limits();
        assert_eq!(l.dial_budget(0, 0), 4);
        assert_eq!(l.dial_budget(1, 2), 1);
        assert_eq!(l.dial_budget(3, 2), 0);
        assert_eq!(l.dial_budget(7, 0), 0);
    }

    #[test]
    fn nothing_is_pruned_up_to_the_kept_number() {
        let local = PeerId::random();
        let peers: Vec<PeerView> = (0..5).map(|_| view(100)).collect();
        assert!(to_prune(&limits(), &peers, &local).is_empty());
    }

    /// Prune as the event loop does, a tick after another, until nothing
    /// more goes; everything pruned, in order.
    fn prune_all(peers: &mut Vec<PeerView>, local: &PeerId) -> Vec<PeerId> {
        let mut out = Vec::new();
        loop {
            let now = to_prune(&limits(), peers, local);
            let over = peers.len().saturating_sub(limits().ceiling);
            assert!(now.len() <= PRUNE_PER_TICK.max(over));
            if now.is_empty() {
                return out;
            }
            peers.retain(|p| !now.contains(&p.peer));
            out.extend(now);
        }
    }

    #[test]
    fn a_peer_within_its_grace_is_never_pruned_even_beyond_the_ceiling() {
        let local = PeerId::random();
        let mut peers: Vec<PeerView> = (0..5).map(|_| view(100)).collect();
        let young: Vec<PeerView> = (0..3).map(|_| view(1)).collect();
        peers.extend(young.clone());
        let pruned = prune_all(&mut peers, &local);
        // 8 peers, keep 5: three go, none of them the young ones.
        assert_eq!(pruned.len(), 3);
        assert!(young.iter().all(|y| !pruned.contains(&y.peer)));
    }

    #[test]
    fn over_the_ceiling_the_node_gets_back_to_it_at_once_and_then_one_a_tick() {
        let local = PeerId::random();
        let mut peers: Vec<PeerView> = (0..10).map(|_| view(100)).collect();
        // Ten peers, ceiling 6: four go in one tick, then one more.
        let first = to_prune(&limits(), &peers, &local);
        assert_eq!(first.len(), 4);
        peers.retain(|p| !first.contains(&p.peer));
        assert_eq!(to_prune(&limits(), &peers, &local).len(), 1);
    }

    #[test]
    fn over_the_ceiling_a_sync_does_not_hold_a_peer_but_a_take_does() {
        let local = PeerId::random();
        let mut peers: Vec<PeerView> = (0..8).map(|_| view(100)).collect();
        for p in peers.iter_mut() {
            p.idle = Some(Duration::from_millis(100));
        }
        for p in peers.iter_mut().take(7) {
            p.take_idle = Some(Duration::from_millis(100));
        }
        // Eight peers, ceiling 6: only the one that merely syncs can go.
        let pruned = to_prune(&limits(), &peers, &local);
        assert_eq!(pruned, vec![peers[7].peer]);
    }

    #[test]
    fn only_idle_peers_go_even_beyond_the_ceiling() {
        let local = PeerId::random();
        let mut peers: Vec<PeerView> = (0..8).map(|_| view(100)).collect();
        for p in peers.iter_mut() {
            p.idle = Some(Duration::from_millis(100));
            p.take_idle = p.idle;
        }
        // Eight busy peers, over the ceiling: none is closed mid-take.
        assert!(to_prune(&limits(), &peers, &local).is_empty());
        // One idle for long, one never used: those two go.
        peers[3].idle = Some(Duration::from_secs(60));
        peers[5].idle = None;
        for p in peers.iter_mut() {
            p.take_idle = p.idle;
        }
        let mut expected = vec![peers[3].peer, peers[5].peer];
        let mut pruned = prune_all(&mut peers, &local);
        pruned.sort();
        expected.sort();
        assert_eq!(pruned, expected);
    }

    #[test]
    fn the_least_useful_go_first() {
        let local = PeerId::random();
        let mut peers: Vec<PeerView> = (0..7).map(|_| view(100)).collect();
        for p in peers.iter_mut() {
            p.in_mesh = true;
            p.score = 5.0;
        }
        peers[0].score = -30.0;
        peers[1].in_mesh = false;
        let (first, second) = (peers[1].peer, peers[0].peer);
        let pruned = prune_all(&mut peers, &local);
        assert_eq!(
            pruned,
            vec![first, second],
            "out of the mesh first, then the negative score"
        );
    }

    #[test]
    fn different_nodes_prune_different_peers_of_the_same_set() {
        let peers: Vec<PeerView> = (0..6).map(|_| view(100)).collect();
        let choices: std::collections::HashSet<PeerId> = (0..32)
            .map(|_| to_prune(&limits(), &peers, &PeerId::random())[0])
            .collect();
        assert!(peers.iter().all(|p| !p.outbound));
        assert!(choices.len() > 1, "always the same peer: {choices:?}");
    }

    #[test]
    fn the_manager_tracks_age_and_use() {
        let t0 = Instant::now();
        let mut m = PeerManager::new(&NetTuning::default());
        let p = PeerId::random();
        m.connected(p, true, t0);
        m.used(&p, true, t0 + Duration::from_secs(2));
        let v = m.views(t0 + Duration::from_secs(5), |_| true, |_| 1.5);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].age, Duration::from_secs(5));
        assert_eq!(v[0].idle, Some(Duration::from_secs(3)));
        assert!(v[0].outbound && v[0].in_mesh && v[0].score == 1.5);
        assert_eq!(
            m.disconnected(&p, t0 + Duration::from_secs(9)),
            Some(Duration::from_secs(9))
        );
        assert!(m.views(t0, |_| true, |_| 0.0).is_empty());
    }
}
