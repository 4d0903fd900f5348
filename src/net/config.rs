//! Tunables of the network layer, read from the `[net]` section of the config
//! file (and `PEERBOOK_NET_*` variables), and the `NetConfig` that `net::spawn`
//! takes. Every field has a default that suits a LAN or a small cluster;
//! `config/peerbook.toml` documents them.

use std::time::Duration;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

use super::nat::NatConfig;
use crate::wire::WireLimits;

/// Limits, timeouts and intervals of the network layer.
///
/// Sizes are bytes, times are in the unit their name says. Every value must be
/// greater than zero; [`NetTuning::zero_fields`] names those that are not, so
/// the config loader can refuse them with the key's name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetTuning {
    /// Most peers the node keeps connected for long, all together; one slot
    /// under it stays free for newcomers and take connections, and above it
    /// a newcomer is let in for `peer_grace_ms` only (see `peer_manager.rs`).
    pub max_established_total: u32,
    /// Connections accepted beyond `max_established_total`, each pruned once
    /// idle after its grace: a newcomer to a full node still identifies and
    /// asks the DHT, and a taker still reaches a full maker. libp2p refuses
    /// beyond. Zero refuses at once every connection over the ceiling.
    pub overflow_connections: u32,
    /// Outbound connections allowed beyond `max_established_total +
    /// overflow_connections` (the inbound limit): Kademlia dials every peer
    /// a query asks. All connections together are capped at the sum.
    pub outbound_extra_connections: u32,
    /// A new peer is never pruned within this (ms): its time to identify,
    /// query the DHT and use a take; and an excess peer is closed after it.
    pub peer_grace_ms: u64,
    /// Most connections to one peer (a relayed and a hole-punched direct
    /// connection coexist for a moment, and both sides may dial at once).
    pub max_established_per_peer: u32,
    /// Most inbound connections still in their handshake.
    pub max_pending_incoming: u32,
    /// Most outbound dials in flight.
    pub max_pending_outgoing: u32,
    /// While fewer peers than this are connected, the node redials lost peers,
    /// retries bootstrap addresses and walks the DHT for more.
    pub target_peers: u32,
    /// A connection no protocol uses for this long is closed.
    pub idle_connection_timeout_secs: u64,
    /// Largest gossip message accepted or published.
    pub gossip_max_message_bytes: usize,
    /// Largest request (take or sync) accepted or sent.
    pub request_max_bytes: usize,
    /// Largest response accepted or sent (sync pages are the big ones).
    pub response_max_bytes: usize,
    /// How long a take request may wait for its response.
    pub take_timeout_ms: u64,
    /// How long a sync request may wait for its response.
    pub sync_timeout_ms: u64,
    /// How often the known peers are saved to the store (they are saved at
    /// shutdown too).
    pub peer_save_interval_secs: u64,
    /// First wait before redialling a lost peer or retrying a bootstrap
    /// address; it doubles after every failure.
    pub redial_initial_ms: u64,
    /// Longest wait between two redials.
    pub redial_max_ms: u64,
    /// A lost peer that stays unreachable this long is no longer redialled
    /// (it stays in the peer store and is tried again after a restart).
    pub redial_give_up_secs: u64,
    /// How often the node walks the DHT for new peers while it is short of them.
    pub random_walk_interval_secs: u64,
    /// Peers not connected for this long are not saved any more.
    pub forget_peer_after_secs: u64,
    /// Capacity of the channel of events to the engine; beyond it events wait
    /// in a buffer of `event_buffer_max` entries (see `event_loop.rs`).
    pub event_channel_capacity: usize,
    /// Most events waiting for the engine before gossip and requests are shed.
    pub event_buffer_max: usize,
}

impl NetTuning {
    /// The sizes the network enforces, for the engine to decode within.
    pub fn wire_limits(&self) -> WireLimits {
        WireLimits {
            gossip: self.gossip_max_message_bytes,
            request: self.request_max_bytes,
            response: self.response_max_bytes,
        }
    }
}

