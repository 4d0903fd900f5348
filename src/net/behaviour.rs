//! The composed libp2p behaviour: every protocol the node speaks, in the
//! order the swarm consults them.
//!
//! Connection limits come first so a connection over the limit is refused
//! before any other protocol spends anything on it; the peer store comes next
//! so the addresses it remembers are offered to every dial.

use std::num::NonZeroUsize;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, autonat, connection_limits, dcutr, identify, kad, mdns, peer_store, ping,
    relay, request_response, upnp, StreamProtocol,
};

use super::codec::BytesCodec;
use super::config::NetConfig;
use super::discovery;
use super::gate::WriteGate;
use super::gossip::{self, Gossipsub};
use super::nat::addr::ip_of;
use super::{NetError, Proto};

pub const TAKE_PROTOCOL_NAME: &str = "/peerbook/take/1";
pub const SYNC_PROTOCOL_NAME: &str = "/peerbook/sync/1";
/// Protocol of the take requests (the engine's maker-authoritative fills).
pub const TAKE_PROTOCOL: StreamProtocol = StreamProtocol::new(TAKE_PROTOCOL_NAME);
/// Protocol of the sync requests (book and fills pulled from a peer).
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new(SYNC_PROTOCOL_NAME);
/// The protocol name a request travels on, for logs.
pub fn proto_name(proto: Proto) -> &'static str {
    match proto {
        Proto::Take => TAKE_PROTOCOL_NAME,
        Proto::Sync => SYNC_PROTOCOL_NAME,
    }
}

/// What identify announces as our protocol family.
pub const IDENTIFY_PROTOCOL_VERSION: &str = "/peerbook/1.0.0";

/// Every protocol of the node, composed. Only the event loop touches it.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    /// Peers banned for serving forged records: refused until unblocked.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub peer_store: peer_store::Behaviour<peer_store::memory_store::MemoryStore>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub gossipsub: Gossipsub,
    pub take: request_response::Behaviour<BytesCodec>,
    pub sync: request_response::Behaviour<BytesCodec>,
    // NAT traversal (decisions in `nat/`).
    /// Circuit relay v2 server, advertised only while the node is public.
    pub relay: Toggle<relay::Behaviour>,
    /// Circuit relay v2 client: reservations and relayed dials.
    pub relay_client: relay::client::Behaviour,
    /// Hole punching over relayed connections.
    pub dcutr: dcutr::Behaviour,
    /// Asks peers to dial our candidate addresses back.
    pub autonat_client: autonat::v2::client::Behaviour,
    /// Dials peers' candidate addresses back for them.
    pub autonat_server: autonat::v2::server::Behaviour,
    pub upnp: Toggle<upnp::tokio::Behaviour>,
}

