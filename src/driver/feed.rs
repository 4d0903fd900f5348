//! The level-2 feed: the book's changed levels, numbered per market, each
//! with a checksum of the top of the book after it.
//!
//! The engine notes which price levels change; after every burst the
//! engine task takes them, gives each market's batch the next sequence
//! number and the checksum of its top 25 levels, and broadcasts it. A
//! snapshot is taken in the same task after the pending changes went out,
//! so it carries the sequence number of the last delta it already holds:
//! a client that applies every delta after it, in order, holds the book.

use std::collections::HashMap;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::engine::{Engine, EngineError};
use crate::market::Side;

/// Levels in the checksum, per side.
pub const CHECKSUM_LEVELS: usize = 25;

/// One market's changed levels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BookDelta {
    pub market: String,
    pub seq: u64,
    /// `(side, price, quantity now)`; `0` when the level is gone.
    pub changes: Vec<(Side, Decimal, Decimal)>,
    pub checksum: u32,
    /// When the engine task sent it (ms since the Unix epoch), right after
    /// the input that made the change.
    pub ts_ms: u64,
}

/// A whole book and the sequence number of the last delta it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BookSnapshot {
    pub market: String,
    pub seq: u64,
    pub bids: Vec<(Decimal, Decimal)>,
    pub asks: Vec<(Decimal, Decimal)>,
    pub checksum: u32,
}

/// The CRC-32 (IEEE) of the top levels: bids best first, then asks best
/// first, each `price:quantity`, joined by `,`, the sides by `|`.
pub fn checksum(bids: &[(Decimal, Decimal)], asks: &[(Decimal, Decimal)]) -> u32 {
    let side = |levels: &[(Decimal, Decimal)]| {
        levels
            .iter()
            .take(CHECKSUM_LEVELS)
            .map(|(p, q)| format!("{}:{}", p.normalize(), q.normalize()))
            .collect::<Vec<_>>()
            .join(",")
    };
    crc32fast::hash(format!("{}|{}", side(bids), side(asks)).as_bytes())
}

pub(super) struct LevelFeed {
    seq: HashMap<String, u64>,
    tx: broadcast::Sender<Arc<BookDelta>>,
}

impl LevelFeed {
    /// A feed whose subscribers may fall `buffer` deltas behind.
    pub fn new(buffer: usize) -> LevelFeed {
        let (tx, _) = broadcast::channel(buffer.max(1));
        LevelFeed {
            seq: HashMap::new(),
            tx,
        }
    }

    pub fn sender(&self) -> broadcast::Sender<Arc<BookDelta>> {
        self.tx.clone()
    }

    /// Send what changed since the last call.
    pub fn publish(&mut self, engine: &mut Engine) {
        for c in engine.take_level_changes() {
            let seq = self.seq.entry(c.market.clone()).or_default();
            *seq += 1;
            if self.tx.receiver_count() == 0 {
                continue;
            }
            let sum = match engine.book(&c.market, CHECKSUM_LEVELS) {
                Ok(b) => checksum(&b.bids, &b.asks),
                Err(_) => continue,
            };
            let _ = self.tx.send(Arc::new(BookDelta {
                market: c.market,
                seq: *seq,
                changes: c.changes,
                checksum: sum,
                ts_ms: crate::clock::now_ms(),
            }));
        }
    }

    /// The whole book of `market`, after every pending change went out.
    pub fn snapshot(
        &mut self,
        engine: &mut Engine,
        market: &str,
    ) -> Result<BookSnapshot, EngineError> {
        self.publish(engine);
        let b = engine.book(market, usize::MAX)?;
        Ok(BookSnapshot {
            market: b.market,
            seq: self.seq.get(market).copied().unwrap_or(0),
            checksum: checksum(&b.bids, &b.asks),
            bids: b.bids,
            asks: b.asks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_crc32_of_the_top_levels_as_the_contract_writes_them() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let bids = vec![(d("100.40"), d("1.2")), (d("100"), d("3"))];
        let asks = vec![(d("100.6"), d("0.5"))];
        // What any client computes with zlib.crc32 of this text.
        let text = "100.4:1.2,100:3|100.6:0.5";
        assert_eq!(checksum(&bids, &asks), crc32fast::hash(text.as_bytes()));
        assert_eq!(checksum(&[], &[]), crc32fast::hash(b"|"));
    }
}
