//! Who to dial and when: bootstrap addresses and lost peers, each retried with
//! exponential backoff while the node is short of peers.
//!
//! A node runs for months; peers restart, networks partition, a bootstrap host
//! is down for an hour. None of that is fatal: the node keeps trying, politely
//! (the wait doubles up to a maximum), and stops as soon as it has enough
//! peers. This is plain bookkeeping with the time passed in, so it is tested
//! without a network; the event loop does the dialling.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use super::config::NetTuning;
use super::discovery::split_peer_id;

/// A connection that stayed up this long resets the peer's backoff; one
/// closed sooner counts as a failed attempt.
pub const LASTING: Duration = Duration::from_secs(30);

/// Exponential backoff: the wait doubles after every failure, up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next_wait: Duration,
    due: Instant,
}

impl Backoff {
    /// A backoff whose first attempt is due at `due`.
    pub fn new(initial: Duration, max: Duration, due: Instant) -> Self {
        Backoff {
            initial,
            max,
            next_wait: initial,
            due,
        }
    }

    /// Record a failure at `now`; returns how long until the next attempt.
    /// A failure while still waiting after the last one does not double the
    /// wait again: one doubling per attempt. (Kademlia's bootstrap dials a
    /// full peer several times within milliseconds; each closed at once
    /// doubled the wait, to a minute, before the dialer tried once.)
    pub fn failed(&mut self, now: Instant) -> Duration {
        if now < self.due {
            return self.due - now;
        }
        let wait = self.next_wait;
        self.due = now + wait;
        self.next_wait = (wait * 2).min(self.max);
        wait
    }

    /// Back to the initial wait, due at `due`.
    pub fn reset(&mut self, due: Instant) {
        self.next_wait = self.initial;
        self.due = due;
    }

    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.due
    }
}

/// One address given with `--bootstrap`.
#[derive(Debug)]
struct Bootstrap {
    /// As the operator wrote it, for log lines.
    given: Multiaddr,
    /// Without the `/p2p/` part.
    addr: Multiaddr,
    /// Known from the address, or learned from the first handshake.
    peer: Option<PeerId>,
    backoff: Backoff,
    in_flight: Option<ConnectionId>,
}

/// A known peer the node wants a connection to again (or is connected to:
/// its backoff is kept until the connection has lasted).
#[derive(Debug)]
struct Redial {
    backoff: Backoff,
    /// When the peer was lost (or loaded from the store): the give-up clock.
    since: Instant,
    in_flight: Option<ConnectionId>,
}

/// A dial the event loop should make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedDial {
    /// Dial bootstrap number `index` at `addr`, expecting `peer` if known.
    Bootstrap {
        index: usize,
        addr: Multiaddr,
        peer: Option<PeerId>,
    },
    /// Dial a known peer at the addresses the peer store has for it.
    Peer(PeerId),
}

/// What a failed dial was, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailedDial {
    Bootstrap {
        given: Multiaddr,
        retry_in: Duration,
    },
    Peer {
        peer: PeerId,
        retry_in: Duration,
    },
    PeerGivenUp {
        peer: PeerId,
    },
}

/// A bootstrap address that led to a connection, so the DHT can learn it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapReached {
    pub peer: PeerId,
    pub addr: Multiaddr,
    /// Whether this is the first time the peer id became known.
    pub learned_peer_id: bool,
}

/// The bootstrap list and the redial set.
#[derive(Debug)]
pub struct Dialer {
    bootstraps: Vec<Bootstrap>,
    redial: HashMap<PeerId, Redial>,
    initial: Duration,
    max: Duration,
    give_up: Duration,
}

impl Dialer {
    /// Every bootstrap address is due at `now`.
    pub fn new(bootstrap: &[Multiaddr], tuning: &NetTuning, now: Instant) -> Self {
        let initial = Duration::from_millis(tuning.redial_initial_ms);
        let max = Duration::from_millis(tuning.redial_max_ms).max(initial);
        let bootstraps = bootstrap
            .iter()
            .map(|given| {
                let (addr, peer) = split_peer_id(given);
                Bootstrap {
                    given: given.clone(),
                    addr,
                    peer,
                    backoff: Backoff::new(initial, max, now),
                    in_flight: None,
                }
            })
            .collect();
        Dialer {
            bootstraps,
            redial: HashMap::new(),
            initial,
            max,
            give_up: Duration::from_secs(tuning.redial_give_up_secs),
        }
    }

