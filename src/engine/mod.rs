//! The trading protocol as a sans-IO state machine.
//!
//! The engine holds, per market, the replica of every owner's open orders,
//! this node's own orders, and the takes in flight. It never touches a
//! socket, a clock or the disk: the driver feeds it `Input`s (a command from
//! the API, a gossip message, a take or sync request or response, a peer
//! event, a finished write, a tick) together with the current time, and
//! carries out the `Action`s it returns (publish, report a validation verdict,
//! send or answer a request, persist, reply, emit an event). That is what
//! lets the simulation tests drive hundreds of engines over a lossy,
//! reordering network in one thread, with seeds that reproduce.
//!
//! The consistency model is maker-authoritative fills (DESIGN.md): only the
//! owner of a resting order fills it, one take at a time against what is
//! left, durably before it answers. See `docs/ARCHITECTURE.md`.

mod config;
mod digest;
mod durable;
#[cfg(feature = "testkit")]
pub mod fuzz;
mod gossip;
mod ids;
mod io;
mod maker;
mod replica;
#[cfg(any(test, feature = "testkit"))]
pub mod sim;
mod sync;
mod taker;
mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use libp2p::PeerId;

pub use config::EngineConfig;
pub use digest::Digest;
pub use durable::{Op, OrderKind, OrderStatus, OwnOrder, Snapshot, TakeIntent, Tif, Trade};
pub use ids::{BadId, OrderId, TakeId, TradeId};
pub use io::{
    Action, Command, CommandId, EngineError, Event, InboundId, Input, NetAction, NetInput,
    PlaceOrder, Proto, RequestFailure, RequestTag, Verdict,
};
pub use views::{BookInfo, Counters, MarketInfo, OrderInfo, OwnerInfo, TradeInfo};

use crate::book::OrderKey;
use crate::market::{MarketSpec, Qty, Side};
use crate::wire::{Item, OrderState, SyncWhat};
use replica::Replica;

/// Milliseconds since the Unix epoch: the engine's only notion of time.
pub type Millis = u64;

/// How often the engine wants a `Tick` at the latest.
const HOUSEKEEPING_MS: Millis = 100;
/// Largest gossip message, take or sync request the engine decodes.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Largest sync answer the engine decodes.
pub const MAX_SYNC_BYTES: usize = 16 << 20;

/// An effect held back until the writes it depends on are durable.
#[derive(Clone, Debug)]
enum Held {
    Act(Action),
    /// Put an item in a market's gossip stream.
    Gossip(usize, Item),
    /// The answer to a take from peer `peer`, and what to answer instead if
    /// the write fails.
    TakeAnswer {
        id: InboundId,
        peer: u32,
        ok: Vec<u8>,
        fail: Vec<u8>,
    },
}

/// What the engine knows of a peer (owner) across markets.
#[derive(Clone, Debug)]
struct Peer {
    id: PeerId,
    last_heard: Millis,
    stale: bool,
    connected: bool,
    gossip: Bucket,
    takes: Bucket,
    syncs: Bucket,
    /// Fills for this peer's takes waiting to be durable.
    open_takes: u32,
}

/// A token bucket: `rate` per second, bursts of `rate`.
#[derive(Clone, Debug, Default)]
struct Bucket {
    tokens: f64,
    at: Millis,
    started: bool,
}

