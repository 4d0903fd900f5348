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

use super::peers::Budget;
use super::requests::Pending;
use super::*;
use crate::wire::{
    self, BookPage, FillsPage, OwnerOrders, OwnerPage, SyncRefusal, SyncRequest, SyncResponse,
    WIRE_VERSION,
};

/// Fills sent with the first page of a book sync.
const BOOK_SYNC_FILLS: usize = 1_000;

impl Engine {
    fn send_sync(&mut self, mkt: usize, peer: PeerId, what: SyncWhat) {
        let req = SyncRequest {
            v: WIRE_VERSION,
            market: self.markets[mkt].name().to_string(),
            what: what.clone(),
        };
        let tag = self.outbound.send(Pending::Sync { mkt, peer, what });
        self.counters.sync_requests += 1;
        if let Some(a) = self.request(peer, Proto::Sync, tag, &req) {
            self.actions.push_back(a);
        }
    }

    pub(super) fn start_book_syncs(&mut self) {
        for mkt in 0..self.markets.len() {
            if self.markets[mkt].book_sync == BookSync::Needed {
                let Some(peer) = self.peers.pick(None) else {
                    return;
                };
                tracing::info!(%peer, market = %self.markets[mkt].name(), "pulling the book");
                self.markets[mkt].book_sync = BookSync::Running { peer };
                self.send_sync(mkt, peer, SyncWhat::Book { after: None });
            }
        }
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
        self.peers.pick(None)
    }

    pub(super) fn start_owner_sync(&mut self, mkt: usize, key: u32, owner: PeerId, after: u64) {
        let Some(peer) = self.owner_source(mkt, key, owner) else {
            return;
        };
        tracing::debug!(%owner, %peer, market = %self.markets[mkt].name(), "owner digest differs; pulling its orders");
        self.markets[mkt].replica.owner(key).syncing = true;
        self.counters.owner_syncs += 1;
        self.send_sync(mkt, peer, SyncWhat::Owner { owner, after });
    }

    pub(super) fn start_fills_sync(&mut self, mkt: usize, key: u32, owner: PeerId, from: u64) {
        let Some(peer) = self.owner_source(mkt, key, owner) else {
            return;
        };
        self.markets[mkt].replica.owner(key).fills_syncing = true;
        self.send_sync(mkt, peer, SyncWhat::Fills { owner, from });
    }

    // ------------------------------------------------------------ answering

    pub(super) fn on_sync_request(&mut self, peer: PeerId, id: InboundId, data: &[u8]) {
        let (now, rate) = (self.now, self.cfg.max_syncs_per_peer_per_sec);
        // A stranger beyond the peer table's cap is refused like a peer over
        // its rate.
        let allowed = self
            .peers
            .admit(peer, now)
            .is_some_and(|key| self.peers.spend(key, Budget::Syncs, now, rate));
        // Over its rate, a peer's request is not even decoded.
        let decoded = allowed.then(|| wire::decode::<SyncRequest>(data, self.cfg.wire.request));
        let resp = match decoded {
            None => {
                self.counters.syncs_rate_limited += 1;
                SyncResponse::Refused(SyncRefusal::Busy)
            }
            Some(Err(_)) => SyncResponse::Refused(SyncRefusal::BadRequest),
            Some(Ok(r)) if r.v != WIRE_VERSION => SyncResponse::Refused(SyncRefusal::BadRequest),
            Some(Ok(r)) => match self.markets.by_name(&r.market) {
                None => SyncResponse::Refused(SyncRefusal::UnknownMarket),
                Some(mkt) => self.answer_sync(mkt, r.what),
            },
        };
        tracing::trace!(%peer, "answering sync");
        self.counters.sync_answers += 1;
        self.respond(id, &resp);
    }

    /// Up to `limit` of our published open orders on a market with
    /// `seq > after`, ascending.
    fn my_published(&self, mkt: usize, after: u64, limit: usize) -> Vec<OrderState> {
        self.own
            .after(after)
            .filter(|o| o.mkt == mkt)
            .filter_map(|o| o.published.clone())
            .take(limit)
            .collect()
    }