    /// Want a connection to `peer`, first attempt due at `due`. Used for
    /// peers loaded from the store (due now) and lost peers (due after the
    /// initial wait). An entry already there keeps its backoff.
    pub fn want(&mut self, peer: PeerId, due: Instant) {
        let (initial, max) = (self.initial, self.max);
        self.redial.entry(peer).or_insert_with(|| Redial {
            backoff: Backoff::new(initial, max, due),
            since: due,
            in_flight: None,
        });
    }

    /// The last connection to `peer` closed at `now` after `lasted`: redial
    /// it after the initial wait if the connection lasted, else after the
    /// next, doubled, wait (a bootstrap address of the peer likewise).
    pub fn closed(&mut self, peer: PeerId, lasted: Duration, now: Instant) -> Duration {
        let lasting = lasted >= LASTING;
        for b in self.bootstraps.iter_mut().filter(|b| b.peer == Some(peer)) {
            if lasting {
                b.backoff.reset(now + self.initial);
            } else {
                b.backoff.failed(now);
            }
        }
        let (initial, max) = (self.initial, self.max);
        let r = self.redial.entry(peer).or_insert_with(|| Redial {
            backoff: Backoff::new(initial, max, now),
            since: now,
            in_flight: None,
        });
        if lasting {
            r.since = now;
            r.backoff.reset(now + initial);
            initial
        } else {
            r.backoff.failed(now)
        }
    }

    /// Forget a peer (it is connected, or it misbehaved).
    pub fn forget(&mut self, peer: &PeerId) {
        self.redial.remove(peer);
    }

    /// The dials due at `now`, at most `budget` (what the node is short of
    /// peers, less the dials in flight); a bootstrap whose peer is connected, and a peer that is
    /// connected, are skipped. The caller reports each dial it starts with
    /// [`Dialer::dialing`].
    pub fn due(
        &mut self,
        now: Instant,
        budget: usize,
        is_connected: impl Fn(&PeerId) -> bool,
    ) -> Vec<PlannedDial> {
        let mut out = Vec::new();
        if budget == 0 {
            return out;
        }
        for (index, b) in self.bootstraps.iter().enumerate() {
            let satisfied = b.peer.as_ref().is_some_and(&is_connected);
            if !satisfied && b.in_flight.is_none() && b.backoff.is_due(now) {
                out.push(PlannedDial::Bootstrap {
                    index,
                    addr: b.addr.clone(),
                    peer: b.peer,
                });
            }
        }
        let give_up = self.give_up;
        let mut given_up = Vec::new();
        let by_bootstrap: Vec<PeerId> = self.bootstraps.iter().filter_map(|b| b.peer).collect();
        for (peer, r) in self.redial.iter() {
            if is_connected(peer)
                || r.in_flight.is_some()
                || !r.backoff.is_due(now)
                || by_bootstrap.contains(peer)
            {
                continue;
            }
            if now.saturating_duration_since(r.since) > give_up {
                given_up.push(*peer);
                continue;
            }
            out.push(PlannedDial::Peer(*peer));
        }
        for peer in given_up {
            tracing::info!(%peer, "giving up redialling a peer unreachable for too long");
            self.redial.remove(&peer);
        }
        // Bootstraps first, then the peers due the longest.
        let redials = &self.redial;
        let waited = |d: &PlannedDial| match d {
            PlannedDial::Bootstrap { .. } => None,
            PlannedDial::Peer(p) => redials.get(p).map(|r| r.backoff.due),
        };
        out.sort_by_key(|d| waited(d));
        out.truncate(budget);
        out
    }

    /// A planned dial was started as connection `conn`.
    pub fn dialing(&mut self, dial: &PlannedDial, conn: ConnectionId) {
        match dial {
            PlannedDial::Bootstrap { index, .. } => {
                if let Some(b) = self.bootstraps.get_mut(*index) {
                    b.in_flight = Some(conn);
                }
            }
            PlannedDial::Peer(peer) => {
                if let Some(r) = self.redial.get_mut(peer) {
                    r.in_flight = Some(conn);
                }
            }
        }
    }

