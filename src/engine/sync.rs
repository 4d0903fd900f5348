//! Sync: pulling what gossip lost from a peer.
//!
//! A node pulls the whole book of every market when it joins and when it
//! comes back from being alone (a restart, a partition), page by page. When
//! an owner's heartbeat digest keeps differing from what the replica holds,
//! the node pulls that owner's orders: from the owner itself when it can
//! reach it, and then the answer replaces what it held (the owner is the
//! authority on its orders); from anybody else it is merged, or replaces
//! when it matches the digest the owner signed. Missing fills are pulled the
//! same way. Answers are bounded in size; every page is its own request.

use std::collections::HashSet;

use super::peers::Budget;
use super::proven::{proven_fill, StateProof};
use super::requests::Pending;
use super::*;
use crate::wire::proof::{BatchSig, Forged, PageBatches, PageVerifier, Proven};
use crate::wire::{
    self, BookPage, FillMsg, FillsPage, OwnerOrders, OwnerPage, ProvenOrder, SyncRefusal,
    SyncRequest, SyncResponse, WIRE_VERSION,
};

/// Fills sent with the first page of a book sync.
const BOOK_SYNC_FILLS: usize = 1_000;
/// How long a peer that served records that do not verify is banned.
const BAN_MS: Millis = 10 * 60 * 1000;
/// A sync page not answered within this is given up on for the repair's
/// sake: the owner's next mismatched heartbeat (or, for the book, the next
/// housekeeping) asks again, of another peer in turn. The request itself
/// runs on until `net.sync_timeout_ms` (30 s), and its answer is still
/// used; but one request lost to a connection that died quietly, or a
/// peer that never answers, held the repair of that owner, or with the
/// book every owner's, for the whole of it.
pub(super) const SYNC_PATIENCE_MS: Millis = 5_000;

/// Whether a repair whose last page was asked at `asked` is still waited
/// for at `now`.
pub(super) fn waiting(asked: Option<Millis>, now: Millis) -> bool {
    asked.is_some_and(|t| now.saturating_sub(t) < SYNC_PATIENCE_MS)
}

impl Engine {
    pub(super) fn send_sync(&mut self, mkt: usize, peer: PeerId, what: SyncWhat) {
        let req = SyncRequest {
            v: WIRE_VERSION,
            market: self.markets[mkt].name().to_string(),
            what: what.clone(),
        };
        let now = self.now;
        match &what {
            SyncWhat::Book { .. } => {
                self.markets[mkt].book_sync = BookSync::Running { peer, asked: now }
            }
            SyncWhat::Owner { owner, .. } => {
                if let Some(k) = self.peers.key(owner) {
                    self.markets[mkt].replica.owner(k).syncing = Some(now);
                }
            }
            SyncWhat::Fills { owner, .. } => {
                if let Some(k) = self.peers.key(owner) {
                    self.markets[mkt].replica.owner(k).fills_syncing = Some(now);
                }
            }
        }
        let tag = self.outbound.send(Pending::Sync { mkt, peer, what });
        self.counters.sync_requests += 1;
        if let Some(a) = self.request(peer, Proto::Sync, tag, &req) {
            self.actions.push_back(a);
        }
    }

    pub(super) fn start_book_syncs(&mut self) {
        for mkt in 0..self.markets.len() {
            let mut stuck = None;
            if let BookSync::Running { peer, asked } = self.markets[mkt].book_sync {
                if !waiting(Some(asked), self.now) {
                    tracing::info!(%peer, market = %self.markets[mkt].name(), "a page of the book was not answered in {SYNC_PATIENCE_MS} ms; pulling it from another peer");
                    self.markets[mkt].book_sync = BookSync::Needed;
                    stuck = Some(peer);
                }
            }
            if self.markets[mkt].book_sync == BookSync::Needed {
                // Another peer than the one that did not answer, if any.
                let mut pick = self.peers.pick(self.now);
                for _ in 0..4 {
                    if pick.is_none() || pick != stuck {
                        break;
                    }
                    pick = self.peers.pick(self.now);
                }
                let Some(peer) = pick else {
                    return;
                };
                tracing::info!(%peer, market = %self.markets[mkt].name(), "pulling the book");
                self.send_sync(mkt, peer, SyncWhat::Book { after: None });
            }
        }
    }

