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
//!
//! # The parts
//!
//! `Engine` composes parts that each own their state and change it through
//! their own methods:
//!
//! - `io.rs`: the boundary (`Input`, `Action`, `Event`, errors) and the
//!   vocabulary shared with the network;
//! - `market.rs`: per market, the replica (`replica.rs`), our gossip
//!   stream, our fills as maker and the book's sync state;
//! - `peers.rs`: the bounded peer table (owner keys, liveness, budgets);
//! - `own.rs`: our orders, their reserved and held quantities, their
//!   taking phase, sequence numbers, client ids and trades;
//! - `takes.rs`: what we asked of makers and the takes in doubt;
//! - `requests.rs`: requests in flight, by tag;
//! - `served.rs`: the maker's ledger (takes filled, holds, dead takes);
//! - `tx.rs`: the writes of an input and what waits for them.
//!
//! The protocol's flows, which move between parts, are `impl Engine` blocks
//! of their own: `taker.rs` (placing, taking, ending the phase), `fok.rs`
//! (fill-or-kill's two rounds), `maker.rs` (serving takes), `gossip.rs`
//! (publishing and accepting gossip), `sync.rs` (pulling and serving pages)
//! and `restore.rs` (rebuilding from durable state). `views.rs` holds the
//! queries, `info.rs` what they return.

mod config;
mod digest;
mod durable;
#[cfg(any(test, feature = "testkit"))]
mod explain;
mod feed;
mod fok;
#[cfg(feature = "testkit")]
pub mod fuzz;
mod gossip;
mod ids;
mod info;
mod io;
mod maker;
mod market;
mod own;
mod peers;
mod proven;
mod reach;
mod replica;
mod requests;
mod restore;
mod served;
#[cfg(any(test, feature = "testkit"))]
pub mod sim;
mod sync;
mod taker;
mod takes;
mod taking;
mod tx;
mod views;

use std::collections::VecDeque;

use libp2p::identity::Keypair;
use libp2p::PeerId;

pub use config::EngineConfig;
pub use digest::Digest;
pub use durable::{Op, OrderKind, OrderStatus, OwnOrder, Snapshot, TakeIntent, Tif, Trade};
pub use feed::LevelChanges;
pub use ids::{BadId, OrderId, TakeId, TradeId};
pub use info::{
    BookInfo, Counters, MarketInfo, OrderInfo, OwnerInfo, TradeInfo, UnreachableLevels,
};
pub use io::{
    Action, Command, CommandId, EngineError, Event, InboundId, Input, NetAction, NetInput,
    PlaceOrder, Proto, RequestFailure, RequestTag, Verdict,
};
/// How long a take in doubt waits between status requests (the bound on
/// `taking`, see `takes.rs`).
pub use takes::{FIRST_DOUBT_BACKOFF, MAX_DOUBT_BACKOFF};
pub use views::stored_order_info;

use crate::book::OrderKey;
use crate::market::{MarketSpec, Qty, Side};
use crate::wire::{Item, OrderState, SyncWhat};
use market::{BookSync, Markets};
use own::OwnOrders;
use peers::{PeerTable, ME};
use requests::{Outbound, Pending};
use served::Served;
use takes::Takes;
use tx::{Commit, Held, Tx};

/// Milliseconds since the Unix epoch: the engine's only notion of time.
pub type Millis = u64;

/// How often the engine wants a `Tick` at the latest.
const HOUSEKEEPING_MS: Millis = 100;
/// Replication delays kept for the driver at most (it takes them after
/// every input; the bound only matters for an engine nobody drains).
const REPLICATION_SAMPLES: usize = 4_096;

/// The engine of one node.
pub struct Engine {
    me: PeerId,
    /// This node's key: it signs every gossip batch (the records others hand
    /// on as ours).
    key: Keypair,
    cfg: EngineConfig,
    now: Millis,
    markets: Markets,
    peers: PeerTable,
    own: OwnOrders,
    takes: Takes,
    /// Makers whose takes could not be dialled lately (`reach.rs`).
    unreachable: reach::Unreachable,
    outbound: Outbound,
    served: Served,
    tx: Tx,
    actions: VecDeque<Action>,
    next_housekeeping: Millis,
    counters: Counters,
    /// How long orders new to this replica took to arrive by gossip (ms
    /// from their creation on their owner's node), until the driver takes
    /// them for its histogram.
    replication_ms: Vec<u64>,
}

