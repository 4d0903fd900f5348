//! The network layer's own counters, next to what libp2p-metrics records: the
//! things an operator needs to see when the engine falls behind or gossip
//! cannot be delivered.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters of the event loop, registered under `peerbook_net_`.
#[derive(Clone, Debug, Default)]
pub struct NetMetrics {
    /// Gossip messages and requests dropped because the engine lagged too far.
    pub events_shed: Counter,
    /// Publications gossipsub refused (no subscribed peer, too large, ...).
    pub publish_failures: Counter,
    /// Events waiting for the engine beyond the channel's capacity.
    pub event_backlog: Gauge,
    /// Peers with at least one connection.
    pub connected_peers: Gauge,
    /// Peers closed by the peer manager (over the kept number or the ceiling).
    pub peers_pruned: Counter,
}

impl NetMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = NetMetrics::default();
        let r = registry.sub_registry_with_prefix("peerbook_net");
        r.register(
            "events_shed",
            "Gossip messages and requests dropped because the engine lagged",
            m.events_shed.clone(),
        );
        r.register(
            "publish_failures",
            "Publications refused by gossipsub",
            m.publish_failures.clone(),
        );
        r.register(
            "event_backlog",
            "Events waiting for the engine beyond the channel capacity",
            m.event_backlog.clone(),
        );
        r.register(
            "connected_peers",
            "Peers with at least one connection",
            m.connected_peers.clone(),
        );
        r.register(
            "peers_pruned",
            "Peers closed by the peer manager to make room",
            m.peers_pruned.clone(),
        );
        m
    }
}