impl Behaviour {
    /// Build every behaviour from the config; gossipsub records its metrics
    /// in `registry`; the take codec writes through `take_gate`.
    pub fn new(
        keypair: &Keypair,
        cfg: &NetConfig,
        relay_client: relay::client::Behaviour,
        take_gate: &WriteGate,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Result<Self, NetError> {
        let peer_id = keypair.public().to_peer_id();
        let t = &cfg.tuning;

        // The hard limit is over the peer manager's ceiling by the overflow:
        // those connections are let in for their grace, then closed
        // (`peer_manager.rs`), so a newcomer to a full node still learns
        // other peers. Inbound and outbound are counted apart: with one
        // shared count a full node could not dial anyone, not even an
        // AutoNAT client back, which then judged itself private, switched
        // its DHT to client mode and left the network without a DHT (20
        // capped nodes on loopback: 15 went private). The node's own dials
        // are few (its dial budget, DHT queries, takes) and the peer
        // manager prunes what lingers. Outbound has room for one DHT
        // query's worth of peers more (`net.outbound_extra_connections`,
        // 20 by default): Kademlia dials every peer it asks,
        // and its bootstrap (run by libp2p whenever a new peer enters a
        // routing table of fewer than 20) asks most of a small network at
        // once; a node whose outbound was full could not dial back an
        // AutoNAT client either (7 of 20 went private).
        let hard = t
            .max_established_total
            .saturating_add(t.overflow_connections);
        let all = hard.saturating_add(t.outbound_extra_connections);
        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established_incoming(Some(hard))
                .with_max_established_outgoing(Some(all))
                .with_max_established(Some(all))
                .with_max_established_per_peer(Some(t.max_established_per_peer))
                .with_max_pending_incoming(Some(t.max_pending_incoming))
                .with_max_pending_outgoing(Some(t.max_pending_outgoing)),
        );

        // Addresses are kept after a failed dial: a peer that is down for a
        // while is still worth redialling, and its addresses are what the node
        // saves for the next start. Stale peers age out instead
        // (`forget_peer_after_secs`, and the LRU bound).
        let store_config = peer_store::memory_store::Config::default()
            .set_remove_addr_on_dial_error(false)
            .set_peer_capacity(NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN));
        let peer_store =
            peer_store::Behaviour::new(peer_store::memory_store::MemoryStore::new(store_config));

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL_VERSION.to_string(), keypair.public())
                .with_agent_version(format!("peerbook/{}", env!("CARGO_PKG_VERSION")))
                // No cache: the event loop gives the peer store only the
                // addresses worth dialling (`nat::addr::shareable`), not
                // every address a peer announces.
                .with_cache_size(0),
        );

        let ping = ping::Behaviour::new(ping::Config::new());

        let kad = discovery::kademlia(peer_id);

        let mdns = if cfg.mdns {
            let config = mdns::Config {
                query_interval: Duration::from_secs(60),
                ..mdns::Config::default()
            };
            Some(mdns::tokio::Behaviour::new(config, peer_id).map_err(NetError::Mdns)?)
        } else {
            None
        };

        let gossipsub = gossip::build(keypair, &cfg.topics, t.gossip_max_message_bytes, registry)
            .map_err(NetError::Gossipsub)?;

        let codec = BytesCodec::new(t.request_max_bytes, t.response_max_bytes);
        let rr = |protocol: StreamProtocol, timeout_ms: u64, codec: BytesCodec| {
            request_response::Behaviour::with_codec(
                codec,
                [(protocol, request_response::ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_millis(timeout_ms)),
            )
        };

        let nat = &cfg.nat;
        let relay = nat
            .relay_server
            .then(|| relay::Behaviour::new(peer_id, nat.relay_config()));
        // UPnP maps a LAN address; a node listening on loopback only has
        // none (and must not search the LAN for a gateway).
        let upnp =
            (nat.upnp && cfg.listen.iter().any(maps_to_lan)).then(upnp::tokio::Behaviour::default);

        Ok(Behaviour {
            limits,
            blocked: allow_block_list::Behaviour::default(),
            peer_store,
            identify,
            ping,
            kad,
            mdns: Toggle::from(mdns),
            gossipsub,
            take: rr(
                TAKE_PROTOCOL,
                t.take_timeout_ms,
                codec.clone().with_gate(take_gate.clone()),
            ),
            sync: rr(SYNC_PROTOCOL, t.sync_timeout_ms, codec),
            relay: Toggle::from(relay),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer_id),
            // New candidates are tested within 2 s (the default 5 s
            // delays a NATed node's relay reservation for nothing: only
            // untested candidates cost a probe).
            autonat_client: autonat::v2::client::Behaviour::new(
                rand::make_rng::<rand::rngs::StdRng>(),
                autonat::v2::client::Config::default().with_probe_interval(Duration::from_secs(2)),
            ),
            autonat_server: autonat::v2::server::Behaviour::default(),
            upnp: Toggle::from(upnp),
        })
    }
}

/// Whether a listen address may be on a LAN a router could map (any
/// interface, or a private IPv4 address).
fn maps_to_lan(addr: &libp2p::Multiaddr) -> bool {
    match ip_of(addr) {
        Some(std::net::IpAddr::V4(ip)) => ip.is_unspecified() || ip.is_private(),
        _ => false,
    }
}
