//! The maker's side: serving take requests against our resting orders.
//!
//! The engine handles one input at a time, so takes are served one at a
//! time in the order they arrive, each against what is left of the order
//! after the ones before it. A fill changes the order in memory at once (so
//! the next take sees it), but its answer and its gossip are held until the
//! fill is durable. A take id that was filled before gets the same answer
//! again, never a second fill; a status request never fills.

use super::*;
use crate::wire::{self, FillMsg, Refusal, TakeKind, TakeRequest, TakeResponse, WIRE_VERSION};

impl Engine {
    pub(super) fn on_take_request(&mut self, peer: PeerId, id: InboundId, data: &[u8]) {
        match self.serve_take(peer, id, data) {
            Ok(()) => {}
            Err(r) => {
                self.counters.takes_refused_as_maker += 1;
                self.actions.push_back(
                    NetAction::Respond {
                        id,
                        data: wire::encode(&TakeResponse::Refused(r)),
                    }
                    .into(),
                );
            }
        }
    }

    fn serve_take(&mut self, peer: PeerId, id: InboundId, data: &[u8]) -> Result<(), Refusal> {
        let t: TakeRequest =
            wire::decode(data, MAX_MESSAGE_BYTES).map_err(|_| Refusal::BadRequest)?;
        if t.v != WIRE_VERSION {
            return Err(Refusal::BadRequest);
        }
        let mkt = *self.by_name.get(&t.market).ok_or(Refusal::UnknownMarket)?;
        if peer == self.me {
            return Err(Refusal::SelfTrade);
        }
        let key = self.peer_key(peer);
        self.heard(key);
        let (now, rate, open_max) = (
            self.now,
            self.cfg.max_takes_per_peer_per_sec,
            self.cfg.max_open_takes_per_peer,
        );
        let p = &mut self.peers[key as usize];
        if !p.takes.take(now, rate) || p.open_takes >= open_max {
            self.counters.takes_rate_limited += 1;
            return Err(Refusal::Busy);
        }
        let take = TakeId {
            taker: OrderId::new(peer, t.taker_seq),
            n: t.take_n,
        };
        if let Some(tid) = self.filled_takes.get(&take).copied() {
            // Asked again: the same answer, once it is durable.
            let fill = self
                .own_trades
                .get(&tid)
                .map(fill_msg)
                .ok_or(Refusal::Busy)?;
            let data = wire::encode(&TakeResponse::Filled(fill));
            if self.held_trade(&tid) {
                return Err(Refusal::Busy);
            }
            self.actions
                .push_back(NetAction::Respond { id, data }.into());
            return Ok(());
        }
        let (side, limit, qty) = match t.kind {
            TakeKind::Status => {
                // Never filled, and now never will be: a late copy of the
                // original request is refused too.
                self.mark_dead(take);
                return Err(Refusal::NotFilled);
            }
            TakeKind::Release => {
                if let Some(h) = self.holds.remove(&take) {
                    self.drop_hold(&h);
                }
                self.actions.push_back(
                    NetAction::Respond {
                        id,
                        data: wire::encode(&TakeResponse::Released),
                    }
                    .into(),
                );
                return Ok(());
            }
            TakeKind::Commit => {
                let h = self.holds.remove(&take).ok_or(Refusal::NoHold)?;
                self.drop_hold(&h);
                if h.seq != t.maker_seq {
                    return Err(Refusal::BadRequest);
                }
                if self.degraded.is_some() {
                    return Err(Refusal::Storage);
                }
                let own = self.own.get(&h.seq).ok_or(Refusal::UnknownOrder)?;
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
        if self.dead_takes.contains(&take) {
            return Err(Refusal::NotFilled);
        }
        if self.degraded.is_some() {
            return Err(Refusal::Storage);
        }
        if qty.is_zero() || qty.0 > crate::market::MAX_UNITS {
            return Err(Refusal::BadRequest);
        }
        let own = self.own.get(&t.maker_seq).ok_or(Refusal::UnknownOrder)?;
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
        let ms = &mut self.mstate[mkt];
        ms.mseq += 1;
        let mseq = ms.mseq;
        let Some(own) = self.own.get_mut(&seq) else {
            return;
        };
        own.rec.filled += q;
        own.rec.fill_seq += 1;
        own.rec.ver += 1;
        own.rec.updated_ms = now;
        if own.rec.remaining().is_zero() {
            own.rec.status = OrderStatus::Filled;
            self.mstate[mkt].unpublished.remove(&seq);
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
        self.mstate[mkt].my_fills.push(trade.id);
        self.mstate[mkt].book_changed = true;
        self.filled_takes.insert(take, trade.id);
        self.markets[mkt].apply_trade(ME, &self.me, &trade);
        self.counters.fills_maker += 1;
        self.tx_ops.push(Op::PutTrade(trade.clone()));
        self.dirty(seq);
        let fill = fill_msg(&trade);
        if let Some(p) = self.peers.get_mut(peer as usize) {
            p.open_takes += 1;
        }
        self.tx_held.push(Held::TakeAnswer {
            id,
            peer,
            ok: wire::encode(&TakeResponse::Filled(fill.clone())),
            fail: wire::encode(&TakeResponse::Refused(Refusal::Storage)),
        });
        self.tx_held.push(Held::Gossip(mkt, Item::Fill(fill)));
        let tinfo = views::trade(&self.markets[mkt].spec, &trade);
        self.own_trades.insert(trade.id, trade);
        self.hold(Action::Event(Event::Trade(tinfo)));
        let oinfo = self.own_info(&self.own[&seq]);
        self.hold(Action::Event(Event::Order(oinfo)));
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
        let q = match self.holds.get(&take) {
            Some(h) => h.qty,
            None => {
                let own = self.own.get_mut(&seq).ok_or(Refusal::UnknownOrder)?;
                let q = qty.min(own.free());
                if q.is_zero() {
                    return Err(Refusal::NoQuantity);
                }
                own.holding += q;
                if let Some(p) = self.peers.get_mut(peer as usize) {
                    p.open_takes += 1;
                }
                let until = self.now + self.cfg.fok_hold_ms;
                self.holds.insert(
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
        self.actions.push_back(
            NetAction::Respond {
                id,
                data: wire::encode(&TakeResponse::Held { qty: q }),
            }
            .into(),
        );
        Ok(())
    }

    /// A hold is gone (committed, released or run out): its quantity is free.
    fn drop_hold(&mut self, h: &Hold) {
        if let Some(o) = self.own.get_mut(&h.seq) {
            o.holding = o.holding.saturating_sub(h.qty);
        }
        self.take_done(h.peer);
    }

    /// Let go of the holds whose time ran out.
    pub(super) fn expire_holds(&mut self) {
        let now = self.now;
        let gone: Vec<TakeId> = self
            .holds
            .iter()
            .filter(|(_, h)| h.until <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            if let Some(h) = self.holds.remove(&k) {
                self.drop_hold(&h);
            }
        }
    }

    /// Whether the trade's write is still waiting to be durable.
    fn held_trade(&self, id: &TradeId) -> bool {
        let in_tx = self
            .tx_ops
            .iter()
            .any(|op| matches!(op, Op::PutTrade(t) if t.id == *id));
        in_tx
            || self.held.values().flatten().any(|h| {
                matches!(h, Held::Gossip(_, Item::Fill(f))
                    if f.maker_seq == id.maker.seq && f.fill_seq == id.fill_seq)
            })
    }

    fn mark_dead(&mut self, take: TakeId) {
        if self.dead_takes.insert(take) {
            self.dead_order.push_back(take);
            while self.dead_order.len() > DEAD_TAKES {
                if let Some(old) = self.dead_order.pop_front() {
                    self.dead_takes.remove(&old);
                }
            }
        }
    }
}

/// The fill message of a trade we made as maker.
pub(super) fn fill_msg(t: &Trade) -> FillMsg {
    FillMsg {
        maker_seq: t.id.maker.seq,
        fill_seq: t.id.fill_seq,
        mseq: t.mseq,
        maker_side: t.maker_side,
        price: t.price,
        qty: t.qty,
        maker_remaining: t.maker_remaining,
        maker_ver: t.maker_ver,
        taker: t.taker.owner,
        taker_seq: t.taker.seq,
        take_n: t.take_n,
        ts_ms: t.ts_ms,
    }
}
