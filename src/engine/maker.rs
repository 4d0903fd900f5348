//! The maker's side: serving take requests against our resting orders.
//!
//! The engine handles one input at a time, so takes are served one at a
//! time in the order they arrive, each against what is left of the order
//! after the ones before it. A fill changes the order in memory at once (so
//! the next take sees it), but its answer and its gossip are held until the
//! fill is durable. A take id that was filled before gets the same answer
//! again, never a second fill; a status request never fills.

use super::peers::Budget;
use super::served::Hold;
use super::tx::Held;
use super::*;
use crate::wire::{self, Refusal, TakeKind, TakeRequest, TakeResponse, WIRE_VERSION};

impl Engine {
    pub(super) fn on_take_request(&mut self, peer: PeerId, id: InboundId, data: &[u8]) {
        match self.serve_take(peer, id, data) {
            Ok(()) => {}
            Err(r) => {
                tracing::info!(%peer, reason = r.as_str(), "refused a peer's take");
                self.counters.takes_refused_as_maker += 1;
                self.respond(id, &TakeResponse::Refused(r));
            }
        }
    }

    fn serve_take(&mut self, peer: PeerId, id: InboundId, data: &[u8]) -> Result<(), Refusal> {
        let t: TakeRequest =
            wire::decode(data, self.cfg.wire.request).map_err(|_| Refusal::BadRequest)?;
        if t.v != WIRE_VERSION {
            return Err(Refusal::BadRequest);
        }
        let mkt = self
            .markets
            .by_name(&t.market)
            .ok_or(Refusal::UnknownMarket)?;
        if peer == self.me {
            return Err(Refusal::SelfTrade);
        }
        let Some(key) = self.peers.admit(peer, self.now) else {
            // The peer table is full: a stranger's take waits for room.
            self.counters.owners_limit_hits += 1;
            return Err(Refusal::Busy);
        };
        self.heard(key);
        let (now, rate, open_max) = (
            self.now,
            self.cfg.max_takes_per_peer_per_sec,
            self.cfg.max_open_takes_per_peer,
        );
        if !self.peers.spend(key, Budget::Takes, now, rate)
            || self.peers.open_takes(key) >= open_max
        {
            self.counters.takes_rate_limited += 1;
            return Err(Refusal::Busy);
        }
        let take = TakeId {
            taker: OrderId::new(peer, t.taker_seq),
            n: t.take_n,
        };
        if self.served.is_forgotten(&take) {
            // Filled long ago; the fill is no longer at hand (`served.rs`).
            return Err(Refusal::Busy);
        }
        if let Some(tid) = self.served.filled(&take) {
            // Asked again: the same answer, once it is durable.
            let fill = self
                .own
                .trade(&tid)
                .map(Trade::fill_msg)
                .ok_or(Refusal::Busy)?;
            if self.tx.writes_trade(&tid) {
                return Err(Refusal::Busy);
            }
            self.respond(id, &TakeResponse::Filled(fill));
            return Ok(());
        }
        if matches!(t.kind, TakeKind::Fill { .. } | TakeKind::Commit)
            && t.deadline_ms.is_some_and(|d| self.now >= d)
        {
            // Our heartbeats vouch for this refusal (`served_ms`): a taker
            // that lost our answer settles the take as not filled by them.
            if let Some(h) = self.served.take_hold(&take) {
                self.drop_hold(&h);
            }
            self.counters.takes_late += 1;
            return Err(Refusal::Late);
        }
        let (side, limit, qty) = match t.kind {
            TakeKind::Status => {
                // Never filled, and now never will be: a late copy of the
                // original request is refused too.
                self.served.mark_dead(take);
                return Err(Refusal::NotFilled);
            }
            TakeKind::Release => {
                if let Some(h) = self.served.take_hold(&take) {
                    self.drop_hold(&h);
                }
                self.respond(id, &TakeResponse::Released);
                return Ok(());
            }
            TakeKind::Commit => {
                let h = self.served.take_hold(&take).ok_or(Refusal::NoHold)?;
                self.drop_hold(&h);
                if h.seq != t.maker_seq {
                    return Err(Refusal::BadRequest);
                }
                if self.tx.degraded().is_some() {
                    return Err(Refusal::Storage);
                }
                if self.past_expiry(h.seq) {
                    self.expire_due();
                    return Err(Refusal::Done);
                }
                let own = self.own.get(h.seq).ok_or(Refusal::UnknownOrder)?;
                if own.rec.status != OrderStatus::Open {
                    return Err(Refusal::Done);
                }
                let q = h.qty.min(own.free());
                if q.is_zero() {
                    return Err(Refusal::NoQuantity);
                }
                self.maker_fill(mkt, h.seq, take, q, id, key);
                return Ok(());
            }
            TakeKind::Fill { side, limit, qty } | TakeKind::Hold { side, limit, qty } => {
                (side, limit, qty)
            }
        };
        if self.served.is_dead(&take) {
            return Err(Refusal::NotFilled);
        }
        if self.tx.degraded().is_some() {
            return Err(Refusal::Storage);
        }
        if qty.is_zero() || qty.0 > crate::market::MAX_UNITS {
            return Err(Refusal::BadRequest);
        }
        if self.past_expiry(t.maker_seq) {
            // Its time has come, whether or not housekeeping ended it yet.
            self.expire_due();
            return Err(Refusal::Done);
        }
        let own = self.own.get(t.maker_seq).ok_or(Refusal::UnknownOrder)?;
        if own.mkt != mkt {
            return Err(Refusal::UnknownOrder);
        }
        match own.rec.status {
            OrderStatus::Open => {}
            OrderStatus::Taking => return Err(Refusal::UnknownOrder),
            _ => return Err(Refusal::Done),
        }
        if side != own.rec.side.opposite() {
            return Err(Refusal::BadRequest);
        }
        let price = own.rec.price.ok_or(Refusal::UnknownOrder)?;
        if limit.is_some_and(|l| !side.crosses(l, price)) {
            return Err(Refusal::Price);
        }
        if matches!(t.kind, TakeKind::Hold { .. }) {
            return self.grant_hold(take, t.maker_seq, qty, id, key);
        }
        let q = qty.min(own.free());
        if q.is_zero() {
            return Err(Refusal::NoQuantity);
        }
        self.maker_fill(mkt, t.maker_seq, take, q, id, key);
        Ok(())
    }

