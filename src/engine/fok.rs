//! Fill-or-kill across makers: two rounds on the take protocol.
//!
//! First every maker is asked to *hold* quantity for the order's take ids
//! (nothing is written: a hold fills nothing); only if the holds cover the
//! whole order, and were all answered within half the hold time, is each
//! hold *committed* (a fill, with the same durable intent and in-doubt
//! handling as any take). Otherwise every hold is released and the order
//! ends `rejected` with nothing filled. See docs/ARCHITECTURE.md for the
//! window this leaves (a hold that vanishes before its commit).

use super::takes::{Sent, SentKind};
use super::taking::{HeldTake, Taking};
use super::*;
use crate::wire::{TakeKind, TakeRequest, TakeResponse, WireError, WIRE_VERSION};

impl Engine {
    /// A maker's answer to a fill-or-kill hold.
    pub(super) fn on_hold_response(
        &mut self,
        sent: Sent,
        answer: Result<Result<TakeResponse, WireError>, RequestFailure>,
    ) {
        let fok = self.own.taking_mut(sent.seq).and_then(|t| {
            t.inflight = t.inflight.saturating_sub(1);
            t.fok.as_mut()
        });
        match (answer, fok) {
            (Ok(Ok(TakeResponse::Held { qty })), Some(fok))
                if !qty.is_zero() && qty <= sent.qty =>
            {
                fok.add_hold(HeldTake {
                    n: sent.n,
                    maker: sent.maker,
                    maker_key: sent.maker_key,
                    qty,
                });
                // Give back what the maker could not hold.
                let rest = sent.qty - qty;
                self.counters.fok_holds += 1;
                self.takes.unask(sent.mkt, sent.maker_key, rest);
                if let Some(o) = self.own.get_mut(sent.seq) {
                    o.unreserve(rest);
                }
            }
            // Refused, lost, or nonsense: nothing is held (a hold whose answer
            // was lost runs out at the maker on its own; it fills nothing).
            _ => {
                self.counters.takes_refused += 1;
                self.release_take(&sent, true);
            }
        }
        self.after_take(sent.seq);
    }

    /// A fill-or-kill order whose holds are all answered: commit them if they
    /// cover the whole order (in time), else release them and fill nothing.
    /// Whether the phase goes on (commits sent).
    pub(super) fn fok_decide(&mut self, seq: u64) -> bool {
        let Some(own) = self.own.get(seq) else {
            return false;
        };
        let Some(Taking {
            fok: Some(fok),
            stop,
            ..
        }) = &own.taking
        else {
            return false;
        };
        if fok.committing() {
            return false;
        }
        let need = own.rec.remaining();
        let in_time = self.now.saturating_sub(fok.started()) < self.cfg.fok_hold_ms / 2;
        let holds = fok.holds().to_vec();
        let stop = *stop;
        let market = own.rec.market.clone();
        let mkt = own.mkt;
        if stop.is_none() && !need.is_zero() && fok.held() >= need && in_time {
            if let Some(f) = self.own.taking_mut(seq).and_then(|t| t.fok.as_mut()) {
                f.start_commit();
            }
            for h in holds {
                self.send_take(
                    seq,
                    h.maker_key,
                    h.maker,
                    h.qty,
                    SentKind::Commit,
                    Some(h.n),
                );
            }
            return true;
        }
        // Not enough could be held: let every maker go, nothing fills.
        for h in holds {
            self.takes.unask(mkt, h.maker_key, h.qty);
            if let Some(o) = self.own.get_mut(seq) {
                o.unreserve(h.qty);
            }
            let req = TakeRequest {
                v: WIRE_VERSION,
                market: market.clone(),
                maker_seq: h.maker.seq,
                taker_seq: seq,
                take_n: h.n,
                kind: TakeKind::Release,
                deadline_ms: None,
            };
            // Nobody waits for the answer: the hold runs out anyway.
            let tag = self.outbound.tag();
            if let Some(a) = self.request(h.maker.owner, Proto::Take, tag, &req) {
                self.actions.push_back(a);
            }
        }
        self.counters.fok_aborted += 1;
        let (status, reason) = match stop {
            Some(taker::CANCELLED) => (OrderStatus::Cancelled, "cancelled by the user"),
            _ => (
                OrderStatus::Rejected,
                "fill-or-kill: the makers could not set aside the whole quantity",
            ),
        };
        self.end(seq, status, Some(reason.to_string()));
        true
    }
}
