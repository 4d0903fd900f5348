//! Reachable behind NAT: AutoNAT (v2) tells the node whether it is public,
//! a private node reserves slots on a few public relays (circuit relay v2)
//! and announces its `/p2p-circuit` addresses, DCUtR punches a direct
//! connection over a relayed one, and UPnP asks the router for a mapping.
//!
//! The behaviours themselves are in `behaviour.rs`; this module holds what
//! the node decides about them, one concern a file: `reach.rs` (public,
//! private or unknown, from the evidence), `relays.rs` (which peers to
//! reserve on), `circuits.rs` (the reservations' listeners), `addr.rs`
//! (which addresses are worth sharing), `config.rs` (the `[nat]` section),
//! `metrics.rs`. [`Nat`] ties them to the event loop: it is fed the swarm's
//! connection and address events and the NAT behaviours' events, and acts
//! on the swarm on the loop's tick.

pub mod addr;
pub mod circuits;
pub mod config;
mod metrics;
pub mod reach;
pub mod relays;

use std::collections::HashMap;
use std::time::Instant;

use libp2p::core::transport::ListenerId;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{autonat, dcutr, identify, kad, relay, upnp, Multiaddr, PeerId, Swarm};

use super::behaviour::Behaviour;
use super::discovery::split_peer_id;
use circuits::Circuits;
pub use config::NatConfig;
pub use metrics::NatMetrics;
use reach::Reach;
pub use reach::Reachability;
use relays::Relays;

/// One open connection, as far as NAT traversal cares.
#[derive(Clone, Debug)]
struct Conn {
    peer: PeerId,
    remote: Multiaddr,
    relayed: bool,
    outbound: bool,
}

/// The node's NAT state and decisions.
pub(crate) struct Nat {
    reach: Reach,
    relays: Relays,
    circuits: Circuits,
    conns: HashMap<ConnectionId, Conn>,
    metrics: NatMetrics,
    started: Instant,
}

impl Nat {
    pub(crate) fn new(cfg: &NatConfig, metrics: NatMetrics) -> Self {
        Nat {
            reach: Reach::default(),
            relays: Relays::new(cfg.max_relays),
            circuits: Circuits::default(),
            conns: HashMap::new(),
            metrics,
            started: Instant::now(),
        }
    }

    pub(crate) fn reachability(&self) -> Reachability {
        self.reach.reachability()
    }

    /// The relays holding a reservation for this node.
    pub(crate) fn reserved_relays(&self) -> Vec<PeerId> {
        self.circuits.reserved().copied().collect()
    }

    /// Whether the connection goes through a relay.
    pub(crate) fn is_relayed(&self, conn: &ConnectionId) -> bool {
        self.conns.get(conn).is_some_and(|c| c.relayed)
    }

    /// Circuit addresses through every relay we reach directly, for a peer we
    /// know no address of: if it holds a reservation on one of them, the dial
    /// gets through (a relay refuses at once when it does not).
    pub(crate) fn circuits_to(&self, peer: PeerId) -> Vec<Multiaddr> {
        self.relays
            .candidate_addrs()
            .filter(|(relay, _)| **relay != peer)
            .map(|(relay, addr)| {
                circuits::circuit_listen_addr(*relay, addr).with(Protocol::P2p(peer))
            })
            .collect()
    }

    // ---- connections ---------------------------------------------------

    /// A connection opened. An inbound direct connection from a public
    /// address, accepted on a public address of our own interface, proves the
    /// node reachable there: no NAT sits in front of it. (AutoNAT v2 tests
    /// only over connections the node dialled, and a public node that
    /// everyone dials may have none.)
    pub(crate) fn connected(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        id: ConnectionId,
        peer: PeerId,
        endpoint: &ConnectedPoint,
    ) {
        if let ConnectedPoint::Listener {
            local_addr,
            send_back_addr,
        } = endpoint
        {
            if !endpoint.is_relayed()
                && addr::is_public(local_addr)
                && addr::is_public(send_back_addr)
                && !self.reach.confirmed().any(|a| a == local_addr)
            {
                tracing::info!(address = %local_addr, from = %send_back_addr, "reached from the public network: this address is public");
                swarm.add_external_address(local_addr.clone());
                if let Some(now) = self.reach.confirmed_addr(local_addr) {
                    self.reachability_changed(swarm, now);
                }
            }
        }
        self.conns.insert(
            id,
            Conn {
                peer,
                remote: endpoint.get_remote_address().clone(),
                relayed: endpoint.is_relayed(),
                outbound: endpoint.is_dialer(),
            },
        );
    }

