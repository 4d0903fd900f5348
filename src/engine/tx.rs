//! Durability: the writes of the input being handled, and everything held
//! back until they are durable.
//!
//! While the engine handles one input it collects writes (`op`), marks own
//! orders whose record changed (`dirty`), and holds every effect that must
//! not be seen before those writes are durable (`hold`: the answer to a
//! take, the fill's gossip, the user's reply). At the end of the input all
//! of it becomes one `Persist` with a ticket; the held effects wait under
//! that ticket for `Persisted`, or are refused when the write fails, and so
//! are those of every later ticket.

use std::collections::{BTreeMap, BTreeSet};

use super::durable::Op;
use super::ids::TradeId;
use super::io::{Action, InboundId};
use crate::book::OwnerKey;
use crate::wire::{Item, TakeResponse};

/// An effect held back until the writes it depends on are durable.
#[derive(Clone, Debug)]
pub(super) enum Held {
    Act(Action),
    /// Put an item in a market's gossip stream.
    Gossip(usize, Item),
    /// The answer to a take from peer `peer`, and what to answer instead if
    /// the write fails.
    TakeAnswer {
        id: InboundId,
        peer: OwnerKey,
        ok: TakeResponse,
        fail: TakeResponse,
    },
}

/// What the end of an input produced.
pub(super) enum Commit {
    /// No writes: the held effects can be carried out at once.
    Nothing(Vec<Held>),
    /// Make `ops` durable under `ticket`; its effects wait.
    Write { ticket: u64, ops: Vec<Op> },
}

pub(super) struct Tx {
    ops: Vec<Op>,
    dirty: BTreeSet<u64>,
    held_now: Vec<Held>,
    /// Effects waiting for their ticket's write.
    waiting: BTreeMap<u64, Vec<Held>>,
    next_ticket: u64,
    /// Why the node refuses durable changes, once a write failed.
    degraded: Option<String>,
}

impl Tx {
    pub fn new() -> Tx {
        Tx {
            ops: Vec::new(),
            dirty: BTreeSet::new(),
            held_now: Vec::new(),
            waiting: BTreeMap::new(),
            next_ticket: 1,
            degraded: None,
        }
    }

    pub fn op(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// The record of own order `seq` changed: write it with this input.
    pub fn dirty(&mut self, seq: u64) {
        self.dirty.insert(seq);
    }

    pub fn hold(&mut self, h: Held) {
        self.held_now.push(h);
    }

    /// The own orders whose records must be written, taken out.
    pub fn take_dirty(&mut self) -> BTreeSet<u64> {
        std::mem::take(&mut self.dirty)
    }

    /// End the input: its writes and held effects become one ticket.
    pub fn commit(&mut self) -> Commit {
        let held = std::mem::take(&mut self.held_now);
        if self.ops.is_empty() {
            return Commit::Nothing(held);
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiting.insert(ticket, held);
        Commit::Write {
            ticket,
            ops: std::mem::take(&mut self.ops),
        }
    }

    /// The write of `ticket` is durable: its effects, to carry out.
    pub fn persisted(&mut self, ticket: u64) -> Vec<Held> {
        self.waiting.remove(&ticket).unwrap_or_default()
    }

    /// The write of `ticket` failed: the node is degraded, and the effects
    /// of that ticket and every later one, to refuse.
    pub fn failed(&mut self, ticket: u64, error: String) -> Vec<Held> {
        self.degraded = Some(error);
        let later: Vec<u64> = self.waiting.range(ticket..).map(|(t, _)| *t).collect();
        later
            .into_iter()
            .flat_map(|t| self.waiting.remove(&t).unwrap_or_default())
            .collect()
    }

    pub fn degraded(&self) -> Option<&str> {
        self.degraded.as_deref()
    }

    /// Whether the trade's write is not durable yet (in this input, or
    /// waiting for its ticket).
    pub fn writes_trade(&self, id: &TradeId) -> bool {
        let in_tx = self
            .ops
            .iter()
            .any(|op| matches!(op, Op::PutTrade(t) if t.id == *id));
        in_tx
            || self.waiting.values().flatten().any(|h| {
                matches!(h, Held::Gossip(_, Item::Fill(f))
                    if f.maker_seq == id.maker.seq && f.fill_seq == id.fill_seq)
            })
    }

    /// Carry on the tickets of the engine this one replaces; the first
    /// ticket of this engine.
    pub fn continue_from(&mut self, old: &Tx) -> u64 {
        self.next_ticket = self.next_ticket.max(old.next_ticket);
        self.next_ticket
    }
}
