//! An own order's taking phase: what it waits for, why it stops, and a
//! fill-or-kill order's holds.

use super::ids::OrderId;
use super::io::CommandId;
use super::Millis;
use crate::book::OrderKey;
use crate::market::Qty;

/// An order's taking phase.
#[derive(Clone, Debug, Default)]
pub(super) struct Taking {
    /// The placement waiting for the phase to end.
    pub reply: Option<CommandId>,
    /// A cancel waiting for the phase to end.
    pub cancel_reply: Option<CommandId>,
    /// Takes sent and not answered.
    pub inflight: u32,
    /// Resolving a crossed book: take only orders older than this one.
    pub only_older: bool,
    /// Why the phase stopped early (self-trade prevention, a cancel).
    pub stop: Option<&'static str>,
    /// After a restart: resolve the takes in doubt, plan no new ones.
    pub resume_only: bool,
    /// A fill-or-kill order's two rounds (holds, then commits).
    pub fok: Option<Fok>,
}

impl Taking {
    /// The replies waiting for the phase to end, taken out.
    pub fn take_replies(&mut self) -> Vec<CommandId> {
        self.reply
            .take()
            .into_iter()
            .chain(self.cancel_reply.take())
            .collect()
    }
}

/// A fill-or-kill taking phase.
#[derive(Clone, Debug, Default)]
pub(super) struct Fok {
    committing: bool,
    holds: Vec<HeldTake>,
    started: Millis,
}

/// Quantity a maker holds for one of our takes.
#[derive(Clone, Debug)]
pub(super) struct HeldTake {
    pub n: u32,
    pub maker: OrderId,
    pub maker_key: Option<OrderKey>,
    pub qty: Qty,
}

impl Fok {
    pub fn new(started: Millis) -> Fok {
        Fok {
            started,
            ..Fok::default()
        }
    }

    /// Whether the commits are out (no more holds are planned).
    pub fn committing(&self) -> bool {
        self.committing
    }

    /// Quantity the makers hold for the order so far.
    pub fn held(&self) -> Qty {
        self.holds.iter().fold(Qty::ZERO, |a, h| a + h.qty)
    }

    pub fn holds(&self) -> &[HeldTake] {
        &self.holds
    }

    pub fn add_hold(&mut self, h: HeldTake) {
        self.holds.push(h);
    }

    /// The holds cover the order: the commits go out.
    pub fn start_commit(&mut self) {
        self.committing = true;
    }

    pub fn started(&self) -> Millis {
        self.started
    }
}