impl Bucket {
    /// Take one token if there is one.
    fn take(&mut self, now: Millis, rate: u32) -> bool {
        let rate = f64::from(rate.max(1));
        if !self.started {
            self.started = true;
            self.tokens = rate;
        } else {
            let dt = now.saturating_sub(self.at) as f64 / 1000.0;
            self.tokens = (self.tokens + dt * rate).min(rate);
        }
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Peer {
    fn new(id: PeerId, now: Millis, connected: bool) -> Peer {
        Peer {
            id,
            last_heard: now,
            stale: false,
            connected,
            gossip: Bucket::default(),
            takes: Bucket::default(),
            syncs: Bucket::default(),
            open_takes: 0,
        }
    }
}

/// One of this node's orders and its working state.
#[derive(Clone, Debug)]
struct Own {
    rec: OwnOrder,
    mkt: usize,
    /// Quantity asked of makers and not answered yet (in flight or in doubt),
    /// or held by makers for a fill-or-kill commit.
    reserved: Qty,
    /// Quantity this order (as maker) holds for fill-or-kill takers.
    holding: Qty,
    taking: Option<Taking>,
    trades: Vec<TradeId>,
    /// The state last put in the gossip stream, if any.
    published: Option<OrderState>,
    /// Maker orders tried and refused, with the maker version and the time:
    /// not tried again until their state changes or a while has passed.
    tried: HashMap<OrderKey, (u64, Millis)>,
}

impl Own {
    fn free(&self) -> Qty {
        self.rec
            .remaining()
            .saturating_sub(self.reserved)
            .saturating_sub(self.holding)
    }

    fn state(&self) -> OrderState {
        OrderState {
            seq: self.rec.seq,
            side: self.rec.side,
            price: self.rec.price.unwrap_or(crate::market::Price(0)),
            qty: self.rec.qty,
            remaining: self.rec.remaining(),
            ver: self.rec.ver,
            created_ms: self.rec.created_ms,
        }
    }
}

/// An order's taking phase.
#[derive(Clone, Debug, Default)]
struct Taking {
    /// The placement waiting for the phase to end.
    reply: Option<CommandId>,
    /// A cancel waiting for the phase to end.
    cancel_reply: Option<CommandId>,
    /// Takes sent and not answered.
    inflight: u32,
    /// Resolving a crossed book: take only orders older than this one.
    only_older: bool,
    /// Why the phase stopped early (self-trade prevention, a cancel).
    stop: Option<&'static str>,
    /// After a restart: resolve the takes in doubt, plan no new ones.
    resume_only: bool,
    /// A fill-or-kill order's two rounds (holds, then commits).
    fok: Option<Fok>,
}

/// A fill-or-kill taking phase: first every maker is asked to hold, and only
/// if the holds cover the whole order is anything committed; otherwise every
/// hold is released and nothing fills.
#[derive(Clone, Debug, Default)]
struct Fok {
    committing: bool,
    holds: Vec<HeldTake>,
    started: Millis,
}

/// Quantity a maker holds for one of our takes.
#[derive(Clone, Debug)]
struct HeldTake {
    n: u32,
    maker: OrderId,
    maker_key: Option<OrderKey>,
    qty: Qty,
}

/// Quantity one of our orders holds for a fill-or-kill taker.
#[derive(Clone, Debug)]
struct Hold {
    seq: u64,
    qty: Qty,
    until: Millis,
    peer: u32,
}

/// A request sent and not answered yet.
#[derive(Clone, Debug)]
enum Pending {
    Take(taker::Sent),
    Sync {
        mkt: usize,
        peer: PeerId,
        what: SyncWhat,
    },
}

/// A take whose answer never came: its quantity stays reserved until the
/// maker tells (a status request, or the fill seen in gossip).
#[derive(Clone, Debug)]
struct Doubt {
    mkt: usize,
    maker: OrderId,
    maker_key: Option<OrderKey>,
    qty: Qty,
    next_try: Millis,
    backoff: Millis,
    querying: bool,
}

/// Whether a market's book has been pulled from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum BookSync {
    Needed,
    Running { peer: PeerId },
    Done,
}

/// Per-market working state beside the replica.
struct MarketState {
    outbox: Vec<Item>,
    flush_at: Option<Millis>,
    /// Digest and count of our open orders as published so far.
    pub_digest: Digest,
    pub_open: u64,
    /// Our fills as maker published so far.
    pub_fills: u64,
    /// Our fill counter as maker (including fills not yet published).
    mseq: u64,
    /// Our fills as maker, in `mseq` order.
    my_fills: Vec<TradeId>,
    /// Our open orders not yet in the gossip stream.
    unpublished: BTreeSet<u64>,
    next_hb: Millis,
    book_sync: BookSync,
    book_changed: bool,
}

/// The engine of one node.
pub struct Engine {
    me: PeerId,
    cfg: EngineConfig,
    now: Millis,
    markets: Vec<Replica>,
    mstate: Vec<MarketState>,
    by_name: HashMap<String, usize>,
    by_topic: HashMap<String, usize>,
    peers: Vec<Peer>,
    peer_keys: HashMap<PeerId, u32>,
    connected: BTreeSet<PeerId>,
    own: BTreeMap<u64, Own>,
    client_ids: HashMap<String, u64>,
    next_seq: u64,
    reserved_seq: u64,
    own_trades: HashMap<TradeId, Trade>,
    filled_takes: HashMap<TakeId, TradeId>,
    holds: HashMap<TakeId, Hold>,
    dead_takes: HashSet<TakeId>,
    dead_order: VecDeque<TakeId>,
    pending: BTreeMap<RequestTag, Pending>,
    /// Quantity asked of each maker order and not answered (in flight or
    /// in doubt), so two orders of ours never ask for the same lots.
    asked: HashMap<(usize, OrderKey), Qty>,
    doubts: BTreeMap<(u64, u32), Doubt>,
    next_tag: u64,
    actions: VecDeque<Action>,
    tx_ops: Vec<Op>,
    tx_dirty: BTreeSet<u64>,
    tx_held: Vec<Held>,
    held: BTreeMap<u64, Vec<Held>>,
    next_ticket: u64,
    degraded: Option<String>,
    next_housekeeping: Millis,
    sync_rr: usize,
    counters: Counters,
    /// How long orders new to this replica took to arrive by gossip (ms
    /// from their creation on their owner's node), until the driver takes
    /// them for its histogram.
    replication_ms: Vec<u64>,
}

/// The owner key of this node in every replica.
const ME: u32 = 0;
/// Sequence numbers are reserved durably in blocks of this size, so no id
/// is handed out twice even when a write fails and the node restarts.
const SEQ_BLOCK: u64 = 1024;
/// How many take ids refused on a status request are remembered.
const DEAD_TAKES: usize = 100_000;
/// Replication delays kept for the driver at most (it takes them after
/// every input; the bound only matters for an engine nobody drains).
const REPLICATION_SAMPLES: usize = 4_096;

impl Engine {
    /// An engine for `me` trading `markets`, rebuilt from its durable state.
    pub fn new(
        me: PeerId,
        cfg: EngineConfig,
        markets: Vec<MarketSpec>,
        snapshot: Snapshot,
        now: Millis,
    ) -> Engine {
        let mut e = Engine {
            me,
            now,
            markets: Vec::new(),
            mstate: Vec::new(),
            by_name: HashMap::new(),
            by_topic: HashMap::new(),
            peers: vec![Peer::new(me, now, true)],
            peer_keys: HashMap::from([(me, ME)]),
            connected: BTreeSet::new(),
            own: BTreeMap::new(),
            client_ids: HashMap::new(),
            next_seq: 1,
            reserved_seq: 0,
            own_trades: HashMap::new(),
            filled_takes: HashMap::new(),
            holds: HashMap::new(),
            dead_takes: HashSet::new(),
            dead_order: VecDeque::new(),
            pending: BTreeMap::new(),
            asked: HashMap::new(),
            doubts: BTreeMap::new(),
            next_tag: 1,
            actions: VecDeque::new(),
            tx_ops: Vec::new(),
            tx_dirty: BTreeSet::new(),
            tx_held: Vec::new(),
            held: BTreeMap::new(),
            next_ticket: 1,
            degraded: None,
            next_housekeeping: now,
            sync_rr: 0,
            counters: Counters::default(),
            replication_ms: Vec::new(),
            cfg,
        };
        for spec in markets {
            let i = e.markets.len();
            let r = Replica::new(spec, e.cfg.recent_fills);
            e.by_name.insert(r.spec.name.clone(), i);
            e.by_topic.insert(r.topic.clone(), i);
            e.markets.push(r);
            e.mstate.push(MarketState {
                outbox: Vec::new(),
                flush_at: None,
                pub_digest: Digest::EMPTY,
                pub_open: 0,
                pub_fills: 0,
                mseq: 0,
                my_fills: Vec::new(),
                unpublished: BTreeSet::new(),
                next_hb: now,
                book_sync: BookSync::Needed,
                book_changed: false,
            });
        }
        e.restore(snapshot);
        e
    }

