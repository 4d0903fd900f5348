//! The network task: one loop that owns the swarm, turns swarm events into
//! [`NetInput`]s for the engine and [`Command`]s from handles into swarm
//! calls, dials bootstrap and lost peers, walks the DHT while short of peers
//! and saves the peer store.
//!
//! This file is the loop itself: its `select!`, the dispatch of every swarm
//! event and command, and the connection bookkeeping. What it dispatches to
//! lives beside it, one concern per file: the events' way to the engine and
//! their shedding when it lags (`outbox.rs`; the loop is never blocked by
//! the engine), the correlation of requests and responses (`requests.rs`),
//! the reactions to identify, Kademlia and mDNS and the random walks
//! (`discovered.rs`), dialling with backoff (`dialer.rs`) and the peer
//! store's persistence (`peers.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::metrics::{Metrics, Recorder};
use libp2p::peer_store::Store as _;
use libp2p::request_response;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionError, ConnectionId, DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use crate::clock::now_ms;
use crate::error::describe_dial_error;
use crate::store::{Store, StoredPeer};

use super::behaviour::proto_name;
use super::behaviour::{Behaviour, BehaviourEvent};
use super::codec::BytesCodec;
use super::config::{NetConfig, NetTuning};
use super::dialer::{Dialer, FailedDial, PlannedDial};
use super::discovered::{self, RandomWalk, Wanted};
use super::discovery::{plain_addrs, split_peer_id};
use super::gate::WriteGate;
use super::handle::Command;
use super::metrics::NetMetrics;
use super::nat::{Nat, NatMetrics};
use super::outbox::{self, Outbox};
use super::peer_manager::{self, PeerManager};
use super::peers::{self, LastSeen, PeerSaver};
use super::requests::{request_error, Requests};
use super::{
    ConnectionInfo, NetError, NetInput, NetStatus, PeerInfo, Proto, RequestFailure, Verdict,
};

/// How often the loop does its housekeeping (due dials, random walks).
const TICK: Duration = Duration::from_secs(1);
/// How often outbound requests' deadlines are checked: a take fails within
/// this of `net.take_timeout_ms`, stream opening included.
const DEADLINE_CHECK: Duration = Duration::from_millis(100);

/// A connection the other side closed sooner than this was refused (a
/// full node lets nothing in beyond its hard limit).
const REFUSED_WITHIN: Duration = Duration::from_secs(1);
/// An AutoNAT dial-back that failed this soon after our inbound limit
/// refused a connection is not taken as evidence of a NAT: the limit may
/// have refused the dial-back itself (a full hub judged itself private and
/// stopped serving the DHT).
const DENIED_COUNTS_FOR: Duration = Duration::from_secs(30);

/// The task that owns the swarm.
pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    tuning: NetTuning,
    commands: mpsc::Receiver<Command>,
    /// The events for the engine, and those waiting for it.
    outbox: Outbox,
    listen_addrs: watch::Sender<Vec<Multiaddr>>,
    metrics: NetMetrics,
    libp2p_metrics: Metrics,
    dialer: Dialer,
    connected: HashSet<PeerId>,
    /// Remote address of every open connection.
    connections: HashMap<ConnectionId, (PeerId, Multiaddr)>,
    last_seen: LastSeen,
    requests: Requests,
    peer_saver: PeerSaver,
    random_walk: RandomWalk,
    /// Peers the engine banned, until when.
    bans: HashMap<PeerId, Instant>,
    /// Reachability, relays and hole punching.
    nat: Nat,
    /// How many peers to keep, and which to let go.
    peer_manager: PeerManager,
    /// When the DHT was last asked for a peer a request could not dial.
    lookups: HashMap<PeerId, Instant>,
    /// Peers that closed our last connection at once, and until when
    /// requests do not dial them (the dialer's backoff for them).
    refused: HashMap<PeerId, Instant>,
    /// When our inbound limit last refused a connection.
    denied_inbound: Option<Instant>,
    /// Whether a take request was written (shared with the take codec).
    gate: WriteGate,
}

