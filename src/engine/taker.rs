//! The taker's side: placing an order, taking from makers, and ending the
//! taking phase.
//!
//! A new order that crosses the book sends take requests to the owners of the
//! best remote orders in price-time priority, for no more than it has free.
//! A refusal frees the quantity and the walk goes on down the book; a take
//! that gets no answer is *in doubt*: its quantity stays reserved until the
//! maker says what became of it (a status request, or its fill in gossip),
//! so the order can never be filled past its quantity. When nothing is in
//! flight the phase ends and the rest rests (GTC), is dropped (IOC, market,
//! FOK), or is cancelled (self-trade prevention, a cancel).

use super::own::Own;
use super::requests::Pending;
use super::takes::{Doubt, Sent, SentKind, Settle};
use super::taking::{Fok, Taking};
use super::*;
use crate::market::Price;
use crate::wire::{self, FillMsg, Refusal, TakeKind, TakeRequest, TakeResponse, WIRE_VERSION};

/// Why a limit order's rest was not placed (`reach.rs`).
pub(super) const CROSSES_UNREACHABLE: &str =
    "the rest would cross an order whose owner cannot be reached from this node; not placed";

/// Longest client id accepted (it is stored with the order).
const MAX_CLIENT_ID: usize = 64;
impl Engine {
    pub(super) fn place(&mut self, id: CommandId, p: PlaceOrder) {
        match self.new_order(id, p) {
            Ok(Some(seq)) => {
                self.plan(seq);
                self.maybe_finish(seq);
            }
            Ok(None) => {}
            Err(e) => {
                self.counters.orders_refused += 1;
                self.actions.push_back(Action::Reply { id, result: Err(e) });
            }
        }
    }

    /// Check a new order and make it one of ours. `Ok(None)` when the
    /// command is already answered (a repeated client id, a rejection).
    fn new_order(&mut self, id: CommandId, p: PlaceOrder) -> Result<Option<u64>, EngineError> {
        if let Some(e) = self.tx.degraded() {
            return Err(EngineError::Storage(e.to_string()));
        }
        let mkt = self.market_idx(&p.market)?;
        if let Some(c) = &p.client_id {
            if c.is_empty() || c.len() > MAX_CLIENT_ID || c.chars().any(|ch| ch.is_control()) {
                return Err(EngineError::Invalid(format!(
                    "client_id must be 1 to {MAX_CLIENT_ID} printable characters"
                )));
            }
            // Placing is idempotent per client id: the first order wins.
            if let Some(first) = self.own.by_client_id(c) {
                let info = self.own_info(first);
                {
                    self.actions.push_back(Action::Reply {
                        id,
                        result: Ok(info),
                    });
                    return Ok(None);
                }
            }
        }
        let spec = &self.markets[mkt].replica.spec;
        let price = match (p.kind, p.price) {
            (OrderKind::Limit, Some(px)) => Some(
                spec.price_to_ticks(px)
                    .map_err(|e| EngineError::Invalid(e.to_string()))?,
            ),
            (OrderKind::Limit, None) => {
                return Err(EngineError::Invalid("a limit order needs a price".into()))
            }
            (OrderKind::Market, Some(_)) => {
                return Err(EngineError::Invalid(
                    "a market order takes no price; use a limit order to set one".into(),
                ))
            }
            (OrderKind::Market, None) => None,
        };
        if p.kind == OrderKind::Market && matches!(p.tif, Tif::Gtc | Tif::PostOnly) {
            return Err(EngineError::Invalid(format!(
                "a market order never rests, so time in force {} does not apply; use ioc or fok",
                views::tif_str(p.tif)
            )));
        }
        let qty = spec
            .qty_to_lots(p.quantity)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        if let Some(at) = p.expires_ms {
            if p.kind != OrderKind::Limit || !matches!(p.tif, Tif::Gtc | Tif::PostOnly) {
                return Err(EngineError::Invalid(format!(
                    "expires_at applies to a limit order that rests (gtc or post-only), not to \
                     {} {}",
                    p.kind,
                    views::tif_str(p.tif)
                )));
            }
            if at <= self.now {
                return Err(EngineError::Invalid(format!(
                    "expires_at {at} is not in the future (the node's clock says {})",
                    self.now
                )));
            }
            if at - self.now > MAX_EXPIRY_MS {
                return Err(EngineError::Invalid(format!(
                    "expires_at {at} is more than 365 days ahead"
                )));
            }
        }

        let seq = self.own.alloc_seq();
        let rec = OwnOrder {
            seq,
            market: p.market,
            side: p.side,
            kind: p.kind,
            tif: p.tif,
            price,
            qty,
            filled: Qty::ZERO,
            ver: 0,
            fill_seq: 0,
            takes: 0,
            status: OrderStatus::Taking,
            reason: None,
            created_ms: self.now,
            updated_ms: self.now,
            client_id: p.client_id,
            expires_ms: p.expires_ms,
        };
        let fok = (p.tif == Tif::Fok).then(|| Fok::new(self.now));
        let taking = Taking {
            reply: Some(id),
            fok,
            ..Taking::default()
        };
        self.own.insert(Own::new(rec, mkt, Some(taking)));
        self.markets[mkt].unpublished.insert(seq);
        self.counters.orders_placed += 1;
        self.tx.dirty(seq);

        let refusal = match p.tif {
            Tif::PostOnly if self.would_take(mkt, p.side, price) => {
                Some("post-only order would take liquidity")
            }
            Tif::Fok if self.fillable(mkt, p.side, price) < qty => {
                Some("fill-or-kill order cannot be filled whole from the book")
            }
            _ => None,
        };
        if let Some(reason) = refusal {
            self.end(seq, OrderStatus::Rejected, Some(reason.to_string()));
            return Ok(None);
        }
        Ok(Some(seq))
    }

