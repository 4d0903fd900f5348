//! The requests this node has sent and not had answered, by tag.
//!
//! Every take and sync request leaves with a fresh [`RequestTag`]; its
//! answer (or the network's word that there is none) comes back with the
//! same tag and finds here what it answers. A tag is never reused, also
//! across an engine rebuilt after a storage failure (it carries on the old
//! engine's numbering), so a late answer to the old engine is never taken
//! for the new one's.

use std::collections::BTreeMap;

use libp2p::PeerId;

use super::io::RequestTag;
use super::takes::Sent;
use crate::wire::SyncWhat;

/// A request sent and not answered yet.
#[derive(Clone, Debug)]
pub(super) enum Pending {
    Take(Sent),
    Sync {
        mkt: usize,
        peer: PeerId,
        what: SyncWhat,
    },
}

pub(super) struct Outbound {
    pending: BTreeMap<RequestTag, Pending>,
    next_tag: u64,
}

impl Outbound {
    pub fn new() -> Outbound {
        Outbound {
            pending: BTreeMap::new(),
            next_tag: 1,
        }
    }

    /// A fresh tag for a request whose answer nobody waits for (a
    /// fill-or-kill release).
    pub fn tag(&mut self) -> RequestTag {
        let t = RequestTag(self.next_tag);
        self.next_tag += 1;
        t
    }

    /// Record a request about to leave; its tag.
    pub fn send(&mut self, p: Pending) -> RequestTag {
        let tag = self.tag();
        self.pending.insert(tag, p);
        tag
    }

    /// What the answer with this tag answers, if anything still waits.
    pub fn answered(&mut self, tag: RequestTag) -> Option<Pending> {
        self.pending.remove(&tag)
    }

    /// Whether the take `(seq, n)` to `maker`'s order is in flight.
    pub fn take_in_flight(&self, seq: u64, n: u32, maker: super::ids::OrderId) -> bool {
        self.pending
            .values()
            .any(|p| matches!(p, Pending::Take(s) if s.seq == seq && s.n == n && s.maker == maker))
    }

    /// Carry on the numbering of the engine this one replaces.
    pub fn continue_from(&mut self, old: &Outbound) {
        self.next_tag = self.next_tag.max(old.next_tag);
    }

    /// The tags waiting for an answer, oldest first.
    #[cfg(any(test, feature = "testkit"))]
    pub fn tags(&self) -> impl Iterator<Item = RequestTag> + '_ {
        self.pending.keys().copied()
    }

    /// Every request waiting, for explanations in tests.
    #[cfg(any(test, feature = "testkit"))]
    pub fn waiting(&self) -> impl Iterator<Item = &Pending> {
        self.pending.values()
    }
}