    /// Whether `peer` serves the book pull that is running (pages of one
    /// given up on are still applied, but no longer drive it).
    fn pulling_book_from(&self, mkt: usize, peer: &PeerId) -> bool {
        matches!(&self.markets[mkt].book_sync, BookSync::Running { peer: p, .. } if p == peer)
    }

    /// Whom to ask about `owner`: the owner itself (request-response dials
    /// it if need be) and a connected peer in turns, so an owner we cannot
    /// reach does not stall the repair.
    fn owner_source(&mut self, mkt: usize, key: u32, owner: PeerId) -> Option<PeerId> {
        let rep = self.markets[mkt].replica.owner(key);
        rep.sync_attempts = rep.sync_attempts.wrapping_add(1);
        if rep.sync_attempts % 2 == 1 || self.peers.is_connected(&owner) {
            return Some(owner);
        }
        self.peers.pick(self.now)
    }

    pub(super) fn start_owner_sync(&mut self, mkt: usize, key: u32, owner: PeerId, after: u64) {
        let Some(peer) = self.owner_source(mkt, key, owner) else {
            return;
        };
        tracing::debug!(%owner, %peer, market = %self.markets[mkt].name(), "owner digest differs; pulling its orders");
        self.counters.owner_syncs += 1;
        self.send_sync(mkt, peer, SyncWhat::Owner { owner, after });
    }

    pub(super) fn start_fills_sync(&mut self, mkt: usize, key: u32, owner: PeerId, from: u64) {
        let Some(peer) = self.owner_source(mkt, key, owner) else {
            return;
        };
        self.send_sync(mkt, peer, SyncWhat::Fills { owner, from });
    }

    // ------------------------------------------------------------ answering

    pub(super) fn on_sync_request(&mut self, peer: PeerId, id: InboundId, data: &[u8]) {
        let (now, rate) = (self.now, self.cfg.max_syncs_per_peer_per_sec);
        // A stranger beyond the peer table's cap, or a peer banned for
        // serving forgeries, is refused like a peer over its rate.
        let allowed = !self.peers.is_banned(&peer, now)
            && self
                .peers
                .admit(peer, now)
                .is_some_and(|key| self.peers.spend(key, Budget::Syncs, now, rate));
        // Over its rate, a peer's request is not even decoded.
        let version = allowed.then(|| wire::version_of(data, self.cfg.wire.request));
        let resp = match version {
            None => {
                self.counters.syncs_rate_limited += 1;
                SyncResponse::Refused(SyncRefusal::Busy)
            }
            Some(Some(v)) if v != WIRE_VERSION => {
                if v < WIRE_VERSION {
                    self.old_wire(peer, v);
                }
                SyncResponse::Refused(SyncRefusal::BadRequest)
            }
            Some(_) => match wire::decode::<SyncRequest>(data, self.cfg.wire.request) {
                Err(_) => SyncResponse::Refused(SyncRefusal::BadRequest),
                Ok(r) => match self.markets.by_name(&r.market) {
                    None => SyncResponse::Refused(SyncRefusal::UnknownMarket),
                    Some(mkt) => self.answer_sync(mkt, r.what),
                },
            },
        };
        tracing::trace!(%peer, "answering sync");
        self.counters.sync_answers += 1;
        self.respond(id, &resp);
    }

    /// Up to `limit` of our published open orders on a market with
    /// `seq > after` whose batches went out signed, ascending.
    fn my_published(&self, mkt: usize, after: u64, limit: usize) -> Vec<&StateProof> {
        self.own
            .after(after)
            .filter(|o| o.mkt == mkt && o.published.is_some())
            .filter_map(|o| o.proof.as_ref())
            .take(limit)
            .collect()
    }

    /// An owner's open orders that can be handed on, `seq > after`.
    fn owner_proofs(&self, mkt: usize, key: u32, after: u64, limit: usize) -> Vec<&StateProof> {
        if key == ME {
            self.my_published(mkt, after, limit)
        } else {
            self.markets[mkt]
                .replica
                .owner_orders(key, after)
                .take(limit)
                .collect()
        }
    }

