//! The `[nat]` section: what a public node offers others as a relay, how
//! many relays a private node reserves on, and whether UPnP is tried.

use std::time::Duration;

use libp2p::relay;
use serde::{Deserialize, Serialize};

/// How the node copes with NAT, and what it offers nodes behind one.
///
/// Every count and duration must be greater than zero;
/// [`NatConfig::zero_fields`] names those that are not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatConfig {
    /// Serve as a circuit relay (v2) for nodes behind NAT. A relay only
    /// carries circuits between peers that hold a reservation on it, within
    /// the bounds below; a node behind NAT never relays (nobody could reach it).
    pub relay_server: bool,
    /// Most reservations held on this node at once, all peers together.
    pub max_reservations: usize,
    /// Most reservations of one peer.
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts before the peer must renew it.
    pub reservation_duration_secs: u64,
    /// Most relayed circuits through this node at once.
    pub max_circuits: usize,
    /// Most relayed circuits of one peer.
    pub max_circuits_per_peer: usize,
    /// A relayed circuit is closed after this long (the two ends usually
    /// punch a direct connection within seconds).
    pub max_circuit_duration_secs: u64,
    /// A relayed circuit is closed after carrying this many bytes each way.
    pub max_circuit_bytes: u64,
    /// How many public peers a node behind NAT reserves a relay slot on.
    pub max_relays: usize,
    /// Ask the router for a port mapping with UPnP (`--no-upnp` turns it off).
    pub upnp: bool,
}

impl Default for NatConfig {
    fn default() -> Self {
        NatConfig {
            relay_server: true,
            max_reservations: 128,
            max_reservations_per_peer: 4,
            reservation_duration_secs: 3600,
            max_circuits: 64,
            max_circuits_per_peer: 8,
            max_circuit_duration_secs: 600,
            max_circuit_bytes: 16 * 1024 * 1024,
            max_relays: 2,
            upnp: true,
        }
    }
}

impl NatConfig {
    /// The names of the fields that are zero (every count must be positive).
    pub fn zero_fields(&self) -> Vec<&'static str> {
        [
            ("max_reservations", self.max_reservations as u64),
            (
                "max_reservations_per_peer",
                self.max_reservations_per_peer as u64,
            ),
            ("reservation_duration_secs", self.reservation_duration_secs),
            ("max_circuits", self.max_circuits as u64),
            ("max_circuits_per_peer", self.max_circuits_per_peer as u64),
            ("max_circuit_duration_secs", self.max_circuit_duration_secs),
            ("max_circuit_bytes", self.max_circuit_bytes),
            ("max_relays", self.max_relays as u64),
        ]
        .into_iter()
        .filter(|(_, v)| *v == 0)
        .map(|(k, _)| k)
        .collect()
    }

    /// The relay server's bounds.
    pub fn relay_config(&self) -> relay::Config {
        relay::Config {
            max_reservations: self.max_reservations,
            max_reservations_per_peer: self.max_reservations_per_peer,
            reservation_duration: Duration::from_secs(self.reservation_duration_secs),
            max_circuits: self.max_circuits,
            max_circuits_per_peer: self.max_circuits_per_peer,
            max_circuit_duration: Duration::from_secs(self.max_circuit_duration_secs),
            max_circuit_bytes: self.max_circuit_bytes,
            ..relay::Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_all_positive() {
        assert!(NatConfig::default().zero_fields().is_empty());
    }

    #[test]
    fn zero_fields_are_named() {
        let c = NatConfig {
            max_relays: 0,
            max_circuit_bytes: 0,
            ..NatConfig::default()
        };
        assert_eq!(c.zero_fields(), vec!["max_circuit_bytes", "max_relays"]);
    }

    #[test]
    fn the_relay_bounds_come_from_the_section() {
        let c = NatConfig {
            max_circuits: 3,
            max_circuit_duration_secs: 7,
            ..NatConfig::default()
        };
        let r = c.relay_config();
        assert_eq!(r.max_circuits, 3);
        assert_eq!(r.max_circuit_duration, Duration::from_secs(7));
    }
}
