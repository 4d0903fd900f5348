//! Whether this node can be reached from the wider network, from what AutoNAT
//! (v2) tests, UPnP maps and the operator configures.
//!
//! - **public**: at least one direct external address is confirmed (a peer
//!   dialled it back, the router mapped it, or the config names it);
//! - **private**: no direct address is confirmed and a peer failed to dial
//!   back one of our candidates (AutoNAT v2 tests each candidate once, so one
//!   failure is the evidence there is; a later confirmation overrides it);
//! - **unknown**: nothing tested yet.
//!
//! Relayed (`/p2p-circuit`) addresses are confirmed too (by the relay
//! client), but they say nothing about our own reachability and are kept
//! apart.

use std::collections::BTreeSet;
use std::fmt;

use libp2p::Multiaddr;

use super::addr::is_relayed;

/// What the node knows of its own reachability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reachability {
    Unknown,
    Public,
    Private,
}

impl Reachability {
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        }
    }
}

impl fmt::Display for Reachability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The evidence, and the reachability it gives.
#[derive(Debug, Default)]
pub struct Reach {
    /// Direct external addresses confirmed reachable.
    confirmed: BTreeSet<Multiaddr>,
    /// Candidates a peer failed to dial back.
    failed: BTreeSet<Multiaddr>,
}

impl Reach {
    pub fn reachability(&self) -> Reachability {
        if !self.confirmed.is_empty() {
            Reachability::Public
        } else if !self.failed.is_empty() {
            Reachability::Private
        } else {
            Reachability::Unknown
        }
    }

    /// The direct external addresses confirmed reachable.
    pub fn confirmed(&self) -> impl Iterator<Item = &Multiaddr> {
        self.confirmed.iter()
    }

    /// An external address was confirmed (AutoNAT, UPnP, the config). Returns
    /// the reachability if it changed.
    pub fn confirmed_addr(&mut self, addr: &Multiaddr) -> Option<Reachability> {
        if is_relayed(addr) {
            return None;
        }
        self.change(|r| {
            r.failed.remove(addr);
            r.confirmed.insert(addr.clone());
        })
    }

    /// An external address expired (UPnP mapping lost, the swarm dropped it).
    pub fn expired_addr(&mut self, addr: &Multiaddr) -> Option<Reachability> {
        self.change(|r| {
            r.confirmed.remove(addr);
        })
    }

    /// A peer tried to dial a candidate back and could not.
    pub fn test_failed(&mut self, addr: &Multiaddr) -> Option<Reachability> {
        if is_relayed(addr) {
            return None;
        }
        self.change(|r| {
            if !r.confirmed.contains(addr) {
                r.failed.insert(addr.clone());
            }
        })
    }

    fn change(&mut self, f: impl FnOnce(&mut Self)) -> Option<Reachability> {
        let before = self.reachability();
        f(self);
        let after = self.reachability();
        (after != before).then_some(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn nothing_tested_is_unknown() {
        assert_eq!(Reach::default().reachability(), Reachability::Unknown);
    }

    #[test]
    fn a_failed_dial_back_makes_the_node_private() {
        let mut r = Reach::default();
        assert_eq!(
            r.test_failed(&a("/ip4/198.18.1.1/tcp/4001")),
            Some(Reachability::Private)
        );
        assert_eq!(r.test_failed(&a("/ip4/198.18.1.1/tcp/5555")), None);
        assert_eq!(r.reachability(), Reachability::Private);
    }

    #[test]
    fn a_confirmed_address_overrides_failures() {
        let mut r = Reach::default();
        r.test_failed(&a("/ip4/198.18.1.1/tcp/40123"));
        assert_eq!(
            r.confirmed_addr(&a("/ip4/198.18.1.1/tcp/4001")),
            Some(Reachability::Public)
        );
        // A failure of another candidate does not undo a confirmation.
        assert_eq!(r.test_failed(&a("/ip4/198.18.1.1/udp/4001/quic-v1")), None);
        assert_eq!(r.reachability(), Reachability::Public);
        // Losing the only confirmed address falls back on the failures.
        assert_eq!(
            r.expired_addr(&a("/ip4/198.18.1.1/tcp/4001")),
            Some(Reachability::Private)
        );
    }

    #[test]
    fn circuit_addresses_say_nothing_of_our_reachability() {
        let mut r = Reach::default();
        let circuit = a("/ip4/198.18.0.2/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit");
        assert_eq!(r.confirmed_addr(&circuit), None);
        assert_eq!(r.test_failed(&circuit), None);
        assert_eq!(r.reachability(), Reachability::Unknown);
        assert_eq!(r.confirmed().count(), 0);
    }
}
