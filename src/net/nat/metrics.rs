//! Counters of NAT traversal, registered under `peerbook_nat_`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Default)]
pub struct NatMetrics {
    /// 1 when AutoNAT found the node public, 0 when private or unknown.
    pub public: Gauge,
    /// Reservations this node holds on relays.
    pub reservations_held: Gauge,
    /// Reservations relays accepted for this node (renewals included).
    pub reservations_accepted: Counter,
    /// Reservations this node, as a relay, holds for others.
    pub relay_reservations: Gauge,
    /// Circuits this node, as a relay, carries now.
    pub relay_circuits: Gauge,
    /// Circuits this node, as a relay, refused (over a bound, no reservation).
    pub relay_circuits_denied: Counter,
    /// Hole punches tried over a relayed connection.
    pub holepunch_attempts: Counter,
    /// Hole punches that ended on a direct connection.
    pub holepunch_successes: Counter,
    /// Hole punches that failed (the relayed connection stays).
    pub holepunch_failures: Counter,
}

impl NatMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = NatMetrics::default();
        let r = registry.sub_registry_with_prefix("peerbook_nat");
        r.register(
            "public",
            "1 when the node is confirmed publicly reachable",
            m.public.clone(),
        );
        r.register(
            "reservations_held",
            "Relay reservations this node holds",
            m.reservations_held.clone(),
        );
        r.register(
            "reservations_accepted",
            "Relay reservations accepted for this node, renewals included",
            m.reservations_accepted.clone(),
        );
        r.register(
            "relay_reservations",
            "Reservations this node holds for others as a relay",
            m.relay_reservations.clone(),
        );
        r.register(
            "relay_circuits",
            "Circuits this node relays now",
            m.relay_circuits.clone(),
        );
        r.register(
            "relay_circuits_denied",
            "Circuits this node refused to relay",
            m.relay_circuits_denied.clone(),
        );
        r.register(
            "holepunch_attempts",
            "Hole punches tried over a relayed connection",
            m.holepunch_attempts.clone(),
        );
        r.register(
            "holepunch_successes",
            "Hole punches that ended on a direct connection",
            m.holepunch_successes.clone(),
        );
        r.register(
            "holepunch_failures",
            "Hole punches that failed",
            m.holepunch_failures.clone(),
        );
        m
    }
}