    /// Rebuild own orders, trades and takes in doubt from durable state.
    fn restore(&mut self, snap: Snapshot) {
        let max_seq = snap.orders.keys().next_back().copied().unwrap_or(0);
        self.next_seq = (max_seq + 1).max(snap.reserved_seq).max(1);
        let mut trades: Vec<Trade> = snap.trades.into_values().collect();
        trades.sort_by(|a, b| (&a.market, a.mseq, a.ts_ms).cmp(&(&b.market, b.mseq, b.ts_ms)));
        for t in trades {
            let Some(&mkt) = self.by_name.get(&t.market) else {
                continue;
            };
            if t.id.maker.owner == self.me {
                let ms = &mut self.mstate[mkt];
                ms.mseq = ms.mseq.max(t.mseq);
                ms.pub_fills = ms.mseq;
                ms.my_fills.push(t.id);
                self.filled_takes.insert(
                    TakeId {
                        taker: t.taker,
                        n: t.take_n,
                    },
                    t.id,
                );
            }
            let maker_key = self.peer_key(t.id.maker.owner);
            let peer = t.id.maker.owner;
            self.markets[mkt].apply_trade(maker_key, &peer, &t);
            self.own_trades.insert(t.id, t);
        }
        // Each own order's trades, oldest first, in one pass.
        let mut by_order: HashMap<u64, Vec<TradeId>> = HashMap::new();
        let mut mine: Vec<&Trade> = self.own_trades.values().collect();
        mine.sort_by_key(|t| (t.ts_ms, t.id));
        for t in mine {
            if t.id.maker.owner == self.me {
                by_order.entry(t.id.maker.seq).or_default().push(t.id);
            }
            if t.taker.owner == self.me {
                by_order.entry(t.taker.seq).or_default().push(t.id);
            }
        }
        let intents = snap.intents.into_values();
        for rec in snap.orders.into_values() {
            let Some(&mkt) = self.by_name.get(&rec.market) else {
                tracing::warn!(seq = rec.seq, market = %rec.market, "own order of a market no longer configured is left aside");
                continue;
            };
            if let Some(c) = &rec.client_id {
                self.client_ids.insert(c.clone(), rec.seq);
            }
            let mut own = Own {
                mkt,
                reserved: Qty::ZERO,
                holding: Qty::ZERO,
                taking: None,
                trades: Vec::new(),
                published: None,
                tried: HashMap::new(),
                rec,
            };
            own.trades = by_order.remove(&own.rec.seq).unwrap_or_default();
            let seq = own.rec.seq;
            match own.rec.status {
                OrderStatus::Open => {
                    // It was published before the restart (or the owner-sync
                    // repair will tell the others).
                    let st = own.state();
                    own.published = Some(st.clone());
                    let ms = &mut self.mstate[mkt];
                    ms.pub_digest.add(Digest::of_order(&self.me, &st));
                    ms.pub_open += 1;
                    self.markets[mkt].upsert(ME, &self.me, st, usize::MAX);
                }
                OrderStatus::Taking => {
                    own.taking = Some(Taking {
                        resume_only: true,
                        ..Taking::default()
                    });
                    self.mstate[mkt].unpublished.insert(seq);
                }
                _ => {}
            }
            self.own.insert(seq, own);
        }
        for i in intents {
            let Some(own) = self.own.get_mut(&i.taker_seq) else {
                continue;
            };
            own.reserved += i.qty;
            let mkt = own.mkt;
            let maker_key = self
                .peer_keys
                .get(&i.maker.owner)
                .and_then(|k| self.markets[mkt].key_of(*k, i.maker.seq));
            if let Some(k) = maker_key {
                *self.asked.entry((mkt, k)).or_default() += i.qty;
            }
            self.doubts.insert(
                (i.taker_seq, i.n),
                Doubt {
                    mkt,
                    maker: i.maker,
                    maker_key,
                    qty: i.qty,
                    next_try: self.now,
                    backoff: 500,
                    querying: false,
                },
            );
        }
        // Orders caught in their taking phase with nothing in doubt end now.
        let resumed: Vec<u64> = self
            .own
            .iter()
            .filter(|(_, o)| o.taking.is_some())
            .map(|(s, _)| *s)
            .collect();
        for seq in resumed {
            self.maybe_finish(seq);
        }
        self.commit_tx();
    }

