//! What the node does with what discovery finds: identify's listen
//! addresses worth sharing go into the peer store and the DHT, peers found by a DHT walk or on the LAN are
//! dialled while the node is short of peers, and random walks look for more.
//!
//! `discovery.rs` builds the protocols and holds the small decisions about
//! addresses; this file holds their reactions, which need the swarm. The
//! event loop calls them as their events arrive and on its tick.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError};
use libp2p::{identify, kad, mdns, Multiaddr, PeerId, Swarm};

use super::behaviour::Behaviour;
use super::discovery::{dialable_listen_addrs, speaks_kad};
use crate::error::describe_dial_error;

/// The node's connected peers, against how many it wants.
#[derive(Clone, Copy)]
pub(super) struct Wanted<'a> {
    connected: &'a HashSet<PeerId>,
    target: usize,
}

impl<'a> Wanted<'a> {
    /// `connected` peers, of the `target_peers` the node wants.
    pub(super) fn new(connected: &'a HashSet<PeerId>, target_peers: u32) -> Self {
        Wanted {
            connected,
            target: target_peers as usize,
        }
    }

    /// How many peers a random walk asks for: as many as the node wants.
    /// Kademlia asks every peer on its way until that many answered, so a
    /// walk for its default 20 asked most of a small network at once: every
    /// node short of peers opened a connection to nearly every other every
    /// walk, and the network churned pruning them (20 nodes on loopback).
    pub(super) fn walk_size(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.target).unwrap_or(NonZeroUsize::MIN)
    }

    /// Whether the node has fewer peers than it wants.
    pub(super) fn short(&self) -> bool {
        self.connected.len() < self.target
    }

    /// Whether one more dial may start: fewer peers connected and being
    /// dialled than the node wants (a DHT answer of twenty peers is not
    /// twenty dials at once).
    pub(super) fn room_to_dial(&self, swarm: &Swarm<Behaviour>) -> bool {
        let dialing = swarm
            .network_info()
            .connection_counters()
            .num_pending_outgoing() as usize;
        self.connected.len() + dialing < self.target
    }
}

/// How soon after the last walk a new peer may start another.
const WALK_ON_NEW_PEER_GAP: Duration = Duration::from_secs(10);

/// A peer identified itself: if it speaks our DHT, its listen addresses
/// worth sharing go into Kademlia (judged against the address we reached
/// it at, from `connections`).
pub(super) fn on_identify(
    swarm: &mut Swarm<Behaviour>,
    connections: &HashMap<ConnectionId, (PeerId, Multiaddr)>,
    event: identify::Event,
) {
    if let identify::Event::Received {
        peer_id,
        info,
        connection_id,
    } = event
    {
        tracing::debug!(
            peer = %peer_id,
            agent = %info.agent_version,
            listen_addrs = ?info.listen_addrs,
            "peer identified"
        );
        let remote = connections
            .get(&connection_id)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(Multiaddr::empty);
        let addrs = dialable_listen_addrs(&info, &remote);
        // The peer store learns only the addresses worth dialling.
        for addr in &addrs {
            swarm.add_peer_address(peer_id, addr.clone());
        }
        if !speaks_kad(&info) {
            return;
        }
        for addr in addrs {
            swarm.behaviour_mut().kad.add_address(&peer_id, addr);
        }
    }
}

/// A Kademlia event: the peers a DHT walk found are dialled if wanted; the
/// rest is logged.
pub(super) fn on_kad(swarm: &mut Swarm<Behaviour>, wanted: Wanted<'_>, event: kad::Event) {
    match event {
        kad::Event::OutboundQueryProgressed { result, .. } => match result {
            kad::QueryResult::GetClosestPeers(Ok(ok)) => {
                tracing::debug!(found = ok.peers.len(), "DHT walk finished");
                for p in ok.peers {
                    consider_dialing(swarm, wanted, p.peer_id, p.addrs);
                }
            }
            kad::QueryResult::GetClosestPeers(Err(e)) => {
                tracing::debug!(error = %e, "DHT walk failed");
            }
            kad::QueryResult::Bootstrap(Ok(ok)) if ok.num_remaining == 0 => {
                tracing::debug!("DHT bootstrap finished");
            }
            kad::QueryResult::Bootstrap(Err(e)) => {
                tracing::debug!(error = %e, "DHT bootstrap failed");
            }
            _ => {}
        },
        kad::Event::RoutingUpdated {
            peer, is_new_peer, ..
        } if is_new_peer => {
            tracing::debug!(%peer, "added to the DHT routing table");
        }
        _ => {}
    }
}