    pub(crate) fn closed(&mut self, id: ConnectionId) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        let direct_left = self
            .conns
            .values()
            .any(|c| c.peer == conn.peer && !c.relayed);
        if !direct_left {
            self.relays.disconnected(&conn.peer);
        }
    }

    /// A peer identified itself: is it a relay we could reserve on?
    pub(crate) fn identified(&mut self, id: ConnectionId, peer: PeerId, info: &identify::Info) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if conn.relayed {
            return;
        }
        let offers_relay = info.protocols.contains(&relay::HOP_PROTOCOL_NAME);
        let direct = if conn.outbound && addr::is_public(&conn.remote) {
            Some(split_peer_id(&conn.remote).0)
        } else {
            addr::shareable(&info.listen_addrs, &conn.remote)
                .into_iter()
                .find(|a| addr::is_public(a) && !addr::is_relayed(a))
        };
        self.relays.identified(peer, offers_relay, direct);
    }

    // ---- addresses and listeners ---------------------------------------

    pub(crate) fn external_confirmed(&mut self, swarm: &mut Swarm<Behaviour>, addr: &Multiaddr) {
        if let Some(now) = self.reach.confirmed_addr(addr) {
            self.reachability_changed(swarm, now);
        }
    }

    pub(crate) fn external_expired(&mut self, swarm: &mut Swarm<Behaviour>, addr: &Multiaddr) {
        if let Some(now) = self.reach.expired_addr(addr) {
            self.reachability_changed(swarm, now);
        }
    }

    /// A listener closed; if it held a reservation, the relay is rested and
    /// another chosen on the next tick.
    /// Returns whether it was a circuit listener.
    pub(crate) fn listener_closed(&mut self, id: ListenerId, reason: Option<String>) -> bool {
        let Some(relay) = self.circuits.closed(id) else {
            return false;
        };
        {
            tracing::info!(%relay, reason = reason.as_deref().unwrap_or("closed"), "relay reservation lost; choosing again");
            self.relays.lost(&relay, Instant::now());
            self.metrics
                .reservations_held
                .set(self.circuits.reserved().count() as i64);
        }
        true
    }

    fn reachability_changed(&mut self, swarm: &mut Swarm<Behaviour>, now: Reachability) {
        let confirmed: Vec<String> = self.reach.confirmed().map(|a| a.to_string()).collect();
        tracing::info!(reachability = %now, ?confirmed, "reachability changed");
        self.metrics
            .public
            .set(i64::from(now == Reachability::Public));
        let b = swarm.behaviour_mut();
        // A private node answers no DHT queries: nobody could reach it to ask.
        b.kad.set_mode(Some(if now == Reachability::Private {
            kad::Mode::Client
        } else {
            kad::Mode::Server
        }));
        // Only a node others can reach offers to relay for them.
        if let Some(relay) = b.relay.as_mut() {
            relay.set_status(Some(if now == Reachability::Public {
                relay::Status::Enable
            } else {
                relay::Status::Disable
            }));
        }
        if now == Reachability::Public {
            for relay in self.relays.release_all() {
                self.circuits.release(swarm, &relay);
            }
            self.metrics.reservations_held.set(0);
        }
    }

    /// On the loop's tick: while private, reserve on relays up to the bound.
    pub(crate) fn maintain(&mut self, swarm: &mut Swarm<Behaviour>, now: Instant) {
        if self.reach.reachability() != Reachability::Private {
            return;
        }
        for (relay, addr) in self.relays.to_reserve(now) {
            tracing::info!(%relay, address = %addr, "asking a relay for a reservation");
            if let Err(e) = self.circuits.reserve(swarm, relay, &addr) {
                tracing::warn!(%relay, error = %e, "cannot listen through the relay");
                self.relays.lost(&relay, now);
            }
        }
    }

    // ---- the NAT behaviours' events ------------------------------------

    pub(crate) fn on_autonat_client(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        event: autonat::v2::client::Event,
        inbound_full: bool,
    ) {
        match event.result {
            Ok(()) => {
                tracing::debug!(address = %event.tested_addr, server = %event.server, "a peer dialled us back")
            }
            Err(e) => {
                tracing::debug!(address = %event.tested_addr, server = %event.server, error = %e, inbound_full, "a peer could not dial us back");
                if inbound_full {
                    // Our own inbound limit may have refused the dial-back.
                    return;
                }
                if let Some(now) = self.reach.test_failed(&event.tested_addr) {
                    self.reachability_changed(swarm, now);
                }
            }
        }
    }

    pub(crate) fn on_autonat_server(&mut self, event: autonat::v2::server::Event) {
        tracing::debug!(client = %event.client, address = %event.tested_addr, ok = event.result.is_ok(), "dialled a peer back for AutoNAT");
    }

    pub(crate) fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                self.metrics.reservations_accepted.inc();
                if self.circuits.accepted(relay_peer_id) {
                    tracing::info!(
                        relay = %relay_peer_id,
                        renewal,
                        since_start_ms = self.started.elapsed().as_millis() as u64,
                        "relay reservation accepted; reachable through the relay"
                    );
                }
                self.metrics
                    .reservations_held
                    .set(self.circuits.reserved().count() as i64);
            }
            relay::client::Event::OutboundCircuitEstablished { relay_peer_id, .. } => {
                tracing::debug!(relay = %relay_peer_id, "relayed connection out");
            }
            relay::client::Event::InboundCircuitEstablished { src_peer_id, .. } => {
                tracing::debug!(peer = %src_peer_id, "relayed connection in");
            }
        }
    }

    pub(crate) fn on_relay_server(&mut self, event: relay::Event) {
        let m = &self.metrics;
        match event {
            relay::Event::ReservationReqAccepted {
                src_peer_id,
                renewed,
            } => {
                if !renewed {
                    m.relay_reservations.inc();
                    tracing::info!(peer = %src_peer_id, "holding a relay reservation for a peer");
                }
            }
            relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id } => {
                m.relay_reservations.dec();
                tracing::debug!(peer = %src_peer_id, "relay reservation ended");
            }
            relay::Event::ReservationReqDenied { src_peer_id, .. } => {
                tracing::debug!(peer = %src_peer_id, "relay reservation refused");
            }
            relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            } => {
                m.relay_circuits.inc();
                tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, "relaying a circuit");
            }
            relay::Event::CircuitClosed { .. } => {
                m.relay_circuits.dec();
            }
            relay::Event::CircuitReqDenied {
                src_peer_id,
                dst_peer_id,
                ..
            } => {
                m.relay_circuits_denied.inc();
                tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, "circuit refused");
            }
            other => tracing::debug!(event = ?other, "relay"),
        }
    }

    pub(crate) fn on_dcutr(&mut self, event: dcutr::Event) {
        self.metrics.holepunch_attempts.inc();
        match event.result {
            Ok(conn) => {
                self.metrics.holepunch_successes.inc();
                let addr = self.conns.get(&conn).map(|c| c.remote.to_string());
                tracing::info!(peer = %event.remote_peer_id, address = ?addr, "hole punched: direct connection");
            }
            Err(e) => {
                self.metrics.holepunch_failures.inc();
                tracing::info!(peer = %event.remote_peer_id, error = %e, "hole punch failed; staying relayed");
            }
        }
    }

    pub(crate) fn on_upnp(&mut self, event: upnp::Event) {
        match event {
            upnp::Event::NewExternalAddr {
                external_addr,
                local_addr,
            } => {
                tracing::info!(%external_addr, %local_addr, "the router mapped a port (UPnP)")
            }
            upnp::Event::ExpiredExternalAddr { external_addr, .. } => {
                tracing::info!(%external_addr, "UPnP mapping expired")
            }
            upnp::Event::GatewayNotFound => tracing::debug!("no UPnP gateway"),
            upnp::Event::NonRoutableGateway => {
                tracing::debug!("the UPnP gateway is not on the public network")
            }
        }
    }
}