    // ------------------------------------------------------------ driving

    /// Feed one input at time `now`.
    pub fn handle(&mut self, input: Input, now: Millis) {
        self.now = self.now.max(now);
        match input {
            Input::Command { id, cmd } => match cmd {
                Command::Place(p) => self.place(id, p),
                Command::Cancel { id: order } => self.cancel(id, &order),
            },
            Input::Net(net) => self.on_net(net),
            Input::Persisted { ticket } => {
                if let Some(held) = self.held.remove(&ticket) {
                    for h in held {
                        self.release(h);
                    }
                }
            }
            Input::PersistFailed { ticket, error } => self.on_persist_failed(ticket, error),
            Input::Tick => {}
        }
        if self.now >= self.next_housekeeping {
            self.housekeeping();
            self.next_housekeeping = self.now + HOUSEKEEPING_MS;
        }
        self.flush_due();
        self.commit_tx();
    }

    fn on_net(&mut self, input: NetInput) {
        match input {
            NetInput::Gossip {
                source,
                propagation_source,
                message_id,
                topic,
                data,
            } => {
                let verdict = self.on_gossip(source, &topic, &data);
                match verdict {
                    Verdict::Accept => {}
                    Verdict::Reject => self.counters.gossip_rejected += 1,
                    Verdict::Ignore => self.counters.gossip_ignored += 1,
                }
                self.actions.push_back(
                    NetAction::Validate {
                        message_id,
                        propagation_source,
                        verdict,
                    }
                    .into(),
                );
            }
            NetInput::Request {
                peer,
                proto,
                id,
                data,
            } => match proto {
                Proto::Take => self.on_take_request(peer, id, &data),
                Proto::Sync => self.on_sync_request(peer, id, &data),
            },
            NetInput::Response { tag, result } => match self.pending.remove(&tag) {
                Some(Pending::Take(sent)) => self.on_take_response(sent, result),
                Some(Pending::Sync { mkt, peer, what }) => {
                    self.on_sync_response(mkt, peer, what, result)
                }
                None => {}
            },
            NetInput::PeerConnected(peer) => self.on_connected(peer),
            NetInput::PeerDisconnected(peer) => {
                self.connected.remove(&peer);
                if let Some(&k) = self.peer_keys.get(&peer) {
                    self.peers[k as usize].connected = false;
                }
            }
        }
    }