impl Engine {
    /// The engine of the node whose key is `key`, trading `markets`,
    /// rebuilt from its durable state.
    pub fn new(
        key: Keypair,
        cfg: EngineConfig,
        markets: Vec<MarketSpec>,
        snapshot: Snapshot,
        now: Millis,
    ) -> Engine {
        let me = key.public().to_peer_id();
        let mut e = Engine {
            me,
            key,
            now,
            markets: Markets::new(markets, cfg.recent_fills, now),
            peers: PeerTable::new(me, now, cfg.max_owners.saturating_mul(2)),
            own: OwnOrders::new(),
            takes: Takes::default(),
            unreachable: reach::Unreachable::default(),
            outbound: Outbound::new(),
            served: Served::default(),
            tx: Tx::new(),
            actions: VecDeque::new(),
            next_housekeeping: now,
            counters: Counters::default(),
            replication_ms: Vec::new(),
            cfg,
        };
        e.restore(snapshot);
        e
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
                for h in self.tx.persisted(ticket) {
                    self.release(h);
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
            NetInput::Response { tag, result } => match self.outbound.answered(tag) {
                Some(Pending::Take(sent)) => self.on_take_response(sent, result),
                Some(Pending::Sync { mkt, peer, what }) => {
                    self.on_sync_response(mkt, peer, what, result)
                }
                None => {}
            },
            NetInput::PeerConnected(peer) => self.on_connected(peer),
            NetInput::PeerDisconnected(peer) => self.peers.disconnected(&peer),
        }
    }

    /// The next thing the driver must do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the engine wants a `Tick` at the latest.
    pub fn poll_timeout(&self) -> Millis {
        let flush = self
            .markets
            .iter()
            .filter_map(|m| m.stream.flush_at())
            .min();
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
        self.outbound.continue_from(&old.outbound);
        self.tx.continue_from(&old.tx)
    }

    /// Why the node refuses durable changes right now, if it does.
    pub fn degraded(&self) -> Option<&str> {
        self.tx.degraded()
    }

    // ------------------------------------------------------------ durability

    /// Write the dirty own orders and the ops of this input as one batch;
    /// what was held for it waits for `Persisted`.
    fn commit_tx(&mut self) {
        let mut done = false;
        for seq in self.tx.take_dirty() {
            if let Some(o) = self.own.get(seq) {
                self.tx.op(Op::PutOrder(o.rec.clone()));
                if o.rec.status.is_done() {
                    self.own.note_done(seq);
                    done = true;
                }
            }
        }
        if done {
            // Memory holds what is live and a window of what is done; the
            // rest is in the store, written with this very batch.
            for take in self.own.evict_done(self.cfg.recent_orders) {
                self.served.forget(take);
            }
        }
        if let Some(reserved) = self.own.reservation_due() {
            self.tx.op(Op::ReserveSeq(reserved));
        }
        match self.tx.commit() {
            Commit::Nothing(held) => {
                for h in held {
                    self.release(h);
                }
            }
            Commit::Write { ticket, ops } => {
                self.actions.push_back(Action::Persist { ticket, ops });
            }
        }
    }

    /// Carry out an effect whose writes are durable.
    fn release(&mut self, h: Held) {
        match h {
            Held::Act(a) => self.actions.push_back(a),
            Held::TakeAnswer { id, peer, ok, .. } => {
                self.peers.take_closed(peer);
                self.respond(id, &ok);
            }
            Held::Gossip(mkt, item) => self.stream(mkt, item),
        }
    }

    fn on_persist_failed(&mut self, ticket: u64, error: String) {
        tracing::error!(%error, "a write failed: the node refuses new orders and takes until its storage works again");
        // Everything held for this write and the ones queued behind it is
        // refused: none of it is durable, none of it is told to anyone.
        for h in self.tx.failed(ticket, error.clone()) {
            match h {
                Held::Act(Action::Reply { id, .. }) => self.actions.push_back(Action::Reply {
                    id,
                    result: Err(EngineError::Storage(error.clone())),
                }),
                Held::TakeAnswer { id, peer, fail, .. } => {
                    self.peers.take_closed(peer);
                    self.respond(id, &fail);
                }
                _ => {}
            }
        }
    }

