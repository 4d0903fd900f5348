//! The maker's ledger: which takes of other nodes this node filled, which
//! it holds quantity for (fill-or-kill), and which it declared dead.
//!
//! A take id that was filled gets the same answer again, never a second
//! fill; a status request for a take that was never filled marks it dead,
//! so a late copy of the original request is refused too. Holds run out on
//! their own after `fok_hold_ms`.
//!
//! The ledger is bounded: a fill is remembered while its trade is in
//! memory (its order is live or among the `engine.recent_orders` done
//! ones), then only its take id, among the last [`FORGOTTEN_TAKES`]. A
//! request about a forgotten take is answered `Busy`, never "not filled"
//! and never with a second fill: its taker, if still in doubt, learns the
//! fill by gossip or a fills sync. (Kept whole, the ledger grew by one
//! entry per fill for as long as the node ran.)

use std::collections::{HashMap, HashSet, VecDeque};

use super::ids::{TakeId, TradeId};
use super::Millis;
use crate::book::OwnerKey;
use crate::market::Qty;

/// How many take ids refused on a status request are remembered.
const DEAD_TAKES: usize = 100_000;

/// How many filled take ids are remembered after their trade left memory.
const FORGOTTEN_TAKES: usize = 100_000;

/// Quantity one of our orders holds for a fill-or-kill taker.
#[derive(Clone, Debug)]
pub(super) struct Hold {
    pub seq: u64,
    pub qty: Qty,
    pub until: Millis,
    pub peer: OwnerKey,
}

/// The last `N` take ids put in, oldest out first.
#[derive(Default)]
struct Recent<const N: usize> {
    set: HashSet<TakeId>,
    order: VecDeque<TakeId>,
}

impl<const N: usize> Recent<N> {
    fn insert(&mut self, take: TakeId) {
        if self.set.insert(take) {
            self.order.push_back(take);
            while self.order.len() > N {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, take: &TakeId) -> bool {
        self.set.contains(take)
    }
}

#[derive(Default)]
pub(super) struct Served {
    filled: HashMap<TakeId, TradeId>,
    holds: HashMap<TakeId, Hold>,
    dead: Recent<DEAD_TAKES>,
    /// Filled, with the trade no longer in memory (see the module comment).
    forgotten: Recent<FORGOTTEN_TAKES>,
}

impl Served {
    /// The trade that filled this take, if we filled it.
    pub fn filled(&self, take: &TakeId) -> Option<TradeId> {
        self.filled.get(take).copied()
    }

    pub fn record_fill(&mut self, take: TakeId, trade: TradeId) {
        self.filled.insert(take, trade);
    }

    pub fn hold(&self, take: &TakeId) -> Option<&Hold> {
        self.holds.get(take)
    }

    pub fn grant(&mut self, take: TakeId, hold: Hold) {
        self.holds.insert(take, hold);
    }

    /// The hold of this take, taken out (committed or released).
    pub fn take_hold(&mut self, take: &TakeId) -> Option<Hold> {
        self.holds.remove(take)
    }

    /// The holds whose time ran out, taken out.
    pub fn expired(&mut self, now: Millis) -> Vec<Hold> {
        let gone: Vec<TakeId> = self
            .holds
            .iter()
            .filter(|(_, h)| h.until <= now)
            .map(|(k, _)| *k)
            .collect();
        gone.iter().filter_map(|k| self.holds.remove(k)).collect()
    }

    /// Never filled, and now never will be.
    pub fn mark_dead(&mut self, take: TakeId) {
        self.dead.insert(take);
    }

    pub fn is_dead(&self, take: &TakeId) -> bool {
        self.dead.contains(take)
    }

    /// The trade of this take left memory: keep only that it was filled.
    pub fn forget(&mut self, take: TakeId) {
        if self.filled.remove(&take).is_some() {
            self.forgotten.insert(take);
        }
    }

    /// Filled once, but its fill is no longer at hand.
    pub fn is_forgotten(&self, take: &TakeId) -> bool {
        self.forgotten.contains(take)
    }

    /// How many fills the ledger holds with their trade.
    #[cfg(test)]
    pub fn filled_len(&self) -> usize {
        self.filled.len()
    }
}
