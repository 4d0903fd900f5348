//! The network task: one loop that owns the swarm, turns swarm events into
//! [`NetInput`]s for the engine and [`Command`]s from handles into swarm
//! calls, dials bootstrap and lost peers, walks the DHT while short of peers
//! and saves the peer store.
//!
//! # Never blocked by the engine
//!
//! The swarm must be polled all the time (pings, keep-alives, handshakes,
//! gossipsub heartbeats), so the loop never waits on the engine. Events go to
//! the bounded channel with `try_send`; when it is full they wait in order in
//! a backlog that the loop drains as the engine frees capacity (a `reserve()`
//! branch of the same `select!`). The backlog is bounded too
//! (`event_buffer_max`): past it, new gossip messages are reported `Ignore`
//! to gossipsub at once (so they are neither forwarded nor held for a verdict
//! that would never come) and new requests are dropped (the requester sees a
//! failure and may ask again), both counted in `peerbook_net_events_shed`.
//! Connection and response events are never shed: the engine's view of peers
//! and of its own requests must stay exact, and they are bounded by the
//! connection limits and the engine's own requests.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::metrics::{Metrics, Recorder};
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionError, ConnectionId, DialError, SwarmEvent};
use libp2p::{identify, kad, mdns, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::error::describe_dial_error;
use crate::store::{Store, StoredPeer};

use super::behaviour::proto_name;
use super::behaviour::{Behaviour, BehaviourEvent};
use super::codec::{BytesCodec, FrameTooLarge};
use super::config::{NetConfig, NetTuning};
use super::dialer::{Dialer, FailedDial, PlannedDial};
use super::discovery::{dialable_listen_addrs, plain_addrs, speaks_kad, split_peer_id};
use super::handle::Command;
use super::metrics::NetMetrics;
use super::peers::{self, LastSeen};
use super::{
    InboundId, NetError, NetInput, NetStatus, PeerInfo, Proto, RequestFailure, RequestTag, Verdict,
};
use crate::clock::now_ms;

/// How often the loop does its housekeeping (due dials, random walks).
const TICK: Duration = Duration::from_secs(1);

/// An inbound request waiting for the engine's response.
struct PendingInbound {
    proto: Proto,
    request_id: InboundRequestId,
    channel: ResponseChannel<Vec<u8>>,
}

/// The task that owns the swarm.
pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    tuning: NetTuning,
    store: Store,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetInput>,
    /// Events waiting for room in `events` (see the module docs).
    backlog: VecDeque<NetInput>,
    /// The engine dropped its receiver: gossip is ignored from now on.
    engine_gone: bool,
    listen_addrs: watch::Sender<Vec<Multiaddr>>,
    metrics: NetMetrics,
    libp2p_metrics: Metrics,
    dialer: Dialer,
    connected: HashSet<PeerId>,
    /// Remote address of every open connection.
    connections: HashMap<ConnectionId, (PeerId, Multiaddr)>,
    last_seen: LastSeen,
    next_inbound: u64,
    inbound: HashMap<InboundId, PendingInbound>,
    inbound_index: HashMap<(Proto, InboundRequestId), InboundId>,
    outbound: HashMap<(Proto, OutboundRequestId), RequestTag>,
    saving: Option<JoinHandle<()>>,
    last_walk: Instant,
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
        EventLoop {
            swarm,
            tuning: cfg.tuning,
            store,
            commands,
            events,
            backlog: VecDeque::new(),
            engine_gone: false,
            listen_addrs,
            metrics,
            libp2p_metrics: Metrics::new(registry),
            dialer,
            connected: HashSet::new(),
            connections: HashMap::new(),
            last_seen,
            next_inbound: 0,
            inbound: HashMap::new(),
            inbound_index: HashMap::new(),
            outbound: HashMap::new(),
            saving: None,
            last_walk: now,
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
        // Dial bootstrap and saved peers right away rather than at the first tick.
        self.maintain();
        // A sender of our own, so a reserved slot borrows it rather than `self`.
        let events = self.events.clone();
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
                permit = events.reserve(), if !self.backlog.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.backlog.pop_front() {
                            permit.send(event);
                        }
                        self.metrics.event_backlog.set(self.backlog.len() as i64);
                    }
                    Err(_) => self.on_engine_gone(),
                },
                _ = tick.tick() => self.maintain(),
                _ = save.tick() => self.save_peers_in_background(),
            }
        }
        tracing::info!("network stopped");
    }

    fn local(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    fn short_of_peers(&self) -> bool {
        self.connected.len() < self.tuning.target_peers as usize
    }

    // ---- events to the engine ------------------------------------------

    /// Hand an event to the engine without ever waiting for it.
    fn emit(&mut self, event: NetInput) {
        if self.engine_gone {
            self.shed(event);
            return;
        }
        if !self.backlog.is_empty() {
            self.enqueue(event);
            return;
        }
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => self.enqueue(event),
            Err(mpsc::error::TrySendError::Closed(event)) => {
                self.on_engine_gone();
                self.shed(event);
            }
        }
    }

    fn enqueue(&mut self, event: NetInput) {
        let sheddable = matches!(event, NetInput::Gossip { .. } | NetInput::Request { .. });
        if sheddable && self.backlog.len() >= self.tuning.event_buffer_max {
            self.metrics.events_shed.inc();
            if self.metrics.events_shed.get() % 1000 == 1 {
                tracing::warn!(
                    backlog = self.backlog.len(),
                    shed = self.metrics.events_shed.get(),
                    "the engine is not keeping up; shedding gossip and requests"
                );
            }
            self.shed(event);
            return;
        }
        self.backlog.push_back(event);
        self.metrics.event_backlog.set(self.backlog.len() as i64);
    }

    /// Drop an event nobody will handle, leaving nothing pending behind it.
    fn shed(&mut self, event: NetInput) {
        match event {
            NetInput::Gossip {
                message_id,
                propagation_source,
                ..
            } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        gossipsub::MessageAcceptance::Ignore,
                    );
            }
            NetInput::Request { id, .. } => {
                if let Some(p) = self.inbound.remove(&id) {
                    self.inbound_index.remove(&(p.proto, p.request_id));
                }
            }
            _ => {}
        }
    }

    fn on_engine_gone(&mut self) {
        if !self.engine_gone {
            tracing::warn!("the engine stopped receiving network events; gossip will be ignored");
            self.engine_gone = true;
        }
        while let Some(event) = self.backlog.pop_front() {
            self.shed(event);
        }
        self.metrics.event_backlog.set(0);
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
                addresses, reason, ..
            } => {
                if let Err(e) = reason {
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
                if num_established == 0 {
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
                    // it; redialling it would only make it idle again.
                    if !matches!(cause, Some(ConnectionError::KeepAliveTimeout)) {
                        self.dialer.peer_lost(peer_id, Instant::now());
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
                tracing::debug!(address = %send_back_addr, error = %error, "inbound connection failed");
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "external address confirmed");
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
            BehaviourEvent::PeerStore(_) => {}
            BehaviourEvent::Identify(event) => {
                self.libp2p_metrics.record(&event);
                self.on_identify(event);
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
                self.on_kad(event);
            }
            BehaviourEvent::Mdns(event) => self.on_mdns(event),
            BehaviourEvent::Gossipsub(event) => {
                self.libp2p_metrics.record(&event);
                self.on_gossipsub(event);
            }
            BehaviourEvent::Take(event) => self.on_request_response(Proto::Take, event),
            BehaviourEvent::Sync(event) => self.on_request_response(Proto::Sync, event),
        }
    }

    fn on_identify(&mut self, event: identify::Event) {
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
            if !speaks_kad(&info) {
                return;
            }
            let remote = self
                .connections
                .get(&connection_id)
                .map(|(_, a)| a.clone())
                .unwrap_or_else(Multiaddr::empty);
            for addr in dialable_listen_addrs(&info, &remote) {
                self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
            }
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed { result, .. } => match result {
                kad::QueryResult::GetClosestPeers(Ok(ok)) => {
                    tracing::debug!(found = ok.peers.len(), "DHT walk finished");
                    for p in ok.peers {
                        self.consider_dialing(p.peer_id, p.addrs);
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

    fn on_mdns(&mut self, event: mdns::Event) {
        match event {
            mdns::Event::Discovered(found) => {
                for (peer, addr) in found {
                    tracing::debug!(%peer, %addr, "found on the LAN");
                    self.consider_dialing(peer, vec![addr]);
                }
            }
            mdns::Event::Expired(gone) => {
                for (peer, addr) in gone {
                    tracing::debug!(%peer, %addr, "LAN record expired");
                }
            }
        }
    }

    /// Dial a newly discovered peer if the node wants more peers.
    fn consider_dialing(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == self.local() || self.connected.contains(&peer) {
            return;
        }
        for addr in addrs {
            self.swarm.add_peer_address(peer, addr);
        }
        if !self.short_of_peers() {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => tracing::debug!(%peer, "dialling a discovered peer"),
            Err(DialError::DialPeerConditionFalse(_)) => {}
            Err(e) => {
                tracing::debug!(%peer, error = %describe_dial_error(&e), "cannot dial a discovered peer")
            }
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
                    // Strict validation makes this impossible; never forward it.
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
                    let id = InboundId(self.next_inbound);
                    self.next_inbound += 1;
                    self.inbound.insert(
                        id,
                        PendingInbound {
                            proto,
                            request_id,
                            channel,
                        },
                    );
                    self.inbound_index.insert((proto, request_id), id);
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
                    if let Some(tag) = self.outbound.remove(&(proto, request_id)) {
                        self.emit(NetInput::Response {
                            tag,
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
                if let Some(tag) = self.outbound.remove(&(proto, request_id)) {
                    self.emit(NetInput::Response {
                        tag,
                        result: Err(request_error(error)),
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
                if let Some(id) = self.inbound_index.remove(&(proto, request_id)) {
                    self.inbound.remove(&id);
                }
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
                let request_id = self.rr(proto).send_request(&peer, data);
                self.outbound.insert((proto, request_id), tag);
            }
            Command::Respond { id, data } => {
                let Some(pending) = self.inbound.remove(&id) else {
                    tracing::debug!(
                        id = id.0,
                        "response to a request that is gone (timed out or peer left)"
                    );
                    return;
                };
                self.inbound_index
                    .remove(&(pending.proto, pending.request_id));
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
                });
            }
            Command::Dial { addr, reply } => {
                let _ = reply.send(self.dial_address(&addr));
            }
            Command::Shutdown { .. } => {
                // Handled in `run`, which must await the save.
            }
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
                },
            );
        }
        for (peer, addr) in self.connections.values() {
            let info = out.entry(*peer).or_insert_with(|| PeerInfo {
                peer_id: *peer,
                addresses: Vec::new(),
                connected: true,
                score: behaviour.gossipsub.peer_score(peer),
            });
            if info.addresses.is_empty() {
                info.addresses = plain_addrs([addr]);
            }
        }
        out.into_values().collect()
    }

    // ---- housekeeping --------------------------------------------------

    /// Due dials, random walks, and stale inbound requests.
    fn maintain(&mut self) {
        let now = Instant::now();
        let short = self.short_of_peers();
        let connected = &self.connected;
        let due = self.dialer.due(now, short, |p| connected.contains(p));
        for dial in due {
            self.start_dial(dial);
        }

        let walk_every = Duration::from_secs(self.tuning.random_walk_interval_secs);
        if short && !self.connected.is_empty() && now.duration_since(self.last_walk) >= walk_every {
            self.last_walk = now;
            tracing::debug!(
                peers = self.connected.len(),
                "short of peers; walking the DHT"
            );
            self.swarm
                .behaviour_mut()
                .kad
                .get_closest_peers(PeerId::random());
        }

        let before = self.inbound.len();
        self.inbound.retain(|_, p| p.channel.is_open());
        if self.inbound.len() != before {
            let live: HashSet<InboundId> = self.inbound.keys().copied().collect();
            self.inbound_index.retain(|_, id| live.contains(id));
        }
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

    fn peer_snapshot(&self) -> Vec<StoredPeer> {
        peers::snapshot(
            self.swarm.behaviour().peer_store.store(),
            &self.connected,
            &self.last_seen,
            now_ms(),
            self.tuning.forget_peer_after_secs.saturating_mul(1000),
        )
    }

    /// Save the peers off the loop's thread; skipped while a save is running.
    fn save_peers_in_background(&mut self) {
        if self.saving.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let peers = self.peer_snapshot();
        let store = self.store.clone();
        self.saving = Some(tokio::task::spawn_blocking(move || {
            match store.save_peers(&peers) {
                Ok(()) => tracing::debug!(count = peers.len(), "saved the known peers"),
                Err(e) => tracing::warn!(error = %e, "cannot save the known peers; will try again"),
            }
        }));
    }

    /// Save the peers and wait for it (at shutdown).
    async fn save_peers_now(&mut self) {
        if let Some(running) = self.saving.take() {
            let _ = running.await;
        }
        let peers = self.peer_snapshot();
        let count = peers.len();
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.save_peers(&peers)).await {
            Ok(Ok(())) => tracing::info!(count, "saved the known peers"),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot save the known peers"),
            Err(e) => tracing::error!(error = %e, "saving the known peers panicked"),
        }
    }
}

fn request_error(e: request_response::OutboundFailure) -> RequestFailure {
    match e {
        request_response::OutboundFailure::DialFailure => RequestFailure::DialFailure,
        request_response::OutboundFailure::Timeout => RequestFailure::Timeout,
        request_response::OutboundFailure::ConnectionClosed => RequestFailure::ConnectionClosed,
        request_response::OutboundFailure::UnsupportedProtocols => {
            RequestFailure::UnsupportedProtocol
        }
        request_response::OutboundFailure::Io(e) if FrameTooLarge::is_in(&e) => {
            RequestFailure::TooLarge
        }
        request_response::OutboundFailure::Io(e) => RequestFailure::Io(e.to_string()),
    }
}
