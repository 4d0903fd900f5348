//! Gossip: what this node publishes per market, and what it accepts.
//!
//! Outgoing, every change of our orders is an item in the market's stream:
//! items are batched into one signed message per flush (every few
//! milliseconds, or when a batch is full), and a heartbeat closes the stream
//! periodically with the digest of everything published before it. The
//! digest is kept as items enter the stream, so a replica that received the
//! stream in order holds exactly that digest.
//!
//! Incoming, a message is checked whole before anything is applied: a
//! malformed message, a wrong market, a time far from ours or an invalid
//! item rejects it (and gossipsub penalises the peer that sent it); a newer
//! wire version is ignored. Everything in it is about the signed source's
//! own orders, so nobody can speak for another owner.

use super::own::Own;
use super::peers::Budget;
use super::proven::StateProof;
use super::*;
use crate::wire::proof::{self, Forged, Stored};
use crate::wire::{self, FillMsg, Gossip, Heartbeat, WIRE_VERSION};

/// Gossip sent longer ago than this can only be a replay, and is rejected
/// (the relaying peer is penalised). Between the clock-skew allowance and
/// this, it is ignored: a connection cut and restored can deliver what TCP
/// had buffered late (a failed ping closes a dead connection within about a
/// minute, so honest lateness stays well below this), and the peer that
/// relayed it meant no harm.
const LATE_REJECT_MS: Millis = 5 * 60 * 1000;

impl Engine {
    pub(super) fn on_gossip(&mut self, source: PeerId, topic: &str, data: &[u8]) -> Verdict {
        if source == self.me {
            return Verdict::Ignore;
        }
        let Some(mkt) = self.markets.by_topic(topic) else {
            return Verdict::Reject;
        };
        let Some(key) = self.peers.admit(source, self.now) else {
            self.counters.owners_limit_hits += 1;
            return Verdict::Ignore;
        };
        let (now, rate) = (self.now, self.cfg.max_gossip_per_peer_per_sec);
        if !self.peers.spend(key, Budget::Gossip, now, rate) {
            self.counters.gossip_rate_limited += 1;
            return Verdict::Ignore;
        }
        match wire::version_of(data, self.cfg.wire.gossip) {
            Some(v) if v > WIRE_VERSION => return Verdict::Ignore,
            Some(v) if v < WIRE_VERSION => {
                self.old_wire(source, v);
                return Verdict::Ignore;
            }
            _ => {}
        }
        let g: Gossip = match wire::decode(data, self.cfg.wire.gossip) {
            Ok(g) => g,
            Err(e) => {
                tracing::debug!(%source, error = %e, "rejecting undecodable gossip");
                return Verdict::Reject;
            }
        };
        if g.sent_ms.saturating_add(self.cfg.max_clock_skew_ms) < self.now
            && g.sent_ms.saturating_add(LATE_REJECT_MS) >= self.now
        {
            // Late, but not so late that only a replay explains it: TCP
            // delivers what it buffered across a cut connection minutes
            // later. Not applied (sync repairs), not forwarded, and the honest
            // peer that relayed it is not penalised.
            self.counters.gossip_late += 1;
            return Verdict::Ignore;
        }
        if let Err(why) = self.check_gossip(mkt, &g) {
            tracing::debug!(%source, why, "rejecting invalid gossip");
            return Verdict::Reject;
        }
        let proofs = match proof::open_batch(&source, &g.market, g.sent_ms, &g.items, &g.sig) {
            Ok(p) => p,
            Err(why) => {
                // Only the author can have made it: relays forward nothing
                // before their own check, so this is the source's doing.
                self.refused_record(why);
                tracing::info!(%source, reason = %why, "rejecting gossip whose batch signature does not verify");
                return Verdict::Reject;
            }
        };
        self.heard(key);
        self.peers.clock_sample(key, g.sent_ms, self.now);
        let mut changed = false;
        for (item, p) in g.items.into_iter().zip(proofs) {
            changed |= self.apply_item(mkt, key, source, item, p);
        }
        if changed {
            self.markets[mkt].book_changed = true;
            self.check_crossing(mkt);
        }
        Verdict::Accept
    }