    /// A connection to `peer` was established (by us or by them).
    pub fn established(
        &mut self,
        conn: ConnectionId,
        peer: PeerId,
        now: Instant,
    ) -> Option<BootstrapReached> {
        // The peer's backoff stays until the connection has lasted (see `closed`).
        let (initial, max) = (self.initial, self.max);
        let r = self.redial.entry(peer).or_insert_with(|| Redial {
            backoff: Backoff::new(initial, max, now),
            since: now,
            in_flight: None,
        });
        r.in_flight = None;
        let b = self
            .bootstraps
            .iter_mut()
            .find(|b| b.in_flight == Some(conn) || b.peer == Some(peer))?;
        let learned_peer_id = b.peer.is_none();
        let via_this_dial = b.in_flight == Some(conn);
        b.in_flight = None;
        if b.peer.is_some_and(|p| p != peer) {
            // Someone else answers at that address now; believe the handshake.
            tracing::warn!(
                address = %b.given,
                expected = ?b.peer,
                %peer,
                "bootstrap address answered with another peer id"
            );
        }
        b.peer = Some(peer);
        via_this_dial.then(|| BootstrapReached {
            peer,
            addr: b.addr.clone(),
            learned_peer_id,
        })
    }

    /// Dial `conn` (to `peer`, if known) failed at `now`.
    pub fn failed(
        &mut self,
        conn: ConnectionId,
        peer: Option<PeerId>,
        now: Instant,
    ) -> Option<FailedDial> {
        if let Some(b) = self
            .bootstraps
            .iter_mut()
            .find(|b| b.in_flight == Some(conn))
        {
            b.in_flight = None;
            let retry_in = b.backoff.failed(now);
            return Some(FailedDial::Bootstrap {
                given: b.given.clone(),
                retry_in,
            });
        }
        let peer = peer?;
        let r = self.redial.get_mut(&peer)?;
        if r.in_flight != Some(conn) {
            return None;
        }
        r.in_flight = None;
        if now.saturating_duration_since(r.since) > self.give_up {
            self.redial.remove(&peer);
            return Some(FailedDial::PeerGivenUp { peer });
        }
        let retry_in = r.backoff.failed(now);
        Some(FailedDial::Peer { peer, retry_in })
    }

