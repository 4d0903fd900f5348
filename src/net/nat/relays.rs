//! Which public peers a node behind NAT reserves relay slots on.
//!
//! rust-libp2p has no AutoRelay, so the node chooses: a candidate is a
//! connected peer that offers the relay (hop) protocol in identify and that
//! we reach directly at a public address (a relay we only reach through
//! another relay, or at a LAN address, is useless to peers elsewhere). The
//! node keeps the relays it has and adds candidates, in the order they were
//! met, until it has `max` of them; a relay that failed is not tried again
//! for a while.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

/// How long a relay whose reservation failed or was lost waits before it is
/// tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Candidate {
    addr: Multiaddr,
    /// Order of arrival, for a stable choice.
    seq: u64,
}

/// The candidates, and the relays in use.
#[derive(Debug)]
pub struct Relays {
    max: usize,
    candidates: BTreeMap<PeerId, Candidate>,
    /// Relays with a reservation asked for or held.
    chosen: BTreeMap<PeerId, Multiaddr>,
    /// Relays not to try again before then.
    resting: BTreeMap<PeerId, Instant>,
    next_seq: u64,
}

impl Relays {
    pub fn new(max: usize) -> Self {
        Relays {
            max,
            candidates: BTreeMap::new(),
            chosen: BTreeMap::new(),
            resting: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// A peer identified itself: it is a candidate if it offers the relay
    /// protocol and `direct` is a public address we reach it at directly.
    pub fn identified(&mut self, peer: PeerId, offers_relay: bool, direct: Option<Multiaddr>) {
        match (offers_relay, direct) {
            (true, Some(addr)) => {
                if let Some(c) = self.candidates.get_mut(&peer) {
                    c.addr = addr;
                } else {
                    self.candidates.insert(
                        peer,
                        Candidate {
                            addr,
                            seq: self.next_seq,
                        },
                    );
                    self.next_seq += 1;
                }
            }
            _ => {
                self.candidates.remove(&peer);
            }
        }
    }

    /// The peer has no direct connection left.
    pub fn disconnected(&mut self, peer: &PeerId) {
        self.candidates.remove(peer);
    }

    /// The reservation on `peer` was refused or lost: drop it and rest it.
    pub fn lost(&mut self, peer: &PeerId, now: Instant) {
        self.chosen.remove(peer);
        self.resting.insert(*peer, now + RETRY_AFTER);
    }

    /// Relays to reserve on now, to reach `max` (marked chosen).
    pub fn to_reserve(&mut self, now: Instant) -> Vec<(PeerId, Multiaddr)> {
        self.resting.retain(|_, until| *until > now);
        let room = self.max.saturating_sub(self.chosen.len());
        let mut free: Vec<(&PeerId, &Candidate)> = self
            .candidates
            .iter()
            .filter(|(p, _)| !self.chosen.contains_key(p) && !self.resting.contains_key(p))
            .collect();
        free.sort_by_key(|(_, c)| c.seq);
        let picked: Vec<(PeerId, Multiaddr)> = free
            .into_iter()
            .take(room)
            .map(|(p, c)| (*p, c.addr.clone()))
            .collect();
        for (p, a) in &picked {
            self.chosen.insert(*p, a.clone());
        }
        picked
    }

    /// Give up every relay (the node became public); they may be chosen again.
    pub fn release_all(&mut self) -> Vec<PeerId> {
        let all = self.chosen.keys().copied().collect();
        self.chosen.clear();
        all
    }

    pub fn chosen(&self) -> impl Iterator<Item = &PeerId> {
        self.chosen.keys()
    }

    /// Every candidate and where we reach it directly.
    pub fn candidate_addrs(&self) -> impl Iterator<Item = (&PeerId, &Multiaddr)> {
        self.candidates.iter().map(|(p, c)| (p, &c.addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> Multiaddr {
        format!("/ip4/198.18.0.{n}/tcp/4001").parse().unwrap()
    }

    #[test]
    fn only_direct_relay_peers_are_candidates_and_at_most_max_are_chosen() {
        let mut r = Relays::new(2);
        let (p, q, s, t) = (
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
        );
        let now = Instant::now();
        r.identified(p, true, Some(addr(2)));
        r.identified(q, false, Some(addr(3)));
        r.identified(s, true, None);
        r.identified(t, true, Some(addr(5)));
        let picked = r.to_reserve(now);
        assert_eq!(picked, vec![(p, addr(2)), (t, addr(5))]);
        // Nothing more while both hold.
        let u = PeerId::random();
        r.identified(u, true, Some(addr(6)));
        assert!(r.to_reserve(now).is_empty());
    }

    #[test]
    fn a_lost_relay_is_replaced_and_rested() {
        let mut r = Relays::new(1);
        let (p, q) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        r.identified(p, true, Some(addr(2)));
        r.identified(q, true, Some(addr(3)));
        assert_eq!(r.to_reserve(now), vec![(p, addr(2))]);
        r.lost(&p, now);
        assert_eq!(r.to_reserve(now), vec![(q, addr(3))]);
        r.lost(&q, now);
        assert!(r.to_reserve(now + Duration::from_secs(1)).is_empty());
        assert_eq!(r.to_reserve(now + RETRY_AFTER).len(), 1);
    }

    #[test]
    fn a_disconnected_peer_is_no_candidate() {
        let mut r = Relays::new(2);
        let p = PeerId::random();
        r.identified(p, true, Some(addr(2)));
        r.disconnected(&p);
        assert!(r.to_reserve(Instant::now()).is_empty());
    }

    #[test]
    fn releasing_frees_the_relays_for_later() {
        let mut r = Relays::new(2);
        let p = PeerId::random();
        r.identified(p, true, Some(addr(2)));
        assert_eq!(r.to_reserve(Instant::now()).len(), 1);
        assert_eq!(r.release_all(), vec![p]);
        assert_eq!(r.chosen().count(), 0);
        assert_eq!(r.to_reserve(Instant::now()).len(), 1);
    }
}
