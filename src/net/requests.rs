//! Which request is which: the correlation between libp2p's request ids and
//! the ids the engine knows.
//!
//! An inbound request gets an [`InboundId`] for the engine, and its response
//! channel waits here until the engine answers (or the request is shed, fails
//! or its requester goes away). An outbound request's libp2p id maps back to
//! the engine's [`RequestTag`], so its answer or failure reaches the right
//! take or sync.

use std::collections::{HashMap, HashSet};

use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};

use super::codec::FrameTooLarge;
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
    outbound: HashMap<(Proto, OutboundRequestId), RequestTag>,
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

    /// A request of the engine's left, under libp2p's `request_id`.
    pub(super) fn sent(&mut self, proto: Proto, request_id: OutboundRequestId, tag: RequestTag) {
        self.outbound.insert((proto, request_id), tag);
    }

    /// The engine's tag of an outbound request that was answered or failed;
    /// `None` if it is not one of ours (or was already settled).
    pub(super) fn settled(
        &mut self,
        proto: Proto,
        request_id: OutboundRequestId,
    ) -> Option<RequestTag> {
        self.outbound.remove(&(proto, request_id))
    }
}

/// Why an outbound request failed, in the engine's words.
pub(super) fn request_error(e: request_response::OutboundFailure) -> RequestFailure {
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