impl Default for NetTuning {
    fn default() -> Self {
        let wire = WireLimits::default();
        NetTuning {
            max_established_total: 128,
            overflow_connections: 4,
            outbound_extra_connections: 20,
            peer_grace_ms: 5_000,
            max_established_per_peer: 3,
            max_pending_incoming: 64,
            max_pending_outgoing: 64,
            target_peers: 16,
            idle_connection_timeout_secs: 300,
            gossip_max_message_bytes: wire.gossip,
            request_max_bytes: wire.request,
            response_max_bytes: wire.response,
            take_timeout_ms: 3_000,
            sync_timeout_ms: 30_000,
            peer_save_interval_secs: 30,
            redial_initial_ms: 1_000,
            redial_max_ms: 60_000,
            redial_give_up_secs: 3_600,
            random_walk_interval_secs: 30,
            forget_peer_after_secs: 7 * 24 * 3600,
            event_channel_capacity: 1_024,
            event_buffer_max: 65_536,
        }
    }
}

impl NetTuning {
    /// The names of the fields that are zero (every field must be positive
    /// but `overflow_connections`, where zero refuses every connection over
    /// `max_established_total` at once).
    pub fn zero_fields(&self) -> Vec<&'static str> {
        let fields: [(&'static str, u64); 20] = [
            ("max_established_total", self.max_established_total.into()),
            ("peer_grace_ms", self.peer_grace_ms),
            (
                "max_established_per_peer",
                self.max_established_per_peer.into(),
            ),
            ("max_pending_incoming", self.max_pending_incoming.into()),
            ("max_pending_outgoing", self.max_pending_outgoing.into()),
            ("target_peers", self.target_peers.into()),
            (
                "idle_connection_timeout_secs",
                self.idle_connection_timeout_secs,
            ),
            (
                "gossip_max_message_bytes",
                self.gossip_max_message_bytes as u64,
            ),
            ("request_max_bytes", self.request_max_bytes as u64),
            ("response_max_bytes", self.response_max_bytes as u64),
            ("take_timeout_ms", self.take_timeout_ms),
            ("sync_timeout_ms", self.sync_timeout_ms),
            ("peer_save_interval_secs", self.peer_save_interval_secs),
            ("redial_initial_ms", self.redial_initial_ms),
            ("redial_max_ms", self.redial_max_ms),
            ("redial_give_up_secs", self.redial_give_up_secs),
            ("random_walk_interval_secs", self.random_walk_interval_secs),
            ("forget_peer_after_secs", self.forget_peer_after_secs),
            ("event_channel_capacity", self.event_channel_capacity as u64),
            ("event_buffer_max", self.event_buffer_max as u64),
        ];
        fields
            .into_iter()
            .filter(|(_, v)| *v == 0)
            .map(|(name, _)| name)
            .collect()
    }

    pub(crate) fn idle_connection_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_connection_timeout_secs)
    }
}

/// Everything `net::spawn` needs to know, resolved from the node's config.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Addresses to listen on; each must bind or the node does not start.
    pub listen: Vec<Multiaddr>,
    /// Addresses to dial at start, with or without a trailing `/p2p/<id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses to announce to peers besides the listen addresses (a public
    /// address in front of a NAT or a container network).
    pub external: Vec<Multiaddr>,
    /// Whether to find peers on the local network with mDNS.
    pub mdns: bool,
    /// The gossip topics of the enabled markets: subscribed at start, and the
    /// only topics peers may subscribe us to.
    pub topics: Vec<String>,
    /// Limits, timeouts and intervals.
    pub tuning: NetTuning,
    /// Relaying, reservations, UPnP (the `[nat]` section).
    pub nat: NatConfig,
}

impl NetConfig {
    /// A config for tests and tools: listen on `listen`, no bootstrap, no
    /// mDNS, default tuning.
    pub fn new(listen: Vec<Multiaddr>, topics: Vec<String>) -> Self {
        NetConfig {
            listen,
            bootstrap: Vec::new(),
            external: Vec::new(),
            mdns: false,
            topics,
            tuning: NetTuning::default(),
            nat: NatConfig {
                upnp: false,
                ..NatConfig::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_all_positive() {
        assert!(NetTuning::default().zero_fields().is_empty());
    }

    #[test]
    fn zero_fields_are_named() {
        let t = NetTuning {
            target_peers: 0,
            response_max_bytes: 0,
            ..NetTuning::default()
        };
        assert_eq!(t.zero_fields(), vec!["target_peers", "response_max_bytes"]);
    }
}
