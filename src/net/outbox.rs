//! The network's events on their way to the engine, and what is dropped
//! when the engine cannot keep up.
//!
//! # Never blocked by the engine
//!
//! The swarm must be polled all the time (pings, keep-alives, handshakes,
//! gossipsub heartbeats), so the event loop never waits on the engine. Events
//! go to the bounded channel with `try_send`; when it is full they wait in
//! order in a backlog that the loop drains as the engine frees capacity (a
//! `reserve()` branch of its `select!`, fed by [`Outbox::send_next`]). The
//! backlog is bounded too (`event_buffer_max`): past it, new gossip messages
//! are reported `Ignore` to gossipsub at once (so they are neither forwarded
//! nor held for a verdict that would never come) and new requests are
//! dropped (the requester sees a failure and may ask again), both counted in
//! `peerbook_net_events_shed`. Connection and response events are never
//! shed: the engine's view of peers and of its own requests must stay exact,
//! and they are bounded by the connection limits and the engine's own
//! requests.
//!
//! The outbox only decides; dropping an event ([`shed`]) needs the swarm and
//! the pending requests, so the outbox hands such events back to the loop.

use std::collections::VecDeque;

use libp2p::gossipsub;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;

use super::gossip::Gossipsub;
use super::metrics::NetMetrics;
use super::requests::Requests;
use super::NetInput;

/// The events for the engine: its channel, and the backlog when it is full.
pub(super) struct Outbox {
    events: mpsc::Sender<NetInput>,
    /// Events waiting for room in `events` (see the module docs).
    backlog: VecDeque<NetInput>,
    /// Most gossip messages and requests the backlog holds.
    max_backlog: usize,
    /// The engine dropped its receiver: gossip is ignored from now on.
    engine_gone: bool,
    /// `peerbook_net_events_shed`.
    shed: Counter,
    /// `peerbook_net_event_backlog`.
    backlog_len: Gauge,
}

impl Outbox {
    pub(super) fn new(
        events: mpsc::Sender<NetInput>,
        max_backlog: usize,
        metrics: &NetMetrics,
    ) -> Self {
        Outbox {
            events,
            backlog: VecDeque::new(),
            max_backlog,
            engine_gone: false,
            shed: metrics.events_shed.clone(),
            backlog_len: metrics.event_backlog.clone(),
        }
    }

    /// Hand an event to the engine without ever waiting for it. Returns the
    /// event when nobody will handle it (the engine is gone, or the backlog
    /// is full of gossip and requests): the caller must [`shed`] it.
    #[must_use]
    pub(super) fn emit(&mut self, event: NetInput) -> Option<NetInput> {
        if self.engine_gone {
            return Some(event);
        }
        if !self.backlog.is_empty() {
            return self.enqueue(event);
        }
        match self.events.try_send(event) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(event)) => self.enqueue(event),
            Err(mpsc::error::TrySendError::Closed(event)) => {
                // Only sent when the backlog is empty: nothing else to shed.
                self.mark_engine_gone();
                Some(event)
            }
        }
    }

    fn enqueue(&mut self, event: NetInput) -> Option<NetInput> {
        let sheddable = matches!(event, NetInput::Gossip { .. } | NetInput::Request { .. });
        if sheddable && self.backlog.len() >= self.max_backlog {
            self.shed.inc();
            if self.shed.get() % 1000 == 1 {
                tracing::warn!(
                    backlog = self.backlog.len(),
                    shed = self.shed.get(),
                    "the engine is not keeping up; shedding gossip and requests"
                );
            }
            return Some(event);
        }
        self.backlog.push_back(event);
        self.backlog_len.set(self.backlog.len() as i64);
        None
    }

    /// Whether events wait for room in the channel.
    pub(super) fn is_backed_up(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// A sender of the engine's channel, for the loop to reserve a slot on
    /// without borrowing the outbox.
    pub(super) fn sender(&self) -> mpsc::Sender<NetInput> {
        self.events.clone()
    }

    /// The channel has room: send the oldest waiting event.
    pub(super) fn send_next(&mut self, permit: mpsc::Permit<'_, NetInput>) {
        if let Some(event) = self.backlog.pop_front() {
            permit.send(event);
        }
        self.backlog_len.set(self.backlog.len() as i64);
    }

    /// The engine stopped receiving: from now on every event is shed.
    /// Returns the events that were waiting, for the caller to shed.
    #[must_use]
    pub(super) fn engine_gone(&mut self) -> VecDeque<NetInput> {
        self.mark_engine_gone();
        let waiting = std::mem::take(&mut self.backlog);
        self.backlog_len.set(0);
        waiting
    }

    fn mark_engine_gone(&mut self) {
        if !self.engine_gone {
            tracing::warn!("the engine stopped receiving network events; gossip will be ignored");
            self.engine_gone = true;
        }
    }
}

/// Drop an event nobody will handle, leaving nothing pending behind it:
/// gossipsub hears `Ignore` for a message (neither forwarded nor penalised),
/// a request's response channel is dropped (the requester sees a failure).
pub(super) fn shed(event: NetInput, gossipsub: &mut Gossipsub, requests: &mut Requests) {
    match event {
        NetInput::Gossip {
            message_id,
            propagation_source,
            ..
        } => {
            gossipsub.report_message_validation_result(
                &message_id,
                &propagation_source,
                gossipsub::MessageAcceptance::Ignore,
            );
        }
        NetInput::Request { id, .. } => {
            requests.take_inbound(id);
        }
        _ => {}
    }
}
