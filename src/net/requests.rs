//! Which request is which: the correlation between libp2p's request ids and
//! the ids the engine knows.
//!
//! An inbound request gets an [`InboundId`] for the engine, and its response
//! channel waits here until the engine answers (or the request is shed, fails
//! or its requester goes away). An outbound request's libp2p id maps back to
//! the engine's [`RequestTag`], so its answer or failure reaches the right
//! take or sync.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};

use super::codec::FrameTooLarge;
use super::gate::{Fate, GateKey, WriteGate};
use super::{InboundId, Proto, RequestFailure, RequestTag};

/// An inbound request waiting for the engine's response.
pub(super) struct PendingInbound {
    pub proto: Proto,
    pub request_id: InboundRequestId,
    pub channel: ResponseChannel<Vec<u8>>,
}

/// The requests in flight, both ways.
#[derive(Default)]
pub(super) struct Requests {
    next_inbound: u64,
    inbound: HashMap<InboundId, PendingInbound>,
    inbound_index: HashMap<(Proto, InboundRequestId), InboundId>,
    outbound: HashMap<(Proto, OutboundRequestId), Outbound>,
    /// Requests past their deadline (already failed to the engine) that
    /// libp2p has not settled yet: their gate entries, dropped when it does.
    late: HashMap<(Proto, OutboundRequestId), Option<GateKey>>,
}

/// An outbound request of the engine's.
struct Outbound {
    tag: RequestTag,
    deadline: Instant,
    gate: Option<GateKey>,
}

/// An outbound request settled: its tag, and whether it was ever written
/// (only take requests are tracked; others count as written).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Settled {
    pub tag: RequestTag,
    pub fate: Fate,
}

impl Requests {
    /// A request arrived: keep its response channel until the engine
    /// answers. Returns the id the engine answers it by.
    pub(super) fn received(
        &mut self,
        proto: Proto,
        request_id: InboundRequestId,
        channel: ResponseChannel<Vec<u8>>,
    ) -> InboundId {
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
        id
    }

    /// The inbound request `id`, no longer pending: to answer it, or to drop
    /// it. `None` once it timed out or its requester left.
    pub(super) fn take_inbound(&mut self, id: InboundId) -> Option<PendingInbound> {
        let pending = self.inbound.remove(&id)?;
        self.inbound_index
            .remove(&(pending.proto, pending.request_id));
        Some(pending)
    }

    /// libp2p gave up on an inbound request (timeout, connection closed):
    /// a response to it can no longer be sent.
    pub(super) fn inbound_failed(&mut self, proto: Proto, request_id: InboundRequestId) {
        if let Some(id) = self.inbound_index.remove(&(proto, request_id)) {
            self.inbound.remove(&id);
        }
    }

    /// Forget inbound requests whose requester is gone.
    pub(super) fn drop_closed(&mut self) {
        let before = self.inbound.len();
        self.inbound.retain(|_, p| p.channel.is_open());
        if self.inbound.len() != before {
            let live: HashSet<InboundId> = self.inbound.keys().copied().collect();
            self.inbound_index.retain(|_, id| live.contains(id));
        }
    }

    /// A request of the engine's left, under libp2p's `request_id`; it fails
    /// as a timeout at `deadline` whatever libp2p is doing with it. `gate`
    /// is its key in the take gate, if it is tracked there.
    pub(super) fn sent(
        &mut self,
        proto: Proto,
        request_id: OutboundRequestId,
        tag: RequestTag,
        deadline: Instant,
        gate: Option<GateKey>,
    ) {
        self.outbound.insert(
            (proto, request_id),
            Outbound {
                tag,
                deadline,
                gate,
            },
        );
    }

    /// An outbound request libp2p answered or failed: the engine's tag and
    /// whether it was written; `None` if it is not one of ours or already
    /// failed at its deadline.
    pub(super) fn settled(
        &mut self,
        proto: Proto,
        request_id: OutboundRequestId,
        gate: &WriteGate,
    ) -> Option<Settled> {
        if let Some(key) = self.late.remove(&(proto, request_id)) {
            if let Some(k) = key {
                gate.forget(&k);
            }
            return None;
        }
        let out = self.outbound.remove(&(proto, request_id))?;
        let fate = out.gate.map_or(Fate::Written, |k| gate.forget(&k));
        Some(Settled { tag: out.tag, fate })
    }

    /// The requests whose deadline passed by `now`, failed to the engine
    /// from now on (a late answer is dropped), with whether they were
    /// written (one not written never will be).
    pub(super) fn expired(&mut self, now: Instant, gate: &WriteGate) -> Vec<Settled> {
        let due: Vec<(Proto, OutboundRequestId)> = self
            .outbound
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for k in due {
            if let Some(o) = self.outbound.remove(&k) {
                let fate = o.gate.map_or(Fate::Written, |g| gate.abandon(&g));
                self.late.insert(k, o.gate);
                out.push(Settled { tag: o.tag, fate });
            }
        }
        out
    }

    /// Whether any outbound request waits (the loop then checks deadlines).
    pub(super) fn any_outbound(&self) -> bool {
        !self.outbound.is_empty()
    }
}

/// Why an outbound request failed, in the engine's words; one that was never
/// written is [`RequestFailure::NotSent`], whatever libp2p says.
pub(super) fn request_error(e: request_response::OutboundFailure, fate: Fate) -> RequestFailure {
    if fate == Fate::NotWritten && !matches!(e, request_response::OutboundFailure::DialFailure) {
        return RequestFailure::NotSent;
    }
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
