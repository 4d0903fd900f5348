//! A look inside the engine for the simulation, the fuzz targets and the
//! engine's own tests: the invariants they check after every step, and
//! what they print when one fails. Not part of the node.

use super::peers::ME;
use super::*;

impl Engine {
    /// No own order is filled, with what is asked of makers and unanswered
    /// and what is held for takers, past its quantity.
    pub fn check_own_quantities(&self) -> Result<(), String> {
        for o in self.own.values() {
            if o.rec.filled + o.reserved() + o.holding() > o.rec.qty {
                return Err(format!(
                    "{} in memory filled {} + reserved {} + holding {} > {}",
                    o.rec.seq,
                    o.rec.filled.0,
                    o.reserved().0,
                    o.holding().0,
                    o.rec.qty.0
                ));
            }
        }
        Ok(())
    }

    /// Every replica's book keeps its invariants.
    pub fn check_books(&self) -> Result<(), String> {
        for m in self.markets.iter() {
            m.replica
                .book
                .check_invariants()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Whether no own order holds quantity for fill-or-kill takers.
    pub fn holds_nothing(&self) -> bool {
        self.own.values().all(|o| o.holding().is_zero())
    }

    /// The gossip topic of market `mkt`.
    pub fn topic(&self, mkt: usize) -> String {
        self.markets[mkt].replica.topic.clone()
    }

    /// The tags of the requests waiting for an answer, oldest first.
    pub fn pending_tags(&self) -> impl Iterator<Item = RequestTag> + '_ {
        self.outbound.tags()
    }

    /// How many own orders the engine holds in memory.
    pub fn held_orders(&self) -> usize {
        self.own.values().count()
    }

    /// The sequence numbers of every own order.
    pub fn own_seqs(&self) -> Vec<u64> {
        self.own.values().map(|o| o.rec.seq).collect()
    }

    /// The best orders of both sides with their owners, for test failures.
    pub fn explain_top(&self, market: &str) -> String {
        let Ok(mkt) = self.market_idx(market) else {
            return String::new();
        };
        let r = &self.markets[mkt].replica;
        let mut out = format!(
            "  pending {:?}\n  doubts {:?}\n  peers {:?}\n",
            self.outbound.waiting().collect::<Vec<_>>(),
            self.takes.doubts(),
            self.peers
                .others()
                .map(|(_, p)| (p.id.to_string()[46..].to_string(), p.stale, p.connected))
                .collect::<Vec<_>>()
        );
        for side in [Side::Buy, Side::Sell] {
            for v in r.book.iter_side(side).take(3) {
                let seq = r.get(v.id).map_or(0, |o| o.state.seq);
                let own = if v.owner == ME {
                    self.own.get(seq).map(|o| {
                        format!(
                            "{:?} taking={:?} reserved={:?} tried={:?}",
                            o.rec.status,
                            o.taking,
                            o.reserved(),
                            o.tried
                        )
                    })
                } else {
                    None
                };
                out += &format!(
                    "  {side} {} x{} owner#{} seq {} prio {} stale={} {}\n",
                    v.price.0,
                    v.remaining.0,
                    v.owner,
                    seq,
                    v.priority,
                    self.peers.is_stale(v.owner),
                    own.unwrap_or_default()
                );
            }
        }
        out
    }

    /// What this engine knows of each owner's fills, for test failures.
    pub fn explain_fills(&self, market: &str) -> String {
        let Ok(mkt) = self.market_idx(market) else {
            return String::new();
        };
        let m = &self.markets[mkt];
        let r = &m.replica;
        let mut out = format!(
            "{} now {} next_hb {} outbox {} flush_at {:?} {:?} mseq {} pub_fills {} my_fills {} trades {}:",
            self.me,
            self.now % 100_000,
            m.next_hb % 100_000,
            m.stream.queued(),
            m.stream.flush_at(),
            self.peers
                .others()
                .map(|(_, p)| (p.id.to_string()[46..].to_string(), p.stale, p.last_heard % 100_000))
                .collect::<Vec<_>>(),
            m.mseq,
            m.stream.fills,
            m.my_fills.len(),
            r.recent_trades().count()
        );
        for (k, o) in &r.owners {
            out += &format!(
                " [#{k}={} known {} ahead {:?} gaps {} syncing {:?} hb {:?}]",
                &self.peers.id(*k).to_string()[46..],
                o.fills_known,
                o.fills_ahead,
                o.fill_gaps,
                o.fills_syncing,
                o.last_hb.as_ref().map(|h| h.fills)
            );
        }
        out
    }
}