    /// The next thing the driver must do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the engine wants a `Tick` at the latest.
    pub fn poll_timeout(&self) -> Millis {
        let flush = self.mstate.iter().filter_map(|m| m.flush_at).min();
        flush.map_or(self.next_housekeeping, |f| f.min(self.next_housekeeping))
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.me
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The replication delays seen since the last call, in ms: for every
    /// order that reached this replica by gossip, its arrival time less the
    /// creation time its owner stamped on it.
    pub fn take_replication_delays(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.replication_ms)
    }

    /// Carry on the request tags and write tickets of `old`, the engine
    /// this one replaces after a storage failure: answers and write
    /// results still on their way to `old` must never be taken for this
    /// engine's own. Tickets below the returned one are `old`'s.
    pub fn continue_numbering(&mut self, old: &Engine) -> u64 {
        self.next_tag = self.next_tag.max(old.next_tag);
        self.next_ticket = self.next_ticket.max(old.next_ticket);
        self.next_ticket
    }

    /// Why the node refuses durable changes right now, if it does.
    pub fn degraded(&self) -> Option<&str> {
        self.degraded.as_deref()
    }

    // ------------------------------------------------------------ durability

    /// Write the dirty own orders and the ops of this input as one batch;
    /// what was held for it waits for `Persisted`.
    fn commit_tx(&mut self) {
        let dirty = std::mem::take(&mut self.tx_dirty);
        for seq in dirty {
            if let Some(o) = self.own.get(&seq) {
                self.tx_ops.push(Op::PutOrder(o.rec.clone()));
            }
        }
        if self.next_seq + 1 > self.reserved_seq {
            self.reserved_seq = self.next_seq + SEQ_BLOCK;
            self.tx_ops.push(Op::ReserveSeq(self.reserved_seq));
        }
        let held = std::mem::take(&mut self.tx_held);
        if self.tx_ops.is_empty() {
            for h in held {
                self.release(h);
            }
            return;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let ops = std::mem::take(&mut self.tx_ops);
        self.actions.push_back(Action::Persist { ticket, ops });
        self.held.insert(ticket, held);
    }

    /// Carry out an effect whose writes are durable.
    fn release(&mut self, h: Held) {
        match h {
            Held::Act(a) => self.actions.push_back(a),
            Held::TakeAnswer { id, peer, ok, .. } => {
                self.take_done(peer);
                self.actions
                    .push_back(NetAction::Respond { id, data: ok }.into())
            }
            Held::Gossip(mkt, item) => self.stream(mkt, item),
        }
    }

    fn on_persist_failed(&mut self, ticket: u64, error: String) {
        tracing::error!(%error, "a write failed: the node refuses new orders and takes until its storage works again");
        self.degraded = Some(error.clone());
        // Everything held for this write and the ones queued behind it is
        // refused: none of it is durable, none of it is told to anyone.
        let later: Vec<u64> = self.held.range(ticket..).map(|(t, _)| *t).collect();
        for t in later {
            for h in self.held.remove(&t).unwrap_or_default() {
                match h {
                    Held::Act(Action::Reply { id, .. }) => self.actions.push_back(Action::Reply {
                        id,
                        result: Err(EngineError::Storage(error.clone())),
                    }),
                    Held::TakeAnswer { id, peer, fail, .. } => {
                        self.take_done(peer);
                        self.actions
                            .push_back(NetAction::Respond { id, data: fail }.into())
                    }
                    _ => {}
                }
            }
        }
    }

    /// A take of `peer` is answered: one fewer waiting to be durable.
    fn take_done(&mut self, peer: u32) {
        if let Some(p) = self.peers.get_mut(peer as usize) {
            p.open_takes = p.open_takes.saturating_sub(1);
        }
    }

    fn hold(&mut self, a: Action) {
        self.tx_held.push(Held::Act(a));
    }

    fn dirty(&mut self, seq: u64) {
        self.tx_dirty.insert(seq);
    }

    // ------------------------------------------------------------ peers

    fn peer_key(&mut self, peer: PeerId) -> u32 {
        if let Some(k) = self.peer_keys.get(&peer) {
            return *k;
        }
        let k = self.peers.len() as u32;
        let connected = self.connected.contains(&peer);
        self.peers.push(Peer::new(peer, self.now, connected));
        self.peer_keys.insert(peer, k);
        k
    }

    fn peer_id(&self, key: u32) -> PeerId {
        self.peers.get(key as usize).map_or(self.me, |p| p.id)
    }

    fn is_stale(&self, key: u32) -> bool {
        key != ME && self.peers.get(key as usize).is_none_or(|p| p.stale)
    }

    /// Any message from `peer` shows it is alive.
    fn heard(&mut self, key: u32) {
        let now = self.now;
        let Some(p) = self.peers.get_mut(key as usize) else {
            return;
        };
        p.last_heard = now;
        if p.stale {
            p.stale = false;
            let peer = p.id;
            tracing::info!(%peer, "owner is back: its orders can be taken again");
            self.actions
                .push_back(Action::Event(Event::Owner { peer, stale: false }));
            for mkt in 0..self.markets.len() {
                self.check_crossing(mkt);
            }
        }
    }

    fn on_connected(&mut self, peer: PeerId) {
        let was_alone = self.connected.is_empty();
        self.connected.insert(peer);
        let k = self.peer_key(peer);
        self.peers[k as usize].connected = true;
        if was_alone {
            // Joining, or back from a partition: pull the books again.
            for ms in &mut self.mstate {
                if ms.book_sync != BookSync::Needed {
                    ms.book_sync = BookSync::Needed;
                }
            }
        }
        for d in self.doubts.values_mut() {
            if d.maker.owner == peer {
                d.next_try = self.now;
            }
        }
        self.start_book_syncs();
    }

    fn next_tag(&mut self) -> RequestTag {
        let t = self.next_tag;
        self.next_tag += 1;
        RequestTag(t)
    }

    // ------------------------------------------------------------ timers

    fn housekeeping(&mut self) {
        let now = self.now;
        // Stale owners.
        let stale_after = self.cfg.stale_after_ms;
        for i in 1..self.peers.len() {
            let p = &mut self.peers[i];
            if !p.stale && now.saturating_sub(p.last_heard) > stale_after {
                p.stale = true;
                let peer = p.id;
                tracing::info!(%peer, "owner not heard from for {stale_after} ms: its orders are stale and will not be taken");
                self.actions
                    .push_back(Action::Event(Event::Owner { peer, stale: true }));
            }
        }
        // Heartbeats.
        for mkt in 0..self.mstate.len() {
            if now >= self.mstate[mkt].next_hb {
                self.mstate[mkt].next_hb = now + self.cfg.heartbeat_ms.max(1);
                self.push_heartbeat(mkt);
                self.check_crossing(mkt);
            }
            if std::mem::take(&mut self.mstate[mkt].book_changed) {
                let market = self.markets[mkt].spec.name.clone();
                self.actions
                    .push_back(Action::Event(Event::Book { market }));
            }
        }
        self.retry_doubts();
        self.expire_holds();
        self.start_book_syncs();
    }

    // ------------------------------------------------------------ queries

    fn market_idx(&self, name: &str) -> Result<usize, EngineError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| EngineError::UnknownMarket(name.to_string()))
    }