    /// Number of peers waiting to be redialled (or connected, with their
    /// backoff kept).
    pub fn pending_redials(&self) -> usize {
        self.redial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuning() -> NetTuning {
        NetTuning {
            redial_initial_ms: 1_000,
            redial_max_ms: 4_000,
            redial_give_up_secs: 60,
            ..NetTuning::default()
        }
    }

    #[test]
    fn a_failing_bootstrap_is_retried_with_doubling_waits_up_to_the_maximum() {
        let t0 = Instant::now();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let mut d = Dialer::new(std::slice::from_ref(&addr), &tuning(), t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for i in 0..4 {
            let due = d.due(now, 8, |_| false);
            assert_eq!(due.len(), 1, "attempt {i}");
            let conn = ConnectionId::new_unchecked(i);
            d.dialing(&due[0], conn);
            assert!(d.due(now, 8, |_| false).is_empty(), "in flight");
            match d.failed(conn, None, now) {
                Some(FailedDial::Bootstrap { given, retry_in }) => {
                    assert_eq!(given, addr);
                    waits.push(retry_in.as_secs());
                    assert!(d.due(now, 8, |_| false).is_empty(), "waiting");
                    now += retry_in;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(waits, vec![1, 2, 4, 4]);
    }

    #[test]
    fn nothing_is_dialled_when_the_node_has_enough_peers() {
        let t0 = Instant::now();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let mut d = Dialer::new(&[addr], &tuning(), t0);
        d.want(PeerId::random(), t0);
        assert!(d.due(t0, 0, |_| false).is_empty());
        assert_eq!(d.due(t0, 8, |_| false).len(), 2);
    }

    #[test]
    fn a_bootstrap_without_peer_id_learns_it_and_is_not_redialled_while_connected() {
        let t0 = Instant::now();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let mut d = Dialer::new(std::slice::from_ref(&addr), &tuning(), t0);
        let due = d.due(t0, 8, |_| false);
        let conn = ConnectionId::new_unchecked(7);
        d.dialing(&due[0], conn);
        let peer = PeerId::random();
        let reached = d.established(conn, peer, t0).unwrap();
        assert_eq!(
            reached,
            BootstrapReached {
                peer,
                addr,
                learned_peer_id: true
            }
        );
        assert!(d.due(t0, 8, |p| *p == peer).is_empty());
        // Once the peer is gone, the bootstrap is due again.
        assert_eq!(d.due(t0, 8, |_| false).len(), 1);
    }

    #[test]
    fn a_lost_peer_is_redialled_then_given_up() {
        let t0 = Instant::now();
        let mut d = Dialer::new(&[], &tuning(), t0);
        let peer = PeerId::random();
        d.closed(peer, LASTING, t0);
        assert!(d.due(t0, 8, |_| false).is_empty(), "initial wait");
        let mut now = t0 + Duration::from_secs(1);
        let mut n = 0;
        loop {
            let due = d.due(now, 8, |_| false);
            if due.is_empty() {
                break;
            }
            assert_eq!(due, vec![PlannedDial::Peer(peer)]);
            let conn = ConnectionId::new_unchecked(n);
            n += 1;
            d.dialing(&due[0], conn);
            match d.failed(conn, Some(peer), now) {
                Some(FailedDial::Peer { retry_in, .. }) => now += retry_in,
                Some(FailedDial::PeerGivenUp { .. }) => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(n >= 10, "retried {n} times in the give-up window");
        assert_eq!(d.pending_redials(), 0);
    }

    #[test]
    fn a_connected_peer_is_not_redialled() {
        let t0 = Instant::now();
        let mut d = Dialer::new(&[], &tuning(), t0);
        let peer = PeerId::random();
        d.want(peer, t0);
        d.established(ConnectionId::new_unchecked(1), peer, t0);
        assert!(d.due(t0, 8, |p| *p == peer).is_empty());
    }

    #[test]
    fn failures_while_waiting_do_not_double_the_wait_again() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), t0);
        assert_eq!(b.failed(t0), Duration::from_secs(1));
        // Four more connections closed at once within the same wait.
        for ms in [5, 10, 15, 20] {
            let now = t0 + Duration::from_millis(ms);
            assert_eq!(b.failed(now), Duration::from_millis(1_000 - ms));
        }
        // The next attempt, when due, fails: only now the wait doubles.
        assert_eq!(
            b.failed(t0 + Duration::from_secs(1)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn only_a_connection_that_lasted_resets_the_backoff() {
        let t0 = Instant::now();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let mut d = Dialer::new(std::slice::from_ref(&addr), &tuning(), t0);
        let peer = PeerId::random();
        let mut now = t0;
        let mut waits = Vec::new();
        // A full bootstrap node lets us in and closes after a few seconds.
        for i in 0..4 {
            let due = d.due(now, 8, |_| false);
            assert_eq!(due.len(), 1, "attempt {i}: {due:?}");
            let conn = ConnectionId::new_unchecked(i);
            d.dialing(&due[0], conn);
            d.established(conn, peer, now);
            now += Duration::from_secs(5);
            let wait = d.closed(peer, Duration::from_secs(5), now);
            waits.push(wait.as_secs());
            assert!(
                d.due(now, 8, |_| false).is_empty(),
                "redialled at once after a short connection"
            );
            now += wait;
        }
        assert_eq!(waits, vec![1, 2, 4, 4]);
        // A connection that lasted: back to the initial wait.
        let due = d.due(now, 8, |_| false);
        let conn = ConnectionId::new_unchecked(9);
        d.dialing(&due[0], conn);
        d.established(conn, peer, now);
        now += LASTING;
        assert_eq!(d.closed(peer, LASTING, now), Duration::from_secs(1));
        assert!(d.due(now, 8, |_| false).is_empty());
        assert_eq!(d.due(now + Duration::from_secs(1), 8, |_| false).len(), 1);
    }

    #[test]
    fn no_more_dials_than_the_budget_bootstraps_first() {
        let t0 = Instant::now();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let mut d = Dialer::new(std::slice::from_ref(&addr), &tuning(), t0);
        for _ in 0..10 {
            d.want(PeerId::random(), t0);
        }
        let due = d.due(t0, 3, |_| false);
        assert_eq!(due.len(), 3);
        assert!(matches!(due[0], PlannedDial::Bootstrap { .. }));
    }
}
