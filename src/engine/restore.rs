//! Rebuilding the engine from what is durable: at start, and after a
//! storage failure (the same path).
//!
//! Own open orders go back on the book as published (or the owner-sync
//! repair tells the others); orders caught in their taking phase resolve
//! their takes in doubt (status requests) and then rest or expire, with no
//! new takes planned; trades rebuild the fill counters and the maker's
//! ledger of filled takes.

use std::collections::HashMap;

use super::own::Own;
use super::takes::{Doubt, Settle};
use super::taking::Taking;
use super::*;

impl Engine {
    /// Rebuild own orders, trades and takes in doubt from durable state.
    pub(super) fn restore(&mut self, snap: Snapshot) {
        let max_seq = snap.orders.keys().next_back().copied().unwrap_or(0);
        for (market, mseq) in &snap.mseq {
            if let Some(mkt) = self.markets.by_name(market) {
                let m = &mut self.markets[mkt];
                m.mseq = m.mseq.max(*mseq);
                m.stream.fills = m.mseq;
            }
        }
        self.own.resume_numbering(max_seq, snap.reserved_seq);
        let mut trades: Vec<Trade> = snap.trades.into_values().collect();
        trades.sort_by(|a, b| (&a.market, a.mseq, a.ts_ms).cmp(&(&b.market, b.mseq, b.ts_ms)));
        for t in trades {
            let Some(mkt) = self.markets.by_name(&t.market) else {
                continue;
            };
            if t.id.maker.owner == self.me {
                let m = &mut self.markets[mkt];
                m.mseq = m.mseq.max(t.mseq);
                m.stream.fills = m.mseq;
                m.my_fills.push(t.id);
                self.served.record_fill(
                    TakeId {
                        taker: t.taker,
                        n: t.take_n,
                    },
                    t.id,
                );
            }
            let peer = t.id.maker.owner;
            if let Some(maker_key) = self.peers.admit(peer, self.now) {
                self.markets[mkt]
                    .replica
                    .apply_trade(maker_key, &peer, &t, None);
            }
            self.own.record_trade(t);
        }
        // Each own order's trades, oldest first, in one pass.
        let mut by_order: HashMap<u64, Vec<TradeId>> = HashMap::new();
        let mut mine: Vec<&Trade> = self.own.all_trades().collect();
        mine.sort_by_key(|t| (t.ts_ms, t.id));
        for t in mine {
            if t.id.maker.owner == self.me {
                by_order.entry(t.id.maker.seq).or_default().push(t.id);
            }
            if t.taker.owner == self.me {
                by_order.entry(t.taker.seq).or_default().push(t.id);
            }
        }
        let mut reopened = Vec::new();
        for rec in snap.orders.into_values() {
            let Some(mkt) = self.markets.by_name(&rec.market) else {
                tracing::warn!(seq = rec.seq, market = %rec.market, "own order of a market no longer configured is left aside");
                continue;
            };
            let status = rec.status;
            let mut own = Own::new(rec, mkt, None);
            own.trades = by_order.remove(&own.rec.seq).unwrap_or_default();
            let seq = own.rec.seq;
            match status {
                OrderStatus::Open => reopened.push(seq),
                OrderStatus::Taking => {
                    own.taking = Some(Taking {
                        resume_only: true,
                        ..Taking::default()
                    });
                    self.markets[mkt].unpublished.insert(seq);
                }
                _ => {}
            }
            self.own.insert(own);
            if status.is_done() {
                self.own.note_done(seq);
            }
        }
        for i in snap.intents.into_values() {
            let Some(own) = self.own.get_mut(i.taker_seq) else {
                continue;
            };
            own.reserve(i.qty);
            let mkt = own.mkt;
            let maker_key = self
                .peers
                .key(&i.maker.owner)
                .and_then(|k| self.markets[mkt].replica.key_of(k, i.maker.seq));
            self.takes.ask(mkt, maker_key, i.qty);
            // With its deadline kept, the maker's heartbeat settles it as
            // before the restart; without (an older intent), status
            // requests do.
            let settle = i.deadline_ms.map(|deadline| Settle {
                deadline,
                fills_before: i.fills_before,
            });
            self.takes.doubt(
                (i.taker_seq, i.n),
                Doubt::new(mkt, i.maker, maker_key, i.qty, settle, self.now),
            );
        }
        // Open orders go back on the book, published again at a new version:
        // their signed records did not survive the restart, and others may
        // ask us for them.
        for seq in reopened {
            let Some(own) = self.own.get_mut(seq) else {
                continue;
            };
            own.rec.ver += 1;
            let (mkt, st) = (own.mkt, own.state());
            self.tx.dirty(seq);
            self.markets[mkt]
                .replica
                .upsert(ME, &self.me, st.clone(), usize::MAX, None);
            self.stream(mkt, Item::Order(st));
        }
        // Our recent fills as maker are signed again too: others may ask us
        // for them (fill sync), and their proofs did not survive either.
        for mkt in 0..self.markets.len() {
            let ids = &self.markets[mkt].my_fills;
            let recent: Vec<TradeId> =
                ids[ids.len().saturating_sub(self.cfg.recent_fills)..].to_vec();
            for id in recent {
                if let Some(f) = self.own.trade(&id).map(Trade::fill_msg) {
                    self.stream(mkt, Item::Fill(f));
                }
            }
        }
        // Orders caught in their taking phase with nothing in doubt end now.
        for seq in self.own.taking() {
            self.maybe_finish(seq);
        }
        self.commit_tx();
    }
}