    fn answer_sync(&self, mkt: usize, what: SyncWhat) -> SyncResponse {
        let page = self.cfg.sync_page_orders.max(1);
        let m = &self.markets[mkt];
        let r = &m.replica;
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
                    let orders: Vec<OrderState> = if key == ME {
                        self.my_published(mkt, start, want)
                    } else {
                        r.owner_orders(key, start).take(want).cloned().collect()
                    };
                    let mut block = Vec::new();
                    for o in orders {
                        if count == page {
                            next = block
                                .last()
                                .map(|l: &OrderState| (peer, l.seq))
                                .or(Some((peer, start)));
                            if !block.is_empty() {
                                out.push(OwnerOrders {
                                    owner: peer,
                                    orders: block,
                                });
                            }
                            break 'owners;
                        }
                        count += 1;
                        block.push(o);
                    }
                    if !block.is_empty() {
                        out.push(OwnerOrders {
                            owner: peer,
                            orders: block,
                        });
                    }
                }
                let fills = if after.is_none() {
                    let mut f: Vec<(PeerId, wire::FillMsg)> = r
                        .recent_trades()
                        .take(BOOK_SYNC_FILLS)
                        .map(|t| (t.id.maker.owner, maker::fill_msg(t)))
                        .collect();
                    f.reverse();
                    f
                } else {
                    Vec::new()
                };
                SyncResponse::Book(BookPage {
                    owners: out,
                    fills,
                    next,
                })
            }
            SyncWhat::Owner { owner, after } => {
                if owner == self.me {
                    let wm = m.watermark(self.own.last_seq());
                    let mut orders: Vec<OrderState> = self
                        .my_published(mkt, after, page + 1)
                        .into_iter()
                        .filter(|o| o.seq <= wm)
                        .collect();
                    let more = orders.len() > page;
                    orders.truncate(page);
                    let upto = if more {
                        orders.last().map_or(wm, |o| o.seq)
                    } else {
                        wm
                    };
                    SyncResponse::Owner(OwnerPage {
                        owner,
                        after,
                        upto: upto.max(after),
                        orders,
                        more,
                    })
                } else {
                    let Some(key) = self.peers.key(&owner) else {
                        return SyncResponse::Owner(OwnerPage {
                            owner,
                            after,
                            upto: after,
                            orders: Vec::new(),
                            more: false,
                        });
                    };
                    let mut orders: Vec<OrderState> =
                        r.owner_orders(key, after).take(page + 1).cloned().collect();
                    let more = orders.len() > page;
                    orders.truncate(page);
                    let upto = orders.last().map_or(after, |o| o.seq);
                    SyncResponse::Owner(OwnerPage {
                        owner,
                        after,
                        upto,
                        orders,
                        more,
                    })
                }
            }
            SyncWhat::Fills { owner, from } => {
                if owner == self.me {
                    let published = m.stream.fills;
                    let fills: Vec<wire::FillMsg> = m
                        .my_fills
                        .iter()
                        .filter_map(|id| self.own.trade(id))
                        .filter(|t| t.mseq >= from && t.mseq <= published)
                        .take(page + 1)
                        .map(maker::fill_msg)
                        .collect();
                    let more = fills.len() > page;
                    let mut fills = fills;
                    fills.truncate(page);
                    let oldest = m
                        .my_fills
                        .first()
                        .and_then(|id| self.own.trade(id))
                        .map_or(1, |t| t.mseq);
                    SyncResponse::Fills(FillsPage {
                        owner,
                        fills,
                        oldest,
                        more,
                    })
                } else {
                    let key = self.peers.key(&owner);
                    let (trades, oldest, more) = match key {
                        Some(k) => r.owner_trades(k, from, page),
                        None => (Vec::new(), from, false),
                    };
                    SyncResponse::Fills(FillsPage {
                        owner,
                        fills: trades.iter().map(maker::fill_msg).collect(),
                        oldest,
                        more,
                    })
                }
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
                tracing::debug!(%peer, "book sync failed; will ask another peer");
                self.markets[mkt].book_sync = BookSync::Needed;
            }
            (SyncWhat::Owner { owner, .. }, Some(SyncResponse::Owner(page)))
                if page.owner == owner =>
            {
                self.on_owner_page(mkt, peer, page)
            }
            (SyncWhat::Owner { owner, .. }, _) => {
                if let Some(k) = self.peers.key(&owner) {
                    self.markets[mkt].replica.owner(k).syncing = false;
                }
            }
            (SyncWhat::Fills { owner, .. }, Some(SyncResponse::Fills(page)))
                if page.owner == owner =>
            {
                self.on_fills_page(mkt, peer, page)
            }
            (SyncWhat::Fills { owner, .. }, _) => {
                if let Some(k) = self.peers.key(&owner) {
                    self.markets[mkt].replica.owner(k).fills_syncing = false;
                }
            }
        }
    }

    /// Check one synced order the way gossip orders are checked (and, in
    /// a book, it must still have something to fill).
    fn sane(o: &OrderState) -> bool {
        o.out_of_range().is_none() && !o.remaining.is_zero()
    }

    fn on_book_page(&mut self, mkt: usize, peer: PeerId, page: BookPage) {
        self.counters.sync_pages += 1;
        let max = self.cfg.max_orders_per_owner;
        for block in page.owners {
            if block.owner == self.me {
                continue;
            }
            let Some(key) = self.peers.admit(block.owner, self.now) else {
                self.counters.owners_limit_hits += 1;
                continue;
            };
            for o in block.orders {
                if Self::sane(&o) {
                    self.markets[mkt].replica.upsert(key, &block.owner, o, max);
                }
            }
        }
        for (maker, f) in page.fills {
            if maker != self.me && f.in_range() {
                let Some(key) = self.peers.admit(maker, self.now) else {
                    self.counters.owners_limit_hits += 1;
                    continue;
                };
                self.apply_fill(mkt, key, maker, &f);
            }
        }
        self.markets[mkt].book_changed = true;
        match page.next {
            Some(after) => self.send_sync(mkt, peer, SyncWhat::Book { after: Some(after) }),
            None => {
                let m = &mut self.markets[mkt];
                tracing::info!(%peer, market = %m.name(), orders = m.replica.len(), "book pulled");
                m.book_sync = BookSync::Done;
            }
        }
        self.check_crossing(mkt);
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
        let orders: Vec<OrderState> = page.orders.into_iter().filter(Self::sane).collect();
        let r = &mut self.markets[mkt].replica;
        if peer == owner {
            // The owner's own word: what it does not list is gone.
            r.replace_range(key, &owner, page.after, page.upto, orders, max);
        } else {
            let hb = r.owners.get(&key).and_then(|o| o.last_hb.clone());
            let mut d = Digest::EMPTY;
            for o in &orders {
                d.add(Digest::of_order(&owner, o));
            }
            match hb {
                Some(hb) if !page.more && page.after == 0 && Digest::from_bytes(hb.digest) == d => {
                    // What the owner signed: as good as its own word.
                    r.replace_range(key, &owner, 0, hb.watermark, orders, max);
                }
                _ => {
                    for o in orders {
                        r.upsert(key, &owner, o, max);
                    }
                }
            }
        }
        self.markets[mkt].book_changed = true;
        if page.more && page.upto > page.after {
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
            rep.syncing = false;
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
        let last = page.fills.last().map(|f| f.mseq);
        for f in page.fills.iter().filter(|f| f.in_range()) {
            self.apply_fill(mkt, key, owner, f);
        }
        if peer == owner {
            // The owner itself no longer has older fills: stop waiting.
            self.markets[mkt]
                .replica
                .owner(key)
                .skip_fills_below(page.oldest);
        }
        match (page.more, last) {
            (true, Some(l)) => self.send_sync(mkt, peer, SyncWhat::Fills { owner, from: l + 1 }),
            _ => {
                let rep = self.markets[mkt].replica.owner(key);
                rep.fills_syncing = false;
                rep.fill_gaps = 0;
            }
        }
    }
}
