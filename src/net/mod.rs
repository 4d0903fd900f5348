//! The network layer: a libp2p swarm owned by one task, driven through a
//! cloneable [`NetHandle`] and reporting what happens as [`NetInput`]s.
//!
//! The shape is rust-libp2p's file-sharing example: [`spawn`] builds the
//! swarm and returns a handle (methods send a command over a channel, with a
//! oneshot for any reply), a receiver of [`NetInput`]s (the engine's own
//! type: nothing translates between the two), and the join handle of the
//! `event_loop::EventLoop` task that owns the swarm. Nothing else touches
//! the swarm. The layer moves bytes only: the engine encodes and decodes
//! every gossip message, request and response itself.
//!
//! Files, one concern each: `behaviour.rs` (the composed protocols),
//! `discovery.rs` (Kademlia, mDNS, identify: building them, and which
//! addresses to trust), `discovered.rs` (what the loop does with what they
//! find: DHT addresses, dials while short of peers, random walks),
//! `dialer.rs` (bootstrap and redial with backoff), `peer_manager.rs` (how
//! many peers to keep and which to prune), `gossip.rs` (gossipsub
//! parameters and scoring), `codec.rs` (request-response framing),
//! `gate.rs` (whether a take request was written, and its deadline),
//! `requests.rs` (which response belongs to which request, both ways),
//! `outbox.rs` (events on their way to the engine, shed when it lags),
//! `identity.rs` (the key file), `listen_probe.rs` (refusing a p2p port
//! another node holds), `peers.rs` (peer store persistence),
//! `nat/` (reachability, relays, hole punching, UPnP: its own module doc),
//! `event_loop.rs` (the task: its `select!`, dispatch and commands),
//! `handle.rs` (the handle), `config.rs` (tunables), `metrics.rs`,
//! `fuzz.rs` (the framing's fuzzing entry point, with the `testkit`
//! feature only).

mod behaviour;
pub mod codec;
pub mod config;
pub mod dialer;
mod discovered;
pub mod discovery;
mod event_loop;
#[cfg(feature = "testkit")]
pub mod fuzz;
pub mod gate;
pub mod gossip;
mod handle;
pub mod identity;
mod listen_probe;
mod metrics;
pub mod nat;
mod outbox;
pub mod peer_manager;
pub mod peers;
mod requests;

use libp2p::identity::Keypair;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, SwarmBuilder};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::describe_transport_error;
use crate::store::{Store, StoreError};

pub use behaviour::{SYNC_PROTOCOL, TAKE_PROTOCOL};
pub use codec::{BytesCodec, FrameTooLarge};
pub use config::{NetConfig, NetTuning};
pub use handle::NetHandle;

/// The seam's vocabulary: the network speaks the engine's own types.
pub use crate::engine::{
    InboundId, NetAction, NetInput, Proto, RequestFailure, RequestTag, Verdict,
};

/// A peer the node knows, connected or not.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    pub addresses: Vec<Multiaddr>,
    pub connected: bool,
    /// Its gossipsub score, when gossipsub has one.
    pub score: Option<f64>,
    /// The open connections to it.
    pub connections: Vec<ConnectionInfo>,
}

/// One open connection to a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The peer's address on this connection.
    pub address: Multiaddr,
    /// Whether it goes through a relay (otherwise it is direct).
    pub relayed: bool,
}

/// The node's own network state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetStatus {
    pub peer_id: PeerId,
    /// Where the node listens (unspecified addresses expanded per interface).
    pub listen_addrs: Vec<Multiaddr>,
    /// Addresses announced to peers besides the listen addresses.
    pub external_addrs: Vec<Multiaddr>,
    /// Number of peers with at least one connection.
    pub connected_peers: usize,
    /// Whether peers elsewhere can dial this node (AutoNAT).
    pub reachability: nat::Reachability,
    /// The relays holding a reservation for this node (while private).
    pub relays: Vec<PeerId>,
}

/// Why the network layer could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot set up the transport: {0}")]
    Transport(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("cannot start mDNS: {0}")]
    Mdns(#[source] std::io::Error),
    #[error("cannot set up gossipsub: {0}")]
    Gossipsub(String),
    #[error("cannot load the saved peers: {0}")]
    Store(#[from] StoreError),
    #[error("cannot dial {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    #[error("the network task has stopped")]
    Stopped,
}

/// Build the swarm, start listening, and spawn the event loop.
///
/// Fails before anything runs if a listen address cannot be bound (a busy
/// port names the address) or the saved peers cannot be read. Must be called
/// inside a tokio runtime.
pub fn spawn(
    cfg: NetConfig,
    keypair: Keypair,
    store: Store,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<(NetHandle, mpsc::Receiver<NetInput>, JoinHandle<()>), NetError> {
    for addr in &cfg.listen {
        listen_probe::check_free(addr)?;
    }
    let local = keypair.public().to_peer_id();
    let mut built = None;
    let gate = gate::WriteGate::default();
    // TCP dials reuse the listen port (libp2p's default when listening), so
    // a NAT maps them to the same public port others see, which is what hole
    // punching needs; QUIC does the same over its one UDP socket.
    let mut swarm = SwarmBuilder::with_existing_identity(keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_quic()
        .with_dns()
        .map_err(|e| NetError::Transport(format!("DNS resolver: {e}")))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| NetError::Transport(format!("relay client: {e}")))?
        .with_behaviour(|_, relay_client| {
            match behaviour::Behaviour::new(&keypair, &cfg, relay_client, &gate, registry) {
                Ok(b) => Ok(b),
                Err(e) => {
                    let text = e.to_string();
                    built = Some(e);
                    Err(text.into())
                }
            }
        })
        .map_err(|e| {
            built
                .take()
                .unwrap_or_else(|| NetError::Transport(e.to_string()))
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(cfg.tuning.idle_connection_timeout()))
        .build();

    for addr in &cfg.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen {
                addr: addr.clone(),
                reason: describe_transport_error(&e),
            })?;
    }
    for addr in &cfg.external {
        swarm.add_external_address(addr.clone());
    }

    let saved = store.load_peers()?;
    let (command_tx, command_rx) = mpsc::channel(1024);
    let (event_tx, event_rx) = mpsc::channel(cfg.tuning.event_channel_capacity.max(1));
    let (listen_tx, listen_rx) = watch::channel(Vec::new());
    let metrics = metrics::NetMetrics::new(registry);
    let event_loop = event_loop::EventLoop::new(
        swarm, cfg, store, saved, command_rx, event_tx, listen_tx, metrics, registry, gate,
    );
    let task = tokio::spawn(event_loop.run());
    Ok((NetHandle::new(local, command_tx, listen_rx), event_rx, task))
}