    /// Fill `q` of our order `seq` for `take`, answering request `id` once
    /// the fill is durable.
    fn maker_fill(&mut self, mkt: usize, seq: u64, take: TakeId, q: Qty, id: InboundId, peer: u32) {
        let now = self.now;
        let m = &mut self.markets[mkt];
        m.mseq += 1;
        let mseq = m.mseq;
        m.unstreamed.insert(mseq, now);
        let Some(own) = self.own.get_mut(seq) else {
            return;
        };
        own.rec.filled += q;
        own.rec.fill_seq += 1;
        own.rec.ver += 1;
        own.rec.updated_ms = now;
        if own.rec.remaining().is_zero() {
            own.rec.status = OrderStatus::Filled;
            m.unpublished.remove(&seq);
        }
        let trade = Trade {
            id: TradeId {
                maker: OrderId::new(self.me, seq),
                fill_seq: own.rec.fill_seq,
            },
            market: own.rec.market.clone(),
            maker_side: own.rec.side,
            price: own.rec.price.unwrap_or(crate::market::Price(0)),
            qty: q,
            taker: take.taker,
            take_n: take.n,
            mseq,
            maker_remaining: own.rec.remaining(),
            maker_ver: own.rec.ver,
            ts_ms: now,
        };
        own.trades.push(trade.id);
        m.my_fills.push(trade.id);
        let keep = self.cfg.recent_fills;
        if m.my_fills.len() > 2 * keep {
            let cut = m.my_fills.len() - keep;
            m.my_fills.drain(..cut);
        }
        m.book_changed = true;
        m.replica.apply_trade(ME, &self.me, &trade, None);
        self.served.record_fill(take, trade.id);
        self.counters.fills_maker += 1;
        m.fills[0] += 1;
        self.tx.op(Op::PutTrade(trade.clone()));
        self.tx.dirty(seq);
        let fill = trade.fill_msg();
        self.peers.take_opened(peer);
        self.tx.hold(Held::TakeAnswer {
            id,
            peer,
            ok: TakeResponse::Filled(fill.clone()),
            fail: TakeResponse::Refused(Refusal::Storage),
        });
        self.tx.hold(Held::Gossip(mkt, Item::Fill(fill)));
        let tinfo = views::trade(&self.markets[mkt].replica.spec, &trade);
        self.own.record_trade(trade);
        self.hold(Action::Event(Event::Trade(tinfo)));
        if let Some(oinfo) = self.own.get(seq).map(|o| self.own_info(o)) {
            self.hold(Action::Event(Event::Order(oinfo)));
        }
    }

    /// Set aside up to `qty` of order `seq` for a fill-or-kill taker, until
    /// it commits, releases, or the hold runs out. Nothing is written: a hold
    /// fills nothing, and one lost in a crash only makes the commit fail.
    fn grant_hold(
        &mut self,
        take: TakeId,
        seq: u64,
        qty: Qty,
        id: InboundId,
        peer: u32,
    ) -> Result<(), Refusal> {
        let q = match self.served.hold(&take) {
            Some(h) => h.qty,
            None => {
                let own = self.own.get_mut(seq).ok_or(Refusal::UnknownOrder)?;
                let q = qty.min(own.free());
                if q.is_zero() {
                    return Err(Refusal::NoQuantity);
                }
                own.set_aside(q);
                self.peers.take_opened(peer);
                let until = self.now + self.cfg.fok_hold_ms;
                self.served.grant(
                    take,
                    Hold {
                        seq,
                        qty: q,
                        until,
                        peer,
                    },
                );
                q
            }
        };
        self.respond(id, &TakeResponse::Held { qty: q });
        Ok(())
    }

    /// A hold is gone (committed, released or run out): its quantity is free.
    fn drop_hold(&mut self, h: &Hold) {
        if let Some(o) = self.own.get_mut(h.seq) {
            o.give_back(h.qty);
        }
        self.peers.take_closed(h.peer);
    }

    /// Let go of the holds whose time ran out.
    pub(super) fn expire_holds(&mut self) {
        for h in self.served.expired(self.now) {
            self.drop_hold(&h);
        }
    }
}