    fn check_gossip(&self, mkt: usize, g: &Gossip) -> Result<(), &'static str> {
        let skew = self.cfg.max_clock_skew_ms;
        if g.v == 0 {
            return Err("version 0");
        }
        if g.market != self.markets[mkt].name() {
            return Err("market does not match the topic");
        }
        if g.sent_ms > self.now.saturating_add(skew) {
            return Err("sent in the future (broken clock or forged time)");
        }
        if g.sent_ms.saturating_add(LATE_REJECT_MS) < self.now {
            return Err("sent long ago (a replay)");
        }
        if g.items.is_empty() {
            return Err("no items");
        }
        for item in &g.items {
            match item {
                Item::Order(o) => {
                    if let Some(why) = o.out_of_range() {
                        return Err(why);
                    }
                    if o.remaining.is_zero() && o.ver == 0 {
                        return Err("new order with nothing to fill");
                    }
                    if o.created_ms > self.now.saturating_add(skew) {
                        return Err("order created in the future");
                    }
                    if o.ver == 0 && o.created_ms.saturating_add(skew) < self.now {
                        return Err("new order created long ago");
                    }
                }
                Item::Cancel { .. } => {}
                Item::Fill(f) => {
                    if !f.in_range() {
                        return Err("fill out of range");
                    }
                }
                Item::Heartbeat(hb) => {
                    if hb.served_ms > g.sent_ms {
                        return Err("heartbeat vouches for takes past its batch's time");
                    }
                }
            }
        }
        Ok(())
    }

    /// Apply one item from `source`, signed in its batch; whether the book
    /// changed.
    fn apply_item(
        &mut self,
        mkt: usize,
        key: u32,
        source: PeerId,
        item: Item,
        proof: Stored,
    ) -> bool {
        let max = self.cfg.max_orders_per_owner;
        let r = &self.markets[mkt].replica;
        if !r.owners.contains_key(&key) && r.owners.len() >= self.cfg.max_owners {
            self.counters.owners_limit_hits += 1;
            return false;
        }
        match item {
            Item::Order(o) => {
                // An order we never saw, created long ago, comes by sync
                // only: a stamp from the past must not buy time priority.
                let known = self.markets[mkt].replica.get_by_id(key, o.seq).is_some();
                if !known && o.created_ms.saturating_add(self.cfg.max_clock_skew_ms) < self.now {
                    return false;
                }
                let created_ms = o.created_ms;
                match self.markets[mkt]
                    .replica
                    .upsert(key, &source, o, max, Some(proof))
                {
                    replica::Applied::OverLimit => {
                        self.counters.owner_limit_hits += 1;
                        false
                    }
                    replica::Applied::Ignored => false,
                    replica::Applied::New => {
                        if self.replication_ms.len() < REPLICATION_SAMPLES {
                            self.replication_ms
                                .push(self.now.saturating_sub(created_ms));
                        }
                        true
                    }
                    _ => true,
                }
            }
            Item::Cancel { seq } => self.markets[mkt].replica.remove(key, &source, seq, true),
            Item::Fill(f) => self.apply_fill(mkt, key, source, &f, Some(proof)),
            Item::Heartbeat(hb) => {
                self.on_heartbeat(mkt, key, source, hb);
                false
            }
        }
    }

    /// A maker's fill, from gossip or sync, with its place in the batch the
    /// maker signed.
    pub(super) fn apply_fill(
        &mut self,
        mkt: usize,
        key: u32,
        maker: PeerId,
        f: &FillMsg,
        proof: Option<Stored>,
    ) -> bool {
        let trade = Trade::of_fill(maker, self.markets[mkt].name(), f);
        if f.taker == self.me && !self.took_part(&trade) {
            // The maker names one of our orders as its taker, and we never
            // asked it to fill: no trade of ours, no take of ours in flight
            // or in doubt. What it says of its own order stands (the other
            // replicas apply it too, and digests must agree), but the trade
            // is not recorded: our log shows only trades we took part in. Not
            // rejected either: honest relays cannot tell, and forward it.
            tracing::info!(%maker, taker_seq = f.taker_seq, "a fill naming our order as taker that we never took; not recorded");
            self.markets[mkt]
                .replica
                .apply_maker_side(key, &maker, &trade, proof.as_ref());
            return false;
        }
        let r = &mut self.markets[mkt].replica;
        let new = r.apply_trade(key, &maker, &trade, proof);
        if new {
            let info = views::trade(&r.spec, &trade);
            self.actions.push_back(Action::Event(Event::Trade(info)));
        }
        if f.taker == self.me {
            // The fill of a take we never got an answer for.
            let d = (f.taker_seq, f.take_n);
            let matches = self
                .takes
                .in_doubt(d)
                .is_some_and(|d| d.maker == trade.id.maker && f.qty <= d.qty);
            if matches {
                self.resolve_doubt(d, Some(f.clone()));
            } else if self.outbound.take_in_flight(d.0, d.1, trade.id.maker) {
                self.takes.early_fill(d, f.clone());
            }
        }
        new
    }

    /// Whether a fill naming one of our orders as taker is one we know of:
    /// a trade of ours, or the answer to a take in flight or in doubt.
    fn took_part(&self, t: &Trade) -> bool {
        let (seq, n) = (t.taker.seq, t.take_n);
        self.own.has_trade(&t.id)
            || self
                .takes
                .in_doubt((seq, n))
                .is_some_and(|d| d.maker == t.id.maker)
            || self.outbound.take_in_flight(seq, n, t.id.maker)
    }

    fn on_heartbeat(&mut self, mkt: usize, key: u32, source: PeerId, hb: Heartbeat) {
        let now = self.now;
        let syncing_book = matches!(self.markets[mkt].book_sync,
            BookSync::Running { asked, .. } if sync::waiting(Some(asked), now));
        let rep = self.markets[mkt].replica.owner(key);
        if Digest::from_bytes(hb.digest) == rep.digest {
            rep.mismatches = 0;
            rep.raise_floor(hb.watermark);
        } else {
            rep.mismatches += 1;
        }
        if hb.fills > rep.fills_known {
            rep.fill_gaps += 1;
        } else {
            rep.fill_gaps = 0;
        }
        let want_orders = rep.mismatches >= 2 && !sync::waiting(rep.syncing, now) && !syncing_book;
        let want_fills =
            rep.fill_gaps >= 2 && !sync::waiting(rep.fills_syncing, now) && !syncing_book;
        let from = rep.fills_known + 1;
        let settles = if hb.served_ms > 0 && rep.fills_known >= hb.fills {
            self.takes
                .settled_by(mkt, &source, hb.served_ms, rep.skipped_to)
        } else {
            Vec::new()
        };
        rep.last_hb = Some(hb);
        for take in settles {
            tracing::info!(maker = %source, "the maker's heartbeat says it served past our take's deadline without filling it");
            self.counters.doubts_settled_by_heartbeat += 1;
            self.resolve_doubt(take, None);
        }
        if want_orders {
            self.start_owner_sync(mkt, key, source, 0);
        }
        if want_fills {
            self.start_fills_sync(mkt, key, source, from);
        }
    }

    /// Put one of our items in the market's gossip stream.
    pub(super) fn stream(&mut self, mkt: usize, item: Item) {
        let m = &mut self.markets[mkt];
        match &item {
            Item::Order(st) => {
                if let Some(own) = self.own.get_mut(st.seq) {
                    let new = (!st.remaining.is_zero()).then(|| st.clone());
                    m.stream
                        .republish(&self.me, own.published.as_ref(), new.as_ref());
                    m.unpublished.remove(&st.seq);
                    own.published = new;
                }
            }
            Item::Cancel { seq } => {
                if let Some(old) = self.own.get_mut(*seq).and_then(|o| o.published.take()) {
                    m.stream.republish(&self.me, Some(&old), None);
                }
            }
            Item::Fill(f) => {
                m.stream.fills = m.stream.fills.max(f.mseq);
                m.unstreamed.remove(&f.mseq);
                // A fill says what became of the order only if it is news
                // (an older fill signed again after a restart is not).
                let newer = |o: &Own| o.published.as_ref().is_some_and(|p| p.ver < f.maker_ver);
                if let Some(own) = self.own.get_mut(f.maker_seq).filter(|o| newer(o)) {
                    if let Some(old) = own.published.take() {
                        let new = (!f.maker_remaining.is_zero()).then(|| {
                            let mut st = old.clone();
                            st.remaining = f.maker_remaining;
                            st.ver = f.maker_ver;
                            st
                        });
                        m.stream.republish(&self.me, Some(&old), new.as_ref());
                        own.published = new;
                    }
                }
            }
            Item::Heartbeat(_) => {}
        }
        let full = m
            .stream
            .push(item, self.now, self.cfg.flush_ms, self.cfg.max_batch_items);
        if full {
            self.flush(mkt);
        }
    }

    pub(super) fn flush(&mut self, mkt: usize) {
        let Some(items) = self.markets[mkt].stream.take_batch() else {
            return;
        };
        let name = self.markets[mkt].name().to_string();
        let (g, proofs) = Gossip::signed(&self.key, &name, self.now, items);
        let Some(data) = self.encode("gossip", &g) else {
            return;
        };
        self.counters.gossip_sent += 1;
        // Keep our own records' proofs, to hand them on in sync answers.
        for (item, p) in g.items.iter().zip(proofs) {
            self.keep_own_proof(mkt, item, p);
        }
        let topic = self.markets[mkt].replica.topic.clone();
        self.actions
            .push_back(NetAction::Publish { topic, data }.into());
    }

    /// One of our items went out signed: its proof goes with the order it
    /// states (if that is still what we published) or the trade it is.
    fn keep_own_proof(&mut self, mkt: usize, item: &Item, p: Stored) {
        match item {
            Item::Order(st) => {
                if let Some(own) = self.own.get_mut(st.seq) {
                    if own.published.as_ref() == Some(st) {
                        own.proof = Some(StateProof::new(st.clone(), p));
                    }
                }
            }
            Item::Fill(f) => {
                if let Some(own) = self.own.get_mut(f.maker_seq) {
                    let published_ver = own.published.as_ref().map(|s| s.ver);
                    if published_ver == Some(f.maker_ver) {
                        own.proof = own
                            .proof
                            .as_ref()
                            .map(|b| b.with_fill(f.clone(), p.clone()));
                    }
                }
                let trade = Trade::of_fill(self.me, self.markets[mkt].name(), f);
                self.markets[mkt]
                    .replica
                    .apply_trade(ME, &self.me.clone(), &trade, Some(p));
            }
            Item::Cancel { .. } | Item::Heartbeat(_) => {}
        }
    }

    /// A record failed verification: count it by reason.
    pub(super) fn refused_record(&mut self, why: Forged) {
        let c = &mut self.counters;
        match why {
            Forged::Unsigned => c.records_refused_unsigned += 1,
            Forged::BadProof => c.records_refused_bad_proof += 1,
            Forged::BadSignature => c.records_refused_bad_signature += 1,
            Forged::NoKey => c.records_refused_no_key += 1,
            Forged::Inconsistent => c.records_refused_inconsistent += 1,
        }
    }

    /// A peer speaks an older wire: said once per peer, then counted.
    pub(super) fn old_wire(&mut self, peer: PeerId, v: u16) {
        self.counters.old_wire_refused += 1;
        if self.peers.note_old_wire(&peer) {
            tracing::warn!(%peer, version = v, current = WIRE_VERSION, "peer speaks an older wire version (unsigned records); refusing its messages until it upgrades");
        }
    }

    pub(super) fn flush_due(&mut self) {
        for mkt in 0..self.markets.len() {
            if self.markets[mkt]
                .stream
                .flush_at()
                .is_some_and(|t| t <= self.now)
            {
                self.flush(mkt);
            }
        }
    }

    /// Our heartbeat on a market: closes the stream so far.
    pub(super) fn push_heartbeat(&mut self, mkt: usize) {
        let m = &self.markets[mkt];
        let hb = Heartbeat {
            open: m.stream.open,
            digest: m.stream.digest.to_bytes(),
            watermark: m.watermark(self.own.last_seq()),
            fills: m.stream.fills,
            served_ms: m.served_through(self.now),
        };
        self.stream(mkt, Item::Heartbeat(hb));
        self.flush(mkt);
    }
}