    // ------------------------------------------------------------ the wire

    /// A wire message's bytes. Encoding fails only when an invariant of
    /// ours breaks (never because of a peer); then nothing is sent, the
    /// failure is logged and counted, and the peer sees a timeout.
    fn encode<T: serde::Serialize>(&mut self, what: &'static str, msg: &T) -> Option<Vec<u8>> {
        match crate::wire::encode(msg) {
            Ok(b) => Some(b),
            Err(e) => {
                self.counters.encode_failures += 1;
                tracing::error!(error = %e, what, "a message could not be encoded; it is not sent");
                None
            }
        }
    }

    /// Answer a peer's request.
    fn respond<T: serde::Serialize>(&mut self, id: InboundId, msg: &T) {
        if let Some(data) = self.encode("answer", msg) {
            self.actions
                .push_back(NetAction::Respond { id, data }.into());
        }
    }

    /// The action that sends a request, if it can be encoded.
    fn request<T: serde::Serialize>(
        &mut self,
        peer: PeerId,
        proto: Proto,
        tag: RequestTag,
        msg: &T,
    ) -> Option<Action> {
        let data = self.encode("request", msg)?;
        Some(
            NetAction::Request {
                peer,
                proto,
                tag,
                data,
            }
            .into(),
        )
    }

    /// Hold an action until this input's writes are durable.
    fn hold(&mut self, a: Action) {
        self.tx.hold(Held::Act(a));
    }

    // ------------------------------------------------------------ peers

    /// Any message from the owner behind `key` shows it is alive.
    fn heard(&mut self, key: u32) {
        if let Some(peer) = self.peers.heard(key, self.now) {
            tracing::info!(%peer, "owner is back: its orders can be taken again");
            self.actions
                .push_back(Action::Event(Event::Owner { peer, stale: false }));
            for mkt in 0..self.markets.len() {
                self.check_crossing(mkt);
            }
        }
    }

    fn on_connected(&mut self, peer: PeerId) {
        if self.unreachable.reached(&peer) {
            tracing::info!(%peer, "maker connected: its orders are takeable again");
        }
        if self.peers.connected(peer, self.now) {
            // Joining, or back from a partition: pull the books again.
            for m in self.markets.iter_mut() {
                m.book_sync = BookSync::Needed;
            }
        }
        self.takes.maker_back(&peer, self.now);
        self.start_book_syncs();
    }

    // ------------------------------------------------------------ timers

    fn housekeeping(&mut self) {
        let now = self.now;
        let stale_after = self.cfg.stale_after_ms;
        for peer in self.peers.sweep_stale(now, stale_after) {
            tracing::info!(%peer, "owner not heard from for {stale_after} ms: its orders are stale and will not be taken");
            self.actions
                .push_back(Action::Event(Event::Owner { peer, stale: true }));
        }
        // Heartbeats.
        for mkt in 0..self.markets.len() {
            if now >= self.markets[mkt].next_hb {
                self.markets[mkt].next_hb = now + self.cfg.heartbeat_ms.max(1);
                self.push_heartbeat(mkt);
                self.check_crossing(mkt);
            }
            if std::mem::take(&mut self.markets[mkt].book_changed) {
                let market = self.markets[mkt].name().to_string();
                self.actions
                    .push_back(Action::Event(Event::Book { market }));
            }
        }
        self.expire_due();
        let retry_after = self.cfg.heartbeat_ms.saturating_mul(2);
        for m in self.markets.iter_mut() {
            if m.replica.lapse(now) {
                m.book_changed = true;
            }
            m.refused.retain(|key, (_, at)| {
                now.saturating_sub(*at) < retry_after && m.replica.get(*key).is_some()
            });
        }
        self.retry_doubts();
        self.expire_holds();
        self.start_book_syncs();
    }

    fn market_idx(&self, name: &str) -> Result<usize, EngineError> {
        self.markets
            .by_name(name)
            .ok_or_else(|| EngineError::UnknownMarket(name.to_string()))
    }
}

#[cfg(test)]
mod tests;