impl EventLoop {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        mut swarm: Swarm<Behaviour>,
        cfg: NetConfig,
        store: Store,
        saved: Vec<StoredPeer>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetInput>,
        listen_addrs: watch::Sender<Vec<Multiaddr>>,
        metrics: NetMetrics,
        registry: &mut prometheus_client::registry::Registry,
        gate: WriteGate,
    ) -> Self {
        let now = Instant::now();
        let local = *swarm.local_peer_id();
        let mut dialer = Dialer::new(&cfg.bootstrap, &cfg.tuning, now);
        let mut last_seen = LastSeen::default();
        let saved_count = saved.len();
        let to_dial = peers::restore(
            saved,
            swarm.behaviour_mut().peer_store.store_mut(),
            &mut last_seen,
            local,
        );
        for peer in &to_dial {
            dialer.want(*peer, now);
        }
        if saved_count > 0 {
            tracing::info!(
                saved = saved_count,
                dialling = to_dial.len(),
                "loaded the saved peers"
            );
        }
        let walk_every = Duration::from_secs(cfg.tuning.random_walk_interval_secs);
        let mut nat = Nat::new(&cfg.nat, NatMetrics::new(registry));
        // Configured external addresses are the operator's word: confirmed.
        for addr in &cfg.external {
            nat.external_confirmed(&mut swarm, addr);
        }
        let peer_manager = PeerManager::new(&cfg.tuning);
        EventLoop {
            swarm,
            outbox: Outbox::new(events, cfg.tuning.event_buffer_max, &metrics),
            tuning: cfg.tuning,
            commands,
            listen_addrs,
            metrics,
            libp2p_metrics: Metrics::new(registry),
            dialer,
            connected: HashSet::new(),
            connections: HashMap::new(),
            last_seen,
            requests: Requests::default(),
            peer_saver: PeerSaver::new(store),
            random_walk: RandomWalk::new(walk_every, now),
            bans: HashMap::new(),
            nat,
            peer_manager,
            lookups: HashMap::new(),
            refused: HashMap::new(),
            denied_inbound: None,
            gate,
        }
    }

    /// Run until a shutdown command arrives or every handle is dropped; the
    /// peer store is saved on the way out.
    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let save_every = Duration::from_secs(self.tuning.peer_save_interval_secs.max(1));
        let mut save =
            tokio::time::interval_at(tokio::time::Instant::now() + save_every, save_every);
        save.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // Deadlines of outbound requests are checked this often.
        let mut deadlines = tokio::time::interval(DEADLINE_CHECK);
        deadlines.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // Dial bootstrap and saved peers right away rather than at the first tick.
        self.maintain();
        // A sender of our own, so a reserved slot borrows it rather than `self`.
        let events = self.outbox.sender();
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => {
                        self.save_peers_now().await;
                        let _ = reply.send(());
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => {
                        self.save_peers_now().await;
                        break;
                    }
                },
                permit = events.reserve(), if self.outbox.is_backed_up() => match permit {
                    Ok(permit) => self.outbox.send_next(permit),
                    Err(_) => self.on_engine_gone(),
                },
                _ = deadlines.tick(), if self.requests.any_outbound() => self.expire_requests(),
                _ = tick.tick() => self.maintain(),
                _ = save.tick() => self.save_peers_in_background(),
            }
        }
        tracing::info!("network stopped");
    }

    /// Until when a request to `peer` does not dial it: it closed our last
    /// connection at once, and we are not connected now.
    fn refused_us(&self, peer: &PeerId, now: Instant) -> Option<Instant> {
        if self.connected.contains(peer) {
            return None;
        }
        self.refused.get(peer).copied().filter(|until| *until > now)
    }

    fn local(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// How many more dials may start now.
    fn dial_budget(&self) -> usize {
        let dialing = self
            .swarm
            .network_info()
            .connection_counters()
            .num_pending_outgoing() as usize;
        self.peer_manager
            .limits()
            .dial_budget(self.connected.len(), dialing)
    }

    // ---- events to the engine ------------------------------------------

    /// Hand an event to the engine without ever waiting for it.
    fn emit(&mut self, event: NetInput) {
        if let Some(event) = self.outbox.emit(event) {
            self.shed(event);
        }
    }

    /// Drop an event nobody will handle, leaving nothing pending behind it.
    fn shed(&mut self, event: NetInput) {
        outbox::shed(
            event,
            &mut self.swarm.behaviour_mut().gossipsub,
            &mut self.requests,
        );
    }

    fn on_engine_gone(&mut self) {
        for event in self.outbox.engine_gone() {
            self.shed(event);
        }
    }

    // ---- swarm events --------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.libp2p_metrics.record(&event);
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address
                    .clone()
                    .with_p2p(self.local())
                    .unwrap_or(address.clone());
                tracing::info!(address = %full, "listening");
                self.listen_addrs.send_modify(|addrs| {
                    if !addrs.contains(&address) {
                        addrs.push(address);
                    }
                });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                tracing::info!(%address, "no longer listening");
                self.listen_addrs
                    .send_modify(|addrs| addrs.retain(|a| *a != address));
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                let failure = reason.as_ref().err().map(|e| e.to_string());
                if self.nat.listener_closed(listener_id, failure.clone()) {
                    // A relay's listener: the reservation was refused or lost.
                } else if let Some(e) = failure {
                    tracing::error!(?addresses, error = %e, "a listener failed");
                }
                self.listen_addrs
                    .send_modify(|addrs| addrs.retain(|a| !addresses.contains(a)));
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(error = %error, "listener error");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let remote = endpoint.get_remote_address().clone();
                self.nat
                    .connected(&mut self.swarm, connection_id, peer_id, &endpoint);
                self.connections
                    .insert(connection_id, (peer_id, remote.clone()));
                if let Some(reached) =
                    self.dialer
                        .established(connection_id, peer_id, Instant::now())
                {
                    if reached.learned_peer_id {
                        tracing::info!(
                            peer = %peer_id,
                            address = %reached.addr,
                            "bootstrap peer reached; its peer id comes from the handshake"
                        );
                    }
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, reached.addr);
                }
                self.peer_manager
                    .connected(peer_id, endpoint.is_dialer(), Instant::now());
                if num_established.get() == 1 {
                    self.connected.insert(peer_id);
                    self.last_seen.touch(peer_id, now_ms());
                    self.metrics
                        .connected_peers
                        .set(self.connected.len() as i64);
                    tracing::info!(
                        peer = %peer_id,
                        address = %remote,
                        direction = if endpoint.is_dialer() { "outbound" } else { "inbound" },
                        relayed = endpoint.is_relayed(),
                        peers = self.connected.len(),
                        "peer connected"
                    );
                    self.emit(NetInput::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                self.connections.remove(&connection_id);
                self.nat.closed(connection_id);
                if num_established == 0 {
                    let now = Instant::now();
                    // None: we pruned it ourselves.
                    let tracked = self.peer_manager.disconnected(&peer_id, now);
                    let lasted = tracked.unwrap_or_default();
                    self.connected.remove(&peer_id);
                    self.last_seen.touch(peer_id, now_ms());
                    self.metrics
                        .connected_peers
                        .set(self.connected.len() as i64);
                    let reason = match &cause {
                        None => "closed".to_string(),
                        Some(ConnectionError::KeepAliveTimeout) => "idle".to_string(),
                        Some(e) => e.to_string(),
                    };
                    tracing::info!(
                        peer = %peer_id,
                        reason,
                        peers = self.connected.len(),
                        "peer disconnected"
                    );
                    // An idle connection was closed because nothing needed
                    // it; redialling it would only make it idle again. A
                    // connection that did not last backs the redial off.
                    if matches!(cause, Some(ConnectionError::KeepAliveTimeout)) {
                        self.dialer.forget(&peer_id);
                    } else {
                        let retry_in = self.dialer.closed(peer_id, lasted, now);
                        if tracked.is_some_and(|l| l < REFUSED_WITHIN) {
                            // Closed by the other side before anything could
                            // use it (a full node): requests do not redial
                            // it before the dialer would.
                            self.refused.insert(peer_id, now + retry_in);
                        }
                        tracing::debug!(
                            peer = %peer_id,
                            lasted_secs = lasted.as_secs_f32(),
                            retry_in_secs = retry_in.as_secs_f32(),
                            "redial planned (when short of peers)"
                        );
                    }
                    self.emit(NetInput::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => self.on_dial_failed(connection_id, peer_id, &error),
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                if matches!(error, libp2p::swarm::ListenError::Denied { .. }) {
                    self.denied_inbound = Some(Instant::now());
                }
                tracing::debug!(address = %send_back_addr, error = %error, "inbound connection failed");
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "external address confirmed");
                self.nat.external_confirmed(&mut self.swarm, &address);
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                tracing::info!(%address, "external address expired");
                self.nat.external_expired(&mut self.swarm, &address);
            }
            _ => {}
        }
    }

    fn on_dial_failed(&mut self, conn: ConnectionId, peer: Option<PeerId>, error: &DialError) {
        match self.dialer.failed(conn, peer, Instant::now()) {
            Some(FailedDial::Bootstrap { given, retry_in }) => tracing::warn!(
                address = %given,
                reason = %describe_dial_error(error),
                retry_in_secs = retry_in.as_secs_f32(),
                "bootstrap address unreachable; will retry"
            ),
            Some(FailedDial::Peer { peer, retry_in }) => tracing::debug!(
                %peer,
                reason = %describe_dial_error(error),
                retry_in_secs = retry_in.as_secs_f32(),
                "redial failed"
            ),
            Some(FailedDial::PeerGivenUp { peer }) => tracing::info!(
                %peer,
                reason = %describe_dial_error(error),
                "peer unreachable for too long; no longer redialling it"
            ),
            None => {
                tracing::debug!(peer = ?peer, reason = %describe_dial_error(error), "dial failed")
            }
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Limits(never) => match never {},
            BehaviourEvent::Blocked(never) => match never {},
            BehaviourEvent::PeerStore(_) => {}
            BehaviourEvent::Identify(event) => {
                self.libp2p_metrics.record(&event);
                if let libp2p::identify::Event::Received {
                    peer_id,
                    info,
                    connection_id,
                } = &event
                {
                    self.nat.identified(*connection_id, *peer_id, info);
                }
                let speaks_kad = matches!(
                    &event,
                    libp2p::identify::Event::Received { info, .. } if super::discovery::speaks_kad(info)
                );
                discovered::on_identify(&mut self.swarm, &self.connections, event);
                if speaks_kad {
                    let wanted = Wanted::new(&self.connected, self.tuning.target_peers);
                    self.random_walk
                        .on_new_peer(&mut self.swarm, wanted, Instant::now());
                }
            }
            BehaviourEvent::Ping(event) => {
                self.libp2p_metrics.record(&event);
                if let Err(e) = &event.result {
                    // libp2p's ping no longer closes a connection that stops
                    // answering; a cut peer would otherwise stay "connected"
                    // until TCP gives up (about 15 minutes by default), and
                    // the node would neither redial it nor pull the books.
                    tracing::info!(peer = %event.peer, error = %e, "ping failed; closing the connection (it will be redialled)");
                    self.swarm.close_connection(event.connection);
                }
            }
            BehaviourEvent::Kad(event) => {
                self.libp2p_metrics.record(&event);
                let wanted = Wanted::new(&self.connected, self.tuning.target_peers);
                discovered::on_kad(&mut self.swarm, wanted, event);
            }
            BehaviourEvent::Mdns(event) => {
                let wanted = Wanted::new(&self.connected, self.tuning.target_peers);
                discovered::on_mdns(&mut self.swarm, wanted, event);
            }
            BehaviourEvent::Gossipsub(event) => {
                self.libp2p_metrics.record(&event);
                self.on_gossipsub(event);
            }
            BehaviourEvent::Take(event) => self.on_request_response(Proto::Take, event),
            BehaviourEvent::Sync(event) => self.on_request_response(Proto::Sync, event),
            BehaviourEvent::Relay(event) => {
                self.libp2p_metrics.record(&event);
                self.nat.on_relay_server(event);
            }
            BehaviourEvent::RelayClient(event) => self.nat.on_relay_client(event),
            BehaviourEvent::Dcutr(event) => {
                self.libp2p_metrics.record(&event);
                self.nat.on_dcutr(event);
            }
            BehaviourEvent::AutonatClient(event) => {
                // A dial-back refused by our own inbound limit says nothing
                // of a NAT.
                let full = self
                    .denied_inbound
                    .is_some_and(|t| t.elapsed() < DENIED_COUNTS_FOR);
                self.nat.on_autonat_client(&mut self.swarm, event, full)
            }
            BehaviourEvent::AutonatServer(event) => self.nat.on_autonat_server(event),
            BehaviourEvent::Upnp(event) => self.nat.on_upnp(event),
        }
    }

    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let Some(source) = message.source else {
                    // A message must name its author, whose batch signature the
                    // engine checks: one that names none is never forwarded.
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            gossipsub::MessageAcceptance::Reject,
                        );
                    return;
                };
                self.emit(NetInput::Gossip {
                    propagation_source,
                    source,
                    message_id,
                    topic: message.topic.into_string(),
                    data: message.data,
                });
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                tracing::debug!(peer = %peer_id, %topic, "peer subscribed");
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                tracing::debug!(peer = %peer_id, %topic, "peer unsubscribed");
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                tracing::debug!(peer = %peer_id, ?failed_messages, "peer is slow to take our gossip");
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                tracing::debug!(peer = %peer_id, "peer does not speak gossipsub");
            }
        }
    }

    fn on_request_response(
        &mut self,
        proto: Proto,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request_id,
                    request,
                    channel,
                } => {
                    self.peer_manager
                        .used(&peer, proto == Proto::Take, Instant::now());
                    let id = self.requests.received(proto, request_id, channel);
                    self.emit(NetInput::Request {
                        peer,
                        proto,
                        id,
                        data: request,
                    });
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    self.peer_manager
                        .used(&peer, proto == Proto::Take, Instant::now());
                    if let Some(s) = self.requests.settled(proto, request_id, &self.gate) {
                        self.emit(NetInput::Response {
                            tag: s.tag,
                            result: Ok(response),
                        });
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, protocol = proto_name(proto), %error, "request failed");
                if matches!(error, request_response::OutboundFailure::DialFailure) {
                    self.look_up(peer);
                }
                if let Some(s) = self.requests.settled(proto, request_id, &self.gate) {
                    self.emit(NetInput::Response {
                        tag: s.tag,
                        result: Err(request_error(error, s.fate)),
                    });
                }
            }
            request_response::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, protocol = proto_name(proto), %error, "inbound request failed");
                self.requests.inbound_failed(proto, request_id);
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    // ---- commands ------------------------------------------------------

    fn rr(&mut self, proto: Proto) -> &mut request_response::Behaviour<BytesCodec> {
        match proto {
            Proto::Take => &mut self.swarm.behaviour_mut().take,
            Proto::Sync => &mut self.swarm.behaviour_mut().sync,
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data } => {
                let size = data.len();
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(topic.clone()), data)
                {
                    self.metrics.publish_failures.inc();
                    match e {
                        gossipsub::PublishError::NoPeersSubscribedToTopic
                        | gossipsub::PublishError::Duplicate => {
                            tracing::debug!(%topic, size, error = %e, "gossip not published")
                        }
                        _ => tracing::warn!(%topic, size, error = %e, "gossip not published"),
                    }
                }
            }
            Command::ReportValidation {
                message_id,
                propagation_source,
                verdict,
            } => {
                let found = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        verdict.into(),
                    );
                if !found {
                    tracing::debug!(%message_id, "verdict for a message gossipsub no longer holds");
                }
                if verdict == Verdict::Reject {
                    tracing::debug!(peer = %propagation_source, %message_id, "gossip rejected");
                }
            }
            Command::Request {
                peer,
                proto,
                tag,
                data,
            } => {
                if data.len() > self.tuning.request_max_bytes {
                    tracing::warn!(
                        %peer,
                        protocol = proto_name(proto),
                        size = data.len(),
                        max = self.tuning.request_max_bytes,
                        "request too large; not sent"
                    );
                    self.emit(NetInput::Response {
                        tag,
                        result: Err(RequestFailure::TooLarge),
                    });
                    return;
                }
                let now = Instant::now();
                if let Some(until) = self.refused_us(&peer, now) {
                    // Dialling it again now would be refused again: fail at
                    // once, as a dial that failed (nothing was sent).
                    tracing::debug!(
                        %peer,
                        protocol = proto_name(proto),
                        retry_in_ms = until.duration_since(now).as_millis() as u64,
                        "the peer closed our last connection at once; not dialling it for this request"
                    );
                    self.emit(NetInput::Response {
                        tag,
                        result: Err(RequestFailure::DialFailure),
                    });
                    return;
                }
                self.offer_circuits(peer);
                // Not connected: request-response dials the peer at the
                // addresses the peer store and the DHT have for it.
                self.peer_manager.used(&peer, proto == Proto::Take, now);
                let (timeout_ms, gate) = match proto {
                    Proto::Take => (self.tuning.take_timeout_ms, self.gate.register(&data)),
                    Proto::Sync => (self.tuning.sync_timeout_ms, None),
                };
                let deadline = now + Duration::from_millis(timeout_ms);
                let request_id = self.rr(proto).send_request(&peer, data);
                self.requests.sent(proto, request_id, tag, deadline, gate);
            }
            Command::Respond { id, data } => {
                let Some(pending) = self.requests.take_inbound(id) else {
                    tracing::debug!(
                        id = id.0,
                        "response to a request that is gone (timed out or peer left)"
                    );
                    return;
                };
                if data.len() > self.tuning.response_max_bytes {
                    tracing::error!(
                        protocol = proto_name(pending.proto),
                        size = data.len(),
                        max = self.tuning.response_max_bytes,
                        "response too large; dropped (the requester sees a failure)"
                    );
                    return;
                }
                if self
                    .rr(pending.proto)
                    .send_response(pending.channel, data)
                    .is_err()
                {
                    tracing::debug!(id = id.0, "the requester is gone; response dropped");
                }
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peer_list());
            }
            Command::Status { reply } => {
                let _ = reply.send(NetStatus {
                    peer_id: self.local(),
                    listen_addrs: self.listen_addrs.borrow().clone(),
                    external_addrs: self.swarm.external_addresses().cloned().collect(),
                    connected_peers: self.connected.len(),
                    reachability: self.nat.reachability(),
                    relays: self.nat.reserved_relays(),
                });
            }
            Command::Dial { addr, reply } => {
                let _ = reply.send(self.dial_address(&addr));
            }
            Command::Ban { peer, for_ms } => self.ban(peer, for_ms),
            Command::Shutdown { .. } => {
                // Handled in `run`, which must await the save.
            }
        }
    }

    /// Drop a peer's connections and refuse it for a while: the engine found
    /// it serving records that do not verify.
    fn ban(&mut self, peer: PeerId, for_ms: u64) {
        tracing::warn!(%peer, for_secs = for_ms / 1000, "banning a peer that served forged records");
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        self.bans
            .insert(peer, Instant::now() + Duration::from_millis(for_ms));
    }

    /// Lift the bans whose time is up.
    fn lift_bans(&mut self, now: Instant) {
        let over: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in over {
            self.bans.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            tracing::info!(%peer, "ban over; the peer may connect again");
        }
    }

    fn dial_address(&mut self, addr: &Multiaddr) -> Result<(), NetError> {
        let (base, peer) = split_peer_id(addr);
        let opts = match peer {
            Some(peer) => DialOpts::peer_id(peer).addresses(vec![base]).build(),
            None => DialOpts::unknown_peer_id().address(base).build(),
        };
        self.swarm.dial(opts).map_err(|e| NetError::Dial {
            addr: addr.clone(),
            reason: describe_dial_error(&e),
        })
    }

    /// Before a request to a peer we are not connected to and know no
    /// address of (a node behind NAT announces none the DHT keeps), offer
    /// the dial a circuit through each relay we reach: the relays where the
    /// peer holds a reservation get it through.
    fn offer_circuits(&mut self, peer: PeerId) {
        if self.connected.contains(&peer) {
            return;
        }
        let known = self
            .swarm
            .behaviour()
            .peer_store
            .store()
            .addresses_of_peer(&peer)
            .is_some_and(|mut a| a.next().is_some());
        if known {
            return;
        }
        for addr in self.nat.circuits_to(peer) {
            tracing::debug!(%peer, address = %addr, "trying the peer through a relay");
            self.swarm.add_peer_address(peer, addr);
        }
    }

    fn peer_list(&self) -> Vec<PeerInfo> {
        let behaviour = self.swarm.behaviour();
        let mut out: BTreeMap<PeerId, PeerInfo> = BTreeMap::new();
        for (peer, record) in behaviour.peer_store.store().record_iter() {
            out.insert(
                *peer,
                PeerInfo {
                    peer_id: *peer,
                    addresses: plain_addrs(record.addresses()),
                    connected: self.connected.contains(peer),
                    score: behaviour.gossipsub.peer_score(peer),
                    connections: Vec::new(),
                },
            );
        }
        for (id, (peer, addr)) in &self.connections {
            let info = out.entry(*peer).or_insert_with(|| PeerInfo {
                peer_id: *peer,
                addresses: Vec::new(),
                connected: true,
                score: behaviour.gossipsub.peer_score(peer),
                connections: Vec::new(),
            });
            if info.addresses.is_empty() {
                info.addresses = plain_addrs([addr]);
            }
            info.connections.push(ConnectionInfo {
                address: addr.clone(),
                relayed: self.nat.is_relayed(id),
            });
        }
        out.into_values().collect()
    }

    // ---- housekeeping --------------------------------------------------

    /// Fail the requests whose deadline passed (libp2p may still be opening
    /// their stream); one not written yet never will be (`gate.rs`).
    fn expire_requests(&mut self) {
        for s in self.requests.expired(Instant::now(), &self.gate) {
            let result = Err(match s.fate {
                super::gate::Fate::NotWritten => RequestFailure::NotSent,
                super::gate::Fate::Written => RequestFailure::Timeout,
            });
            self.emit(NetInput::Response { tag: s.tag, result });
        }
    }

    /// A request could not dial `peer`: ask the DHT where it is (at most
    /// every ten seconds per peer), so the next attempt has addresses.
    fn look_up(&mut self, peer: PeerId) {
        let now = Instant::now();
        if self
            .lookups
            .get(&peer)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(10))
        {
            return;
        }
        self.lookups.insert(peer, now);
        tracing::debug!(%peer, "asking the DHT for the addresses of a peer we could not dial");
        self.swarm.behaviour_mut().kad.get_closest_peers(peer);
    }

    /// Close the peers the peer manager lets go.
    fn prune(&mut self, now: Instant) {
        let behaviour = self.swarm.behaviour();
        let mesh: HashSet<PeerId> = behaviour.gossipsub.all_mesh_peers().copied().collect();
        let views = self.peer_manager.views(
            now,
            |p| mesh.contains(p),
            |p| behaviour.gossipsub.peer_score(p).unwrap_or(0.0),
        );
        let local = self.local();
        for peer in peer_manager::to_prune(self.peer_manager.limits(), &views, &local) {
            tracing::info!(%peer, peers = self.connected.len(), "pruning a peer to make room");
            self.metrics.peers_pruned.inc();
            // Out of the manager at once, so the next tick does not count
            // it again; it then closes as a connection that did not last.
            self.peer_manager.disconnected(&peer, now);
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Due dials, random walks, pruning, and stale inbound requests.
    fn maintain(&mut self) {
        let now = Instant::now();
        self.lift_bans(now);
        self.lookups
            .retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        self.refused.retain(|_, until| *until > now);
        self.prune(now);
        let budget = self.dial_budget();
        let connected = &self.connected;
        let due = self.dialer.due(now, budget, |p| connected.contains(p));
        for dial in due {
            self.start_dial(dial);
        }

        let wanted = Wanted::new(&self.connected, self.tuning.target_peers);
        self.random_walk.maybe_walk(&mut self.swarm, wanted, now);
        self.nat.maintain(&mut self.swarm, now);

        self.requests.drop_closed();
    }

    fn start_dial(&mut self, dial: PlannedDial) {
        let (opts, peer) = match &dial {
            PlannedDial::Bootstrap {
                addr,
                peer: Some(peer),
                ..
            } => (
                DialOpts::peer_id(*peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .addresses(vec![addr.clone()])
                    .build(),
                Some(*peer),
            ),
            PlannedDial::Bootstrap {
                addr, peer: None, ..
            } => (
                DialOpts::unknown_peer_id().address(addr.clone()).build(),
                None,
            ),
            PlannedDial::Peer(peer) => (
                DialOpts::peer_id(*peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                Some(*peer),
            ),
        };
        let conn = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => self.dialer.dialing(&dial, conn),
            // Already connected or being dialled (by discovery): try again later.
            Err(DialError::DialPeerConditionFalse(_)) => {}
            // A peer that only ever dialled us: nowhere to redial it.
            Err(DialError::NoAddresses) => {
                if let Some(peer) = peer {
                    tracing::debug!(%peer, "no address to redial the peer at");
                    self.dialer.forget(&peer);
                }
            }
            Err(e) => {
                self.dialer.dialing(&dial, conn);
                self.on_dial_failed(conn, peer, &e);
            }
        }
    }

    /// Save the peers off the loop's thread; skipped while a save is running.
    fn save_peers_in_background(&mut self) {
        let forget_after_ms = self.forget_after_ms();
        let (swarm, connected, last_seen) = (&self.swarm, &self.connected, &self.last_seen);
        self.peer_saver
            .save_in_background(|| peer_snapshot(swarm, connected, last_seen, forget_after_ms));
    }

    /// Save the peers and wait for it (at shutdown).
    async fn save_peers_now(&mut self) {
        // The peers as they are once a save still running is done.
        self.peer_saver.finish().await;
        let peers = peer_snapshot(
            &self.swarm,
            &self.connected,
            &self.last_seen,
            self.forget_after_ms(),
        );
        self.peer_saver.save_now(peers).await;
    }

    fn forget_after_ms(&self) -> u64 {
        self.tuning.forget_peer_after_secs.saturating_mul(1000)
    }
}

/// The peers worth saving, as of now.
fn peer_snapshot(
    swarm: &Swarm<Behaviour>,
    connected: &HashSet<PeerId>,
    last_seen: &LastSeen,
    forget_after_ms: u64,
) -> Vec<StoredPeer> {
    peers::snapshot(
        swarm.behaviour().peer_store.store(),
        connected,
        last_seen,
        now_ms(),
        forget_after_ms,
    )
}