    /// The configured markets.
    pub fn markets(&self) -> impl Iterator<Item = &MarketSpec> {
        self.markets.iter().map(|r| &r.spec)
    }

    /// The replicated book of a market, `depth` levels per side.
    pub fn book(&self, market: &str, depth: usize) -> Result<BookInfo, EngineError> {
        let mkt = self.market_idx(market)?;
        Ok(views::book(&self.markets[mkt], depth))
    }

    /// The digest of a market's replicated book.
    pub fn digest(&self, market: &str) -> Result<Digest, EngineError> {
        Ok(self.markets[self.market_idx(market)?].digest)
    }

    /// One order: any of ours, or one of the replica.
    pub fn order(&self, id: &str) -> Result<OrderInfo, EngineError> {
        let oid: OrderId = id
            .parse()
            .map_err(|e: BadId| EngineError::Invalid(e.to_string()))?;
        if oid.owner == self.me {
            let own = self
                .own
                .get(&oid.seq)
                .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
            return Ok(self.own_info(own));
        }
        let key = self
            .peer_keys
            .get(&oid.owner)
            .ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        for r in &self.markets {
            if let Some(o) = r.get_by_id(*key, oid.seq) {
                return Ok(views::remote_order(r, oid, o, self.is_stale(*key)));
            }
        }
        Err(EngineError::NotFound(id.to_string()))
    }

