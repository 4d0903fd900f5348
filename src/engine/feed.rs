//! What a level-2 feed needs of the engine: the price levels that changed
//! since it last looked, in the market's decimal units, each with its new
//! total (zero: the level is gone).

use rust_decimal::Decimal;

use super::*;

/// The changed levels of one market.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelChanges {
    pub market: String,
    /// `(side, price, quantity now)`, bids best first, then asks best first.
    pub changes: Vec<(Side, Decimal, Decimal)>,
}

impl Engine {
    /// Every market's price levels changed since the last call.
    pub fn take_level_changes(&mut self) -> Vec<LevelChanges> {
        let mut out = Vec::new();
        for m in self.markets.iter_mut() {
            let changes = m.replica.take_changed_levels();
            if changes.is_empty() {
                continue;
            }
            let spec = &m.replica.spec;
            out.push(LevelChanges {
                market: spec.name.clone(),
                changes: changes
                    .into_iter()
                    .map(|(side, p, q)| (side, spec.ticks_to_price(p), spec.lots_to_qty(q)))
                    .collect(),
            });
        }
        out
    }
}