    fn answer_sync(&self, mkt: usize, what: SyncWhat) -> SyncResponse {
        let page = self.cfg.sync_page_orders.max(1);
        let m = &self.markets[mkt];
        let r = &m.replica;
        let mut batches = PageBatches::default();
        match what {
            SyncWhat::Book { after } => {
                let mut owners: Vec<(PeerId, u32)> = r
                    .owners
                    .iter()
                    .filter(|(_, o)| !o.live.is_empty())
                    .map(|(k, _)| (self.peers.id(*k), *k))
                    .collect();
                owners.sort();
                let mut out = Vec::new();
                let mut count = 0;
                let mut next = None;
                'owners: for (peer, key) in owners {
                    let start = match after {
                        Some((p, s)) if p == peer => s,
                        Some((p, _)) if peer < p => continue,
                        _ => 0,
                    };
                    let want = page - count + 1;
                    let mut block: Vec<ProvenOrder> = Vec::new();
                    let mut last = start;
                    for o in self.owner_proofs(mkt, key, start, want) {
                        if count == page {
                            next = Some((peer, last));
                            if !block.is_empty() {
                                out.push(OwnerOrders {
                                    owner: peer,
                                    orders: block,
                                });
                            }
                            break 'owners;
                        }
                        count += 1;
                        last = o.order.seq;
                        block.push(o.to_wire(&mut batches));
                    }
                    if !block.is_empty() {
                        out.push(OwnerOrders {
                            owner: peer,
                            orders: block,
                        });
                    }
                }
                let fills = if after.is_none() {
                    let mut f: Vec<(PeerId, Proven<FillMsg>)> = r
                        .recent_proven_trades()
                        .take(BOOK_SYNC_FILLS)
                        .map(|(_, t, p)| (t.id.maker.owner, proven_fill(t, p, &mut batches)))
                        .collect();
                    f.reverse();
                    f
                } else {
                    Vec::new()
                };
                SyncResponse::Book(BookPage {
                    batches: batches.into_list(),
                    owners: out,
                    fills,
                    next,
                })
            }
            SyncWhat::Owner { owner, after } => {
                if owner == self.me {
                    // Our own word covers every sequence number we handed
                    // out; the orders still taking are said to be pending.
                    let last = self.own.last_seq();
                    let mine = self.my_published(mkt, after, page + 1);
                    let more = mine.len() > page;
                    let orders: Vec<ProvenOrder> = mine
                        .iter()
                        .take(page)
                        .map(|o| o.to_wire(&mut batches))
                        .collect();
                    let upto = if more {
                        orders.last().map_or(last, |o| o.order.item.seq)
                    } else {
                        last
                    };
                    let pending = m
                        .unpublished
                        .range(after.saturating_add(1)..=upto.max(after))
                        .copied()
                        .chain(
                            // Published but not yet out in a signed batch.
                            self.own
                                .after(after)
                                .take_while(|o| o.rec.seq <= upto)
                                .filter(|o| {
                                    o.mkt == mkt && o.published.is_some() && o.proof.is_none()
                                })
                                .map(|o| o.rec.seq),
                        )
                        .collect();
                    SyncResponse::Owner(OwnerPage {
                        owner,
                        after,
                        upto: upto.max(after),
                        pending,
                        batches: batches.into_list(),
                        orders,
                        more,
                    })
                } else {
                    let Some(key) = self.peers.key(&owner) else {
                        return SyncResponse::Owner(OwnerPage {
                            owner,
                            after,
                            upto: after,
                            pending: Vec::new(),
                            batches: Vec::new(),
                            orders: Vec::new(),
                            more: false,
                        });
                    };
                    let found = self.owner_proofs(mkt, key, after, page + 1);
                    let more = found.len() > page;
                    let orders: Vec<ProvenOrder> = found
                        .iter()
                        .take(page)
                        .map(|o| o.to_wire(&mut batches))
                        .collect();
                    let upto = orders.last().map_or(after, |o| o.order.item.seq);
                    SyncResponse::Owner(OwnerPage {
                        owner,
                        after,
                        upto,
                        pending: Vec::new(),
                        batches: batches.into_list(),
                        orders,
                        more,
                    })
                }
            }
            SyncWhat::Fills { owner, from } => {
                let Some(key) = self.peers.key(&owner) else {
                    return SyncResponse::Fills(FillsPage {
                        owner,
                        batches: Vec::new(),
                        fills: Vec::new(),
                        oldest: from,
                        more: false,
                    });
                };
                // Our own fills are in the replica's log too, with proofs
                // once their batch went out.
                let (trades, oldest, more) = r.owner_trades(key, from, page);
                let fills = trades
                    .into_iter()
                    .filter(|(t, _)| key != ME || t.mseq <= m.stream.fills)
                    .map(|(t, p)| proven_fill(t, p, &mut batches))
                    .collect();
                SyncResponse::Fills(FillsPage {
                    owner,
                    batches: batches.into_list(),
                    fills,
                    oldest,
                    more,
                })
            }
        }
    }

    // ------------------------------------------------------------ answers

    pub(super) fn on_sync_response(
        &mut self,
        mkt: usize,
        peer: PeerId,
        what: SyncWhat,
        result: Result<Vec<u8>, RequestFailure>,
    ) {
        let resp = match result {
            Ok(b) => wire::decode::<SyncResponse>(&b, self.cfg.wire.response).ok(),
            Err(_) => None,
        };
        match (what, resp) {
            (SyncWhat::Book { .. }, Some(SyncResponse::Book(page))) => {
                self.on_book_page(mkt, peer, page)
            }
            (SyncWhat::Book { .. }, _) => {
                if self.pulling_book_from(mkt, &peer) {
                    tracing::debug!(%peer, "book sync failed; will ask another peer");
                    self.markets[mkt].book_sync = BookSync::Needed;
                }
            }
            (SyncWhat::Owner { owner, .. }, Some(SyncResponse::Owner(page)))
                if page.owner == owner =>
            {
                self.on_owner_page(mkt, peer, page)
            }
            (SyncWhat::Owner { owner, .. }, _) => {
                if let Some(k) = self.peers.key(&owner) {
                    self.markets[mkt].replica.owner(k).syncing = None;
                }
            }
            (SyncWhat::Fills { owner, .. }, Some(SyncResponse::Fills(page)))
                if page.owner == owner =>
            {
                self.on_fills_page(mkt, peer, page)
            }
            (SyncWhat::Fills { owner, .. }, _) => {
                if let Some(k) = self.peers.key(&owner) {
                    self.markets[mkt].replica.owner(k).fills_syncing = None;
                }
            }
        }
    }

    /// Check one synced order the way gossip orders are checked (and, in
    /// a book, it must still have something to fill).
    fn sane(o: &OrderState) -> bool {
        o.out_of_range().is_none() && !o.remaining.is_zero()
    }

    /// The orders of one owner in a page that verify as its own; the ones
    /// that do not are counted, and their server is banned.
    fn verified_orders(
        &mut self,
        mkt: usize,
        server: PeerId,
        owner: &PeerId,
        batches: &[BatchSig],
        orders: &[ProvenOrder],
    ) -> Vec<StateProof> {
        let name = self.markets[mkt].name().to_string();
        let mut v = PageVerifier::new(&name, batches);
        let mut out = Vec::new();
        let mut forged = None;
        for o in orders {
            match StateProof::verify(&mut v, owner, o) {
                Ok(p) if Self::sane(&p.state()) => out.push(p),
                Ok(_) => forged = Some(Forged::Inconsistent),
                Err(why) => forged = Some(why),
            }
            if let Some(why) = forged.take() {
                self.refused_record(why);
                self.forgery_from(server, why);
            }
        }
        out
    }

    /// A peer served records that do not verify: it is not asked again, and
    /// not answered, for a while, and the network drops it.
    fn forgery_from(&mut self, peer: PeerId, why: Forged) {
        if self.peers.is_banned(&peer, self.now) {
            return;
        }
        tracing::warn!(%peer, reason = %why, "peer served records that do not verify as their owners'; banning it for a while");
        self.counters.peers_banned += 1;
        self.peers.ban(&peer, self.now + BAN_MS);
        self.actions.push_back(
            NetAction::Ban {
                peer,
                for_ms: BAN_MS,
            }
            .into(),
        );
    }

    fn on_book_page(&mut self, mkt: usize, peer: PeerId, page: BookPage) {
        self.counters.sync_pages += 1;
        let max = self.cfg.max_orders_per_owner;
        for block in &page.owners {
            // Records "of" us are checked too (a forgery is a forgery), but
            // we know our own orders better than anyone.
            let good = self.verified_orders(mkt, peer, &block.owner, &page.batches, &block.orders);
            if block.owner == self.me {
                continue;
            }
            let Some(key) = self.peers.admit(block.owner, self.now) else {
                self.counters.owners_limit_hits += 1;
                continue;
            };
            for p in good {
                self.markets[mkt]
                    .replica
                    .upsert_proven(key, &block.owner, p, max);
            }
        }
        self.apply_page_fills(mkt, peer, &page.batches, &page.fills);
        self.markets[mkt].book_changed = true;
        match page.next {
            // A page of a pull given up on: used, but the running pull
            // goes on by itself.
            _ if !self.pulling_book_from(mkt, &peer) => {}
            // It served forgeries: pull the book again from someone else.
            _ if self.peers.is_banned(&peer, self.now) => {
                self.markets[mkt].book_sync = BookSync::Needed;
            }
            Some(after) => self.send_sync(mkt, peer, SyncWhat::Book { after: Some(after) }),
            None => {
                let m = &mut self.markets[mkt];
                tracing::info!(%peer, market = %m.name(), orders = m.replica.len(), "book pulled");
                m.book_sync = BookSync::Done;
            }
        }
        self.check_crossing(mkt);
    }

    /// Fills from a page, each checked as its maker's.
    fn apply_page_fills(
        &mut self,
        mkt: usize,
        server: PeerId,
        batches: &[BatchSig],
        fills: &[(PeerId, Proven<FillMsg>)],
    ) {
        let name = self.markets[mkt].name().to_string();
        let mut checked = Vec::new();
        {
            let mut v = PageVerifier::new(&name, batches);
            for (maker, f) in fills {
                let result = if f.item.in_range() {
                    v.check(maker, &Item::Fill(f.item.clone()), &f.proof)
                } else {
                    Err(Forged::Inconsistent)
                };
                checked.push((*maker, f.item.clone(), result));
            }
        }
        for (maker, f, result) in checked {
            match result {
                Ok(_) if maker == self.me => {}
                Ok(p) => {
                    let Some(key) = self.peers.admit(maker, self.now) else {
                        self.counters.owners_limit_hits += 1;
                        continue;
                    };
                    self.apply_fill(mkt, key, maker, &f, Some(p));
                }
                Err(why) => {
                    self.refused_record(why);
                    self.forgery_from(server, why);
                }
            }
        }
    }

    fn on_owner_page(&mut self, mkt: usize, peer: PeerId, page: OwnerPage) {
        self.counters.sync_pages += 1;
        let owner = page.owner;
        if owner == self.me {
            return;
        }
        let Some(key) = self.peers.admit(owner, self.now) else {
            self.counters.owners_limit_hits += 1;
            return;
        };
        let max = self.cfg.max_orders_per_owner;
        let orders = self.verified_orders(mkt, peer, &owner, &page.batches, &page.orders);
        let r = &mut self.markets[mkt].replica;
        if peer == owner {
            // The owner's own word, on a connection only it can hold: what
            // it does not list (and does not say is pending) is gone.
            let pending: HashSet<u64> = page.pending.iter().copied().collect();
            r.replace_range(key, &owner, page.after, page.upto, &pending, orders, max);
        } else {
            // A third party's: every record is the owner's (checked), but
            // it may be old; the register keeps the newest of each.
            for p in orders {
                r.upsert_proven(key, &owner, p, max);
            }
        }
        self.markets[mkt].book_changed = true;
        if page.more && page.upto > page.after && !self.peers.is_banned(&peer, self.now) {
            self.send_sync(
                mkt,
                peer,
                SyncWhat::Owner {
                    owner,
                    after: page.upto,
                },
            );
        } else {
            let rep = self.markets[mkt].replica.owner(key);
            rep.syncing = None;
            rep.mismatches = 0;
        }
        self.check_crossing(mkt);
    }

    fn on_fills_page(&mut self, mkt: usize, peer: PeerId, page: FillsPage) {
        self.counters.sync_pages += 1;
        let owner = page.owner;
        if owner == self.me {
            return;
        }
        let Some(key) = self.peers.admit(owner, self.now) else {
            self.counters.owners_limit_hits += 1;
            return;
        };
        let last = page.fills.last().map(|f| f.item.mseq);
        let fills: Vec<(PeerId, Proven<FillMsg>)> =
            page.fills.into_iter().map(|f| (owner, f)).collect();
        self.apply_page_fills(mkt, peer, &page.batches, &fills);
        if peer == owner {
            // The owner itself no longer has older fills: stop waiting.
            self.markets[mkt]
                .replica
                .owner(key)
                .skip_fills_below(page.oldest);
        }
        match (page.more, last) {
            (true, Some(l)) if !self.peers.is_banned(&peer, self.now) => {
                self.send_sync(mkt, peer, SyncWhat::Fills { owner, from: l + 1 })
            }
            _ => {
                let rep = self.markets[mkt].replica.owner(key);
                rep.fills_syncing = None;
                rep.fill_gaps = 0;
            }
        }
    }
}