    /// Whether an order at `price` would meet any open order on the other
    /// side (post-only check).
    fn would_take(&self, mkt: usize, side: Side, price: Option<Price>) -> bool {
        let best = self.markets[mkt].replica.book.best(side.opposite());
        match (best, price) {
            (Some((p, _)), Some(l)) => side.crosses(l, p),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Whether an order at `price` would cross one of our open orders.
    fn crosses_own(&self, mkt: usize, side: Side, price: Option<Price>) -> bool {
        self.markets[mkt]
            .replica
            .book
            .iter_side(side.opposite())
            .take_while(|v| price.is_none_or(|l| side.crosses(l, v.price)))
            .any(|v| v.owner == ME)
    }

    /// Whether the owner of a remote order is marked unreachable now.
    pub(super) fn owner_unreachable(&self, owner: crate::book::OwnerKey) -> bool {
        owner != ME
            && self
                .unreachable
                .is_unreachable(&self.peers.id(owner), self.now)
    }

    /// Whether an order at `price` would cross a remote order whose owner
    /// this node cannot reach.
    fn crosses_unreachable(&self, mkt: usize, side: Side, price: Option<Price>) -> bool {
        self.markets[mkt]
            .replica
            .book
            .iter_side(side.opposite())
            .take_while(|v| price.is_none_or(|l| side.crosses(l, v.price)))
            .any(|v| self.owner_unreachable(v.owner))
    }

    /// How much a taker could get from live, not stale, remote orders
    /// within `limit`, before self-trade prevention would stop it.
    fn fillable(&self, mkt: usize, side: Side, limit: Option<Price>) -> Qty {
        let mut total = Qty::ZERO;
        for v in self.markets[mkt].replica.book.iter_side(side.opposite()) {
            if limit.is_some_and(|l| !side.crosses(l, v.price)) || v.owner == ME {
                break;
            }
            if !self.peers.is_stale(v.owner) && !self.owner_unreachable(v.owner) {
                total += v.remaining.saturating_sub(self.takes.asked_of(mkt, v.id));
            }
        }
        total
    }

    /// Send takes for what the order has free, best makers first.
    pub(super) fn plan(&mut self, seq: u64) {
        let Some(own) = self.own.get(seq) else {
            return;
        };
        let Some(taking) = &own.taking else {
            return;
        };
        if taking.stop.is_some() || taking.resume_only || own.free().is_zero() {
            return;
        }
        let kind = match &taking.fok {
            Some(f) if f.committing() => return,
            Some(_) => SentKind::Hold,
            None => SentKind::Fill,
        };
        let mkt = own.mkt;
        let side = own.rec.side;
        let limit = own.rec.price;
        let only_older = taking.only_older;
        let my_prio = replica::priority(own.rec.created_ms, &self.me, seq);
        let mut free = own.free();
        let mut stop = None;
        let mut takes = Vec::new();
        let r = &self.markets[mkt].replica;
        for v in r.book.iter_side(side.opposite()) {
            if limit.is_some_and(|l| !side.crosses(l, v.price)) {
                break;
            }
            if v.owner == ME {
                if !only_older {
                    stop = Some(STP);
                    break;
                }
                continue;
            }
            if self.peers.is_stale(v.owner)
                || self.owner_unreachable(v.owner)
                || (only_older && v.priority >= my_prio)
            {
                continue;
            }
            let Some(o) = r.get(v.id) else { continue };
            let retry_after = self.cfg.heartbeat_ms.saturating_mul(2);
            let recently_refused = |tried: Option<&(u64, Millis)>| {
                tried.is_some_and(|(ver, at)| {
                    *ver >= o.state.ver && self.now.saturating_sub(*at) < retry_after
                })
            };
            if recently_refused(own.tried.get(&v.id))
                || recently_refused(self.markets[mkt].refused.get(&v.id))
            {
                continue;
            }
            let avail = v.remaining.saturating_sub(self.takes.asked_of(mkt, v.id));
            if avail.is_zero() {
                continue;
            }
            let q = free.min(avail);
            takes.push((v.id, OrderId::new(self.peers.id(v.owner), o.state.seq), q));
            free -= q;
            if free.is_zero() {
                break;
            }
        }
        if let Some(s) = stop {
            if let Some(t) = self.own.taking_mut(seq) {
                t.stop = Some(s);
            }
        }
        for (key, maker, q) in takes {
            self.send_take(seq, Some(key), maker, q, kind, None);
        }
    }

    /// Send a take (a fill, a hold, or the commit of hold `n`).
    pub(super) fn send_take(
        &mut self,
        seq: u64,
        key: Option<OrderKey>,
        maker: OrderId,
        qty: Qty,
        kind: SentKind,
        n: Option<u32>,
    ) {
        let Some(own) = self.own.get_mut(seq) else {
            return;
        };
        let n = n.unwrap_or_else(|| {
            own.rec.takes += 1;
            own.rec.takes - 1
        });
        if kind != SentKind::Commit {
            // A commit's quantity is already reserved by its hold.
            own.reserve(qty);
        }
        if let Some(t) = own.taking.as_mut() {
            t.inflight += 1;
        }
        let mkt = own.mkt;
        let (side, limit) = (own.rec.side, own.rec.price);
        let wire_kind = match kind {
            SentKind::Hold => TakeKind::Hold { side, limit, qty },
            SentKind::Commit => TakeKind::Commit,
            _ => TakeKind::Fill { side, limit, qty },
        };
        // A fill or commit is good until its deadline, which the maker's
        // heartbeats can then vouch for (`Settle`).
        let settle = (kind != SentKind::Hold).then(|| {
            let fills_before = self
                .peers
                .key(&maker.owner)
                .and_then(|k| self.markets[mkt].replica.owners.get(&k))
                .map(|rep| {
                    rep.fills_known
                        .max(rep.last_hb.as_ref().map_or(0, |hb| hb.fills))
                })
                .unwrap_or(0);
            // On the maker's clock, which judges it: a maker whose clock
            // is ahead would otherwise refuse every take as late.
            Settle {
                deadline: self.peers.their_time(&maker.owner, self.now) + self.cfg.take_deadline_ms,
                fills_before,
            }
        });
        let Some(own) = self.own.get(seq) else {
            return;
        };
        let req = TakeRequest {
            v: WIRE_VERSION,
            market: own.rec.market.clone(),
            maker_seq: maker.seq,
            taker_seq: seq,
            take_n: n,
            kind: wire_kind,
            deadline_ms: settle.map(|s| s.deadline),
        };
        if kind != SentKind::Hold {
            // A hold fills nothing; a fill or commit may, so its intent is
            // durable before the request leaves: after a crash the node
            // knows which takes may have been filled.
            self.tx.op(Op::PutIntent(TakeIntent {
                taker_seq: seq,
                n,
                market: own.rec.market.clone(),
                maker,
                qty,
                deadline_ms: settle.map(|s| s.deadline),
                fills_before: settle.map_or(0, |s| s.fills_before),
            }));
        }
        self.tx.dirty(seq);
        let tag = self.outbound.send(Pending::Take(Sent {
            mkt,
            seq,
            n,
            maker,
            maker_key: key,
            qty,
            kind,
            settle,
        }));
        if kind != SentKind::Commit {
            self.takes.ask(mkt, key, qty);
        }
        self.counters.takes_sent += 1;
        if let Some(a) = self.request(maker.owner, Proto::Take, tag, &req) {
            self.hold(a);
        }
    }

    pub(super) fn on_take_response(&mut self, sent: Sent, result: Result<Vec<u8>, RequestFailure>) {
        let answer = result.map(|b| wire::decode::<TakeResponse>(&b, self.cfg.wire.response));
        let early = self
            .takes
            .take_early(sent.key())
            .filter(|f| self.fill_matches(&sent, f));
        if sent.kind == SentKind::Hold {
            self.on_hold_response(sent, answer);
            return;
        }
        if sent.kind == SentKind::Status {
            let key = sent.key();
            match answer {
                Ok(Ok(TakeResponse::Filled(f))) if self.fill_matches(&sent, &f) => {
                    self.resolve_doubt(key, Some(f))
                }
                Ok(Ok(TakeResponse::Refused(Refusal::Busy | Refusal::Storage))) | Err(_) => {
                    self.takes.query_failed(key);
                }
                Ok(Ok(TakeResponse::Refused(_))) => self.resolve_doubt(key, None),
                Ok(_) => {
                    tracing::warn!(maker = %sent.maker, "maker answered a status request with nonsense; the take stays in doubt");
                    self.takes.query_failed(key);
                }
            }
            return;
        }
        if let Some(t) = self.own.taking_mut(sent.seq) {
            t.inflight = t.inflight.saturating_sub(1);
        }
        let maker = sent.maker.owner;
        match &answer {
            Err(RequestFailure::DialFailure) => {
                let for_ms = self.unreachable.failed(maker, self.now);
                tracing::info!(%maker, for_ms, "maker could not be reached; its orders are not takeable from here for a while");
            }
            Ok(_) => {
                self.unreachable.reached(&maker);
            }
            Err(_) => {}
        }
        match answer {
            Ok(Ok(TakeResponse::Filled(f))) if self.fill_matches(&sent, &f) => {
                self.taker_fill(&sent, &f);
            }
            Ok(Ok(TakeResponse::Refused(r))) => {
                tracing::info!(maker = %sent.maker, reason = r.as_str(), "the maker refused our take");
                self.counters.takes_refused += 1;
                if sent.kind == SentKind::Commit {
                    self.counters.fok_commits_refused += 1;
                }
                // Late: the maker's clock was past the deadline when the
                // take came, so it is ahead of what we knew; the next take
                // goes with a deadline that allows for it, and the same
                // order may be tried again.
                let late = r == Refusal::Late;
                if let (true, Some(s)) = (late, sent.settle) {
                    self.peers.clock_at_least(&maker, s.deadline, self.now);
                }
                if matches!(
                    r,
                    Refusal::Done | Refusal::UnknownOrder | Refusal::NoQuantity
                ) {
                    self.note_refused(&sent);
                }
                self.release_take(&sent, !late);
            }
            // The request never reached the maker: nothing can have filled.
            Err(e) if !e.maybe_delivered() => {
                self.counters.takes_refused += 1;
                self.release_take(&sent, true);
            }
            // No answer, but the maker's fill of it came by gossip or sync.
            Err(_) | Ok(_) if early.is_some() => {
                if let Some(f) = early {
                    self.taker_fill(&sent, &f);
                }
            }
            Err(_) => self.doubt(&sent),
            Ok(_) => {
                tracing::warn!(maker = %sent.maker, "maker answered a take with nonsense; it stays in doubt");
                self.doubt(&sent);
            }
        }
        self.after_take(sent.seq);
    }

    /// Whether a maker's fill answers the take that was sent.
    fn fill_matches(&self, sent: &Sent, f: &FillMsg) -> bool {
        let Some(own) = self.own.get(sent.seq) else {
            return false;
        };
        f.taker == self.me
            && f.taker_seq == sent.seq
            && f.take_n == sent.n
            && f.maker_seq == sent.maker.seq
            && !f.qty.is_zero()
            && f.qty <= sent.qty
            && f.maker_side == own.rec.side.opposite()
            && own
                .rec
                .price
                .is_none_or(|l| own.rec.side.crosses(l, f.price))
    }

    /// Continue or end the taking phase after an answer.
    pub(super) fn after_take(&mut self, seq: u64) {
        self.plan(seq);
        self.maybe_finish(seq);
    }

    /// The take got no answer: keep its quantity reserved and ask later.
    fn doubt(&mut self, sent: &Sent) {
        self.counters.takes_in_doubt += 1;
        tracing::info!(maker = %sent.maker, qty = sent.qty.0, "take got no answer; its quantity stays reserved until the maker tells");
        self.takes.doubt(
            sent.key(),
            Doubt::new(
                sent.mkt,
                sent.maker,
                sent.maker_key,
                sent.qty,
                sent.settle,
                self.now + super::takes::FIRST_DOUBT_BACKOFF,
            ),
        );
    }

    /// The take did not fill: free its quantity (and do not try the same
    /// maker order again until its state changes).
    /// The maker says its order is done or has nothing free: none of our
    /// orders tries it again until the replica holds a newer version of it
    /// (or the retry wait passes), not only the order this take was for.
    fn note_refused(&mut self, sent: &Sent) {
        let m = &mut self.markets[sent.mkt];
        let Some(key) = sent.maker_key else { return };
        let Some(ver) = m.replica.get(key).map(|o| o.state.ver) else {
            return;
        };
        m.refused.insert(key, (ver, self.now));
    }

    pub(super) fn release_take(&mut self, sent: &Sent, tried: bool) {
        let ver = sent
            .maker_key
            .and_then(|k| self.markets[sent.mkt].replica.get(k))
            .map(|o| o.state.ver);
        let now = self.now;
        self.takes.unask(sent.mkt, sent.maker_key, sent.qty);
        if let Some(own) = self.own.get_mut(sent.seq) {
            own.unreserve(sent.qty);
            if let (true, Some(k), Some(v)) = (tried, sent.maker_key, ver) {
                own.tried.insert(k, (v, now));
            }
        }
        if sent.kind != SentKind::Hold {
            self.tx.op(Op::DelIntent {
                taker_seq: sent.seq,
                n: sent.n,
            });
        }
    }

    /// Record a fill of our order as taker.
    fn taker_fill(&mut self, sent: &Sent, f: &FillMsg) {
        // `fill_matches` checked the fill names this take: its maker order,
        // our order and the take's number.
        let trade = Trade::of_fill(sent.maker.owner, self.markets[sent.mkt].name(), f);
        self.takes.unask(sent.mkt, sent.maker_key, sent.qty);
        let Some(own) = self.own.get_mut(sent.seq) else {
            return;
        };
        own.unreserve(sent.qty);
        own.rec.filled = (own.rec.filled + f.qty).min(own.rec.qty);
        own.rec.updated_ms = self.now;
        if own.rec.status == OrderStatus::Open {
            own.rec.ver += 1;
        }
        own.trades.push(trade.id);
        self.counters.fills_taker += 1;
        self.markets[sent.mkt].fills[1] += 1;
        self.tx.op(Op::PutTrade(trade.clone()));
        self.tx.op(Op::DelIntent {
            taker_seq: sent.seq,
            n: sent.n,
        });
        if let Some(maker_key) = self.peers.admit(sent.maker.owner, self.now) {
            let r = &mut self.markets[sent.mkt].replica;
            if r.apply_trade(maker_key, &sent.maker.owner, &trade, None) {
                let info = views::trade(&r.spec, &trade);
                self.hold(Action::Event(Event::Trade(info)));
            }
        }
        self.own.record_trade(trade);
        self.markets[sent.mkt].book_changed = true;
        self.own_changed(sent.seq);
    }

    /// A take in doubt is resolved: filled (with the maker's fill) or not.
    pub(super) fn resolve_doubt(&mut self, key: (u64, u32), fill: Option<FillMsg>) {
        let Some(d) = self.takes.resolve(key) else {
            return;
        };
        let sent = d.sent(key, SentKind::Fill);
        match fill {
            Some(f) => {
                tracing::info!(maker = %d.maker, qty = f.qty.0, "take in doubt was filled");
                self.taker_fill(&sent, &f);
            }
            None => {
                tracing::info!(maker = %d.maker, "take in doubt was not filled; its quantity is free again");
                self.release_take(&sent, false);
                self.own_changed(key.0);
            }
        }
        self.maybe_finish(key.0);
    }

    /// Ask makers about takes in doubt whose time has come.
    pub(super) fn retry_doubts(&mut self) {
        for (key, d) in self.takes.due(self.now) {
            let req = TakeRequest {
                v: WIRE_VERSION,
                market: self.markets[d.mkt].name().to_string(),
                maker_seq: d.maker.seq,
                taker_seq: key.0,
                take_n: key.1,
                kind: TakeKind::Status,
                deadline_ms: None,
            };
            let tag = self
                .outbound
                .send(Pending::Take(d.sent(key, SentKind::Status)));
            if let Some(a) = self.request(d.maker.owner, Proto::Take, tag, &req) {
                self.actions.push_back(a);
            }
        }
    }

    /// End the taking phase if nothing is in flight.
    pub(super) fn maybe_finish(&mut self, seq: u64) {
        let Some(own) = self.own.get(seq) else {
            return;
        };
        let Some(taking) = &own.taking else {
            return;
        };
        if taking.inflight > 0 {
            return;
        }
        if taking.fok.as_ref().is_some_and(|f| !f.committing()) {
            self.fok_decide(seq);
            return;
        }
        let in_doubt = own.has_reserved();
        let remaining = own.rec.remaining();
        let stop = taking.stop;
        let cancelled = stop == Some(CANCELLED);
        let (status, reason): (OrderStatus, Option<String>) = if remaining.is_zero() {
            (OrderStatus::Filled, None)
        } else if cancelled {
            (OrderStatus::Cancelled, Some("cancelled by the user".into()))
        } else if stop == Some(EXPIRED_AT) {
            (OrderStatus::Expired, Some(EXPIRED_AT.into()))
        } else if let Some(s) = stop {
            (OrderStatus::Cancelled, Some(s.to_string()))
        } else if own.rec.status == OrderStatus::Open {
            (OrderStatus::Open, None)
        } else if own.rec.kind == OrderKind::Limit
            && matches!(own.rec.tif, Tif::Gtc | Tif::PostOnly)
        {
            // An own order that rested while this one was taking may cross
            // it now: self-trade prevention cancels the one coming to rest.
            if self.crosses_own(own.mkt, own.rec.side, own.rec.price) {
                (OrderStatus::Cancelled, Some(STP.to_string()))
            } else if self.crosses_unreachable(own.mkt, own.rec.side, own.rec.price) {
                // Resting would cross the book: every node would show a
                // bid above an ask nobody here can take.
                (
                    OrderStatus::Cancelled,
                    Some(CROSSES_UNREACHABLE.to_string()),
                )
            } else {
                (OrderStatus::Open, None)
            }
        } else if in_doubt {
            // An IOC/FOK/market order waits for its takes in doubt.
            (OrderStatus::Taking, None)
        } else {
            let why = match own.rec.tif {
                Tif::Fok => "fill-or-kill: a hold ran out before its commit; the rest was dropped",
                _ => "not filled at once; the rest was dropped",
            };
            (OrderStatus::Expired, Some(why.into()))
        };
        let replies: Vec<CommandId> = {
            let Some(own) = self.own.get_mut(seq) else {
                return;
            };
            let mut r = Vec::new();
            if let Some(t) = own.taking.as_mut() {
                r = t.take_replies();
                if status == OrderStatus::Taking {
                    t.resume_only = true;
                }
            }
            if status != OrderStatus::Taking {
                own.taking = None;
            }
            r
        };
        match status {
            OrderStatus::Taking => {}
            OrderStatus::Open => {
                if let Some(own) = self.own.get_mut(seq) {
                    own.rec.status = OrderStatus::Open;
                }
                self.own_changed(seq);
            }
            s => self.end(seq, s, reason),
        }
        if let Some(own) = self.own.get(seq) {
            let info = self.own_info(own);
            for id in replies {
                self.hold(Action::Reply {
                    id,
                    result: Ok(info.clone()),
                });
            }
        }
    }

    /// The order is done: take it off the book and say so.
    pub(super) fn end(&mut self, seq: u64, status: OrderStatus, reason: Option<String>) {
        let Some(own) = self.own.get_mut(seq) else {
            return;
        };
        let was_listed = own.rec.status == OrderStatus::Open;
        own.rec.status = status;
        own.rec.reason = reason;
        own.rec.updated_ms = self.now;
        let mkt = own.mkt;
        let replies = own
            .taking
            .take()
            .map(|mut t| t.take_replies())
            .unwrap_or_default();
        let mut gone = own.state();
        gone.remaining = Qty::ZERO;
        let m = &mut self.markets[mkt];
        m.unpublished.remove(&seq);
        if was_listed {
            // Our own orders need no tombstone: nobody else can bring them back.
            m.replica.remove(ME, &self.me, seq, false);
            m.book_changed = true;
            // Cancelled or expired, its register ends with a tombstone.
            let item = if matches!(status, OrderStatus::Cancelled | OrderStatus::Expired) {
                Item::Cancel { seq }
            } else {
                Item::Order(gone)
            };
            self.tx.hold(Held::Gossip(mkt, item));
        }
        self.tx.dirty(seq);
        if status == OrderStatus::Rejected {
            self.counters.orders_rejected += 1;
        }
        let Some(info) = self.own.get(seq).map(|o| self.own_info(o)) else {
            return;
        };
        for id in replies {
            self.hold(Action::Reply {
                id,
                result: Ok(info.clone()),
            });
        }
        self.hold(Action::Event(Event::Order(info)));
    }

    /// An open order's state changed (a fill as taker, a take resolved):
    /// update the replica and the gossip stream.
    pub(super) fn own_changed(&mut self, seq: u64) {
        let Some(own) = self.own.get(seq) else {
            return;
        };
        let mkt = own.mkt;
        if own.rec.status == OrderStatus::Open {
            if own.rec.remaining().is_zero() {
                self.end(seq, OrderStatus::Filled, None);
                return;
            }
            let st = own.state();
            let changed = own.published.as_ref() != Some(&st);
            let m = &mut self.markets[mkt];
            m.replica.upsert(ME, &self.me, st.clone(), usize::MAX, None);
            m.book_changed = true;
            if changed {
                self.tx.hold(Held::Gossip(mkt, Item::Order(st)));
            }
        }
        self.tx.dirty(seq);
        if let Some(info) = self.own.get(seq).map(|o| self.own_info(o)) {
            self.hold(Action::Event(Event::Order(info)));
        }
    }

    pub(super) fn cancel(&mut self, id: CommandId, order: &str) {
        let result = self.try_cancel(id, order);
        if let Err(e) = result {
            self.actions.push_back(Action::Reply { id, result: Err(e) });
        }
    }

    fn try_cancel(&mut self, id: CommandId, order: &str) -> Result<(), EngineError> {
        let oid: OrderId = order
            .parse()
            .map_err(|e: BadId| EngineError::Invalid(e.to_string()))?;
        if oid.owner != self.me {
            let known = self.peers.key(&oid.owner).is_some_and(|k| {
                self.markets
                    .iter()
                    .any(|m| m.replica.get_by_id(k, oid.seq).is_some())
            });
            return Err(if known {
                EngineError::NotOwner(order.to_string())
            } else {
                EngineError::NotFound(order.to_string())
            });
        }
        let degraded = self.tx.degraded().map(str::to_string);
        let missing = self.own_missing(order, oid.seq);
        let own = self.own.get_mut(oid.seq).ok_or(missing)?;
        if own.rec.status.is_done() {
            return Err(EngineError::AlreadyDone(
                order.to_string(),
                own.rec.status.as_str(),
            ));
        }
        if let Some(e) = degraded {
            return Err(EngineError::Storage(e));
        }
        if let Some(t) = own.taking.as_mut() {
            // Takes are in flight: stop planning, end when they are answered.
            t.stop = Some(CANCELLED);
            t.cancel_reply = Some(id);
            t.resume_only = false;
            self.maybe_finish(oid.seq);
            return Ok(());
        }
        self.end(
            oid.seq,
            OrderStatus::Cancelled,
            Some("cancelled by the user".into()),
        );
        if let Some(info) = self.own.get(oid.seq).map(|o| self.own_info(o)) {
            self.hold(Action::Reply {
                id,
                result: Ok(info),
            });
        }
        Ok(())
    }

    /// End the own orders whose expiry has come (an order still taking
    /// stops planning and ends `expired` when its takes are answered).
    pub(super) fn expire_due(&mut self) {
        for seq in self.own.expiring_by(self.now) {
            let Some(own) = self.own.get_mut(seq) else {
                continue;
            };
            if own.rec.status.is_done() {
                continue;
            }
            if let Some(t) = own.taking.as_mut() {
                t.stop = Some(EXPIRED_AT);
                t.resume_only = false;
                self.maybe_finish(seq);
                continue;
            }
            self.end(seq, OrderStatus::Expired, Some(EXPIRED_AT.into()));
        }
    }

    /// Whether an own order's expiry has come (whether or not housekeeping
    /// has ended it yet).
    pub(super) fn past_expiry(&self, seq: u64) -> bool {
        self.own
            .get(seq)
            .and_then(|o| o.rec.expires_ms)
            .is_some_and(|at| at <= self.now)
    }

    /// Resolve crossed books: for each of our open orders that crosses an
    /// older remote order, take it (the owner of the newer order takes).
    pub(super) fn check_crossing(&mut self, mkt: usize) {
        for side in [Side::Buy, Side::Sell] {
            let r = &self.markets[mkt].replica;
            let best_remote = r
                .book
                .iter_side(side.opposite())
                .find(|v| v.owner != ME && !self.peers.is_stale(v.owner));
            let Some(best) = best_remote else { continue };
            let mine: Vec<u64> = r
                .book
                .iter_side(side)
                .take_while(|v| side.crosses(v.price, best.price))
                .filter(|v| v.owner == ME)
                .filter_map(|v| r.get(v.id).map(|o| o.state.seq))
                .collect();
            for seq in mine {
                match self.own.get_mut(seq) {
                    Some(o) if o.can_resolve_crossing() => {
                        o.taking = Some(Taking {
                            only_older: true,
                            ..Taking::default()
                        });
                    }
                    _ => continue,
                }
                self.plan(seq);
                if let Some(o) = self.own.get_mut(seq) {
                    if o.taking.as_ref().is_some_and(|t| t.inflight == 0) {
                        o.taking = None;
                    }
                }
            }
        }
    }
}

/// Why self-trade prevention cancelled (the rest of) an order.
const STP: &str = "self-trade prevention: it would trade with an own order";

/// Why an order with an expiry ended (and the marker of a taking phase
/// its expiry stopped).
pub(super) const EXPIRED_AT: &str = "good till its expires_at, which has passed";

/// How far ahead an order's expiry may be.
const MAX_EXPIRY_MS: u64 = 365 * 24 * 3_600_000;

/// Marker of a taking phase stopped by the user's cancel.
pub(super) const CANCELLED: &str = "cancelled";