/// An mDNS event: peers found on the LAN are dialled if wanted.
pub(super) fn on_mdns(swarm: &mut Swarm<Behaviour>, wanted: Wanted<'_>, event: mdns::Event) {
    match event {
        mdns::Event::Discovered(found) => {
            for (peer, addr) in found {
                tracing::debug!(%peer, %addr, "found on the LAN");
                consider_dialing(swarm, wanted, peer, vec![addr]);
            }
        }
        mdns::Event::Expired(gone) => {
            for (peer, addr) in gone {
                tracing::debug!(%peer, %addr, "LAN record expired");
            }
        }
    }
}

/// Remember a newly discovered peer's addresses, and dial it if the node
/// wants more peers.
fn consider_dialing(
    swarm: &mut Swarm<Behaviour>,
    wanted: Wanted<'_>,
    peer: PeerId,
    addrs: Vec<Multiaddr>,
) {
    if peer == *swarm.local_peer_id() || wanted.connected.contains(&peer) {
        return;
    }
    for addr in addrs {
        swarm.add_peer_address(peer, addr);
    }
    if !wanted.room_to_dial(swarm) {
        return;
    }
    let opts = DialOpts::peer_id(peer)
        .condition(PeerCondition::DisconnectedAndNotDialing)
        .build();
    match swarm.dial(opts) {
        Ok(()) => tracing::debug!(%peer, "dialling a discovered peer"),
        Err(DialError::DialPeerConditionFalse(_)) => {}
        Err(e) => {
            tracing::debug!(%peer, error = %describe_dial_error(&e), "cannot dial a discovered peer")
        }
    }
}

/// Random walks of the DHT while the node is short of peers: a lookup of a
/// random id meets peers the node does not know yet, which
/// [`on_kad`] then dials.
pub(super) struct RandomWalk {
    every: Duration,
    last: Instant,
    /// The last walk started by a new peer.
    last_quick: Option<Instant>,
}

impl RandomWalk {
    /// The first walk is due `every` after `now`.
    pub(super) fn new(every: Duration, now: Instant) -> Self {
        RandomWalk {
            every,
            last: now,
            last_quick: None,
        }
    }

    /// Walk if the node is short of peers, has at least one to ask, and
    /// has not walked for a while.
    pub(super) fn maybe_walk(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        wanted: Wanted<'_>,
        now: Instant,
    ) {
        if wanted.short()
            && !wanted.connected.is_empty()
            && now.duration_since(self.last) >= self.every
        {
            self.last = now;
            tracing::debug!(
                peers = wanted.connected.len(),
                "short of peers; walking the DHT"
            );
            swarm
                .behaviour_mut()
                .kad
                .get_n_closest_peers(PeerId::random(), wanted.walk_size());
        }
    }

    /// A peer that speaks our DHT identified itself: if it is the node's
    /// only peer, walk at once (at most every ten seconds) so the node asks
    /// it for others within its grace, before a full peer closes the
    /// connection. Not more: every walk dials the peers it asks, and those
    /// connections are pruned again, so walking on every new peer while
    /// short kept a 20-node network churning.
    pub(super) fn on_new_peer(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        wanted: Wanted<'_>,
        now: Instant,
    ) {
        let gap_over = self
            .last_quick
            .is_none_or(|t| now.duration_since(t) >= WALK_ON_NEW_PEER_GAP);
        if wanted.short() && wanted.connected.len() <= 1 && gap_over {
            self.last_quick = Some(now);
            self.last = now;
            tracing::debug!(
                peers = wanted.connected.len(),
                "new peer while short of peers; walking the DHT"
            );
            swarm
                .behaviour_mut()
                .kad
                .get_n_closest_peers(PeerId::random(), wanted.walk_size());
        }
    }
}