    /// Own orders, newest first, optionally of one market and status.
    pub fn orders(
        &self,
        market: Option<&str>,
        status: Option<OrderStatus>,
        limit: usize,
    ) -> Result<Vec<OrderInfo>, EngineError> {
        let mkt = market.map(|m| self.market_idx(m)).transpose()?;
        let mut v: Vec<&Own> = self
            .own
            .values()
            .filter(|o| mkt.is_none_or(|m| o.mkt == m))
            .filter(|o| status.is_none_or(|s| o.rec.status == s))
            .collect();
        v.sort_by_key(|o| std::cmp::Reverse(o.rec.seq));
        Ok(v.into_iter()
            .take(limit)
            .map(|o| self.own_info(o))
            .collect())
    }

    /// Recent trades this node knows, newest first.
    pub fn trades(
        &self,
        market: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TradeInfo>, EngineError> {
        let mut out = Vec::new();
        match market {
            Some(m) => {
                let r = &self.markets[self.market_idx(m)?];
                out.extend(
                    r.recent_trades()
                        .take(limit)
                        .map(|t| views::trade(&r.spec, t)),
                );
            }
            None => {
                for r in &self.markets {
                    out.extend(
                        r.recent_trades()
                            .take(limit)
                            .map(|t| views::trade(&r.spec, t)),
                    );
                }
                out.sort_by(|a, b| b.ts_ms.cmp(&a.ts_ms).then_with(|| b.id.cmp(&a.id)));
                out.truncate(limit);
            }
        }
        Ok(out)
    }

    /// Per-market summary: digest, sizes, sync state.
    pub fn market_infos(&self) -> Vec<MarketInfo> {
        self.markets
            .iter()
            .zip(&self.mstate)
            .map(|(r, ms)| views::market(r, ms.book_sync == BookSync::Done, self.own_open(r)))
            .collect()
    }

    fn own_open(&self, r: &Replica) -> usize {
        r.owners.get(&ME).map_or(0, |o| o.live.len())
    }

    /// Every owner this node has heard of, with its staleness.
    pub fn owners(&self) -> Vec<OwnerInfo> {
        // A peer's place in `peers` is its owner key.
        self.peers
            .iter()
            .enumerate()
            .skip(1)
            .map(|(key, p)| OwnerInfo {
                peer_id: p.id.to_string(),
                stale: p.stale,
                last_heard_ms: p.last_heard,
                open_orders: self
                    .markets
                    .iter()
                    .map(|r| r.owners.get(&(key as u32)).map_or(0, |o| o.live.len()))
                    .sum(),
            })
            .collect()
    }

    fn own_info(&self, o: &Own) -> OrderInfo {
        let r = &self.markets[o.mkt];
        let trades: Vec<&Trade> = o
            .trades
            .iter()
            .filter_map(|id| self.own_trades.get(id))
            .collect();
        views::own_order(&r.spec, self.me, &o.rec, o.reserved, &trades)
    }
}

#[cfg(test)]
mod tests;
