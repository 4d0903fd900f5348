//! The engine task: drives the sans-IO engine with real time, the network,
//! the store and the API.
//!
//! One tokio task owns the `Engine`. It feeds it network events, API
//! commands, finished writes and timer ticks, and carries out what the
//! engine asks for: publishing and requests go to the network task through
//! its handle, writes go to the store writer, replies go back to the API,
//! events go to every subscriber (server-sent events).
//!
//! Writes are group-committed: a dedicated thread takes every batch waiting
//! and makes them durable in one transaction, so many fills cost one fsync.
//! If a write fails the engine refuses new orders and takes; the task probes
//! the disk (reopening the database, which redb needs after a failed
//! write) and, once it takes writes again, rebuilds the engine from what
//! is durable (the same path as a restart) and pulls the books again.
//!
//! Files: this one is the task (its loop and what it does with each input
//! and action); `handle.rs` is [`EngineHandle`], the API's side of it;
//! `writer.rs` the store writer thread and its group commit; `upkeep.rs`
//! what it prunes and reports; `latency.rs` the [`Latency`] histograms it
//! observes.

mod feed;
mod handle;
mod latency;
mod upkeep;
mod writer;

use std::collections::HashMap;
use std::time::Duration;

use libp2p::identity::Keypair;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::{instant_at, now_ms};
use crate::engine::{
    Action, CommandId, Engine, EngineConfig, EngineError, Event, Input, NetAction, NetInput,
    OrderInfo, Proto, RequestTag,
};
use crate::market::MarketSpec;
use crate::net::NetHandle;
use crate::shutdown::Shutdown;
use crate::store::{LoadWindow, Store, StoreError};

pub use feed::{checksum as book_checksum, BookDelta, BookSnapshot};
pub use handle::{EngineGone, EngineHandle, EngineMetrics, EngineStatus, Page, StoreStatus};
pub use latency::Latency;
pub use upkeep::{StoreMetrics, Upkeep};

use handle::ApiRequest;
use writer::{spawn_writer, Control, DoneRx, ToWriter, WriteTx};

/// How long a stopping node waits for its store to finish the writes sent.
const FLUSH_ON_STOP: Duration = Duration::from_secs(5);

/// How often a degraded node checks whether its disk takes writes again.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// Book deltas a feed subscriber may fall behind before it must resync.
const FEED_BUFFER: usize = 4_096;
/// Inputs handled before the actions are carried out (batching under load).
const BURST: usize = 256;

/// What the engine is built from (again, after a storage failure).
pub struct EngineParts {
    /// The node's key: the engine signs its gossip with it.
    pub key: Keypair,
    pub config: EngineConfig,
    pub markets: Vec<MarketSpec>,
    /// How the store is kept bounded, and the retention the API tells.
    pub upkeep: Upkeep,
}

impl EngineParts {
    /// How much of what is done the engine is rebuilt with.
    fn window(&self) -> LoadWindow {
        LoadWindow {
            done_orders: self.config.recent_orders,
            trades_per_market: self.config.recent_fills,
            markets: self.markets.iter().map(|m| m.name.clone()).collect(),
        }
    }
}

/// Why the engine task could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot load the node's orders and fills from its database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot start the store writer thread: {0}")]
    Writer(std::io::Error),
}

/// Load the durable state, build the engine and start its task.
pub fn spawn(
    parts: EngineParts,
    store: Store,
    net: NetHandle,
    net_events: mpsc::Receiver<NetInput>,
    latency: Latency,
    shutdown: Shutdown,
) -> Result<(EngineHandle, JoinHandle<()>), LoadError> {
    let started = std::time::Instant::now();
    let snapshot = store.load(&parts.upkeep.me, parts.window())?;
    let (open, doubts) = (
        snapshot
            .orders
            .values()
            .filter(|o| !o.status.is_done())
            .count(),
        snapshot.intents.len(),
    );
    let engine = Engine::new(
        parts.key.clone(),
        parts.config.clone(),
        parts.markets.clone(),
        snapshot,
        now_ms(),
    );
    let (tx, api) = mpsc::channel(1024);
    let (events, _) = broadcast::channel(4096);
    tracing::info!(
        open_orders = open,
        takes_in_doubt = doubts,
        ms = started.elapsed().as_millis() as u64,
        "restored the node's orders from its database"
    );
    let (writes, persisted) = spawn_writer(
        store.clone(),
        latency.store_commit.clone(),
        parts.upkeep.clone(),
    )
    .map_err(LoadError::Writer)?;
    let feed = feed::LevelFeed::new(FEED_BUFFER);
    let handle = EngineHandle::new(
        tx,
        events.clone(),
        feed.sender(),
        store.clone(),
        parts.upkeep.clone(),
        parts.markets.clone(),
    );
    let driver = Driver {
        engine,
        parts,
        net,
        net_events,
        api,
        writes,
        persisted,
        replies: HashMap::new(),
        next_cmd: 1,
        events: events.clone(),
        shutdown,
        probing: None,
        fresh_tickets: 0,
        latency,
        takes_sent: HashMap::new(),
        feed,
    };
    let task = tokio::spawn(driver.run());
    Ok((handle, task))
}

struct Driver {
    engine: Engine,
    parts: EngineParts,
    net: NetHandle,
    net_events: mpsc::Receiver<NetInput>,
    api: mpsc::Receiver<ApiRequest>,
    writes: WriteTx,
    persisted: DoneRx,
    replies: HashMap<u64, oneshot::Sender<Result<OrderInfo, EngineError>>>,
    next_cmd: u64,
    events: broadcast::Sender<Event>,
    shutdown: Shutdown,
    /// While degraded: when to probe the disk next.
    probing: Option<Instant>,
    /// Write tickets below this belong to an engine replaced after a
    /// storage failure; their results are dropped.
    fresh_tickets: u64,
    latency: Latency,
    /// When each take request in flight left, by tag.
    takes_sent: HashMap<RequestTag, Instant>,
    /// The level-2 feed of changed book levels.
    feed: feed::LevelFeed,
}

impl Driver {
    async fn run(mut self) {
        self.drain().await;
        loop {
            let deadline = self.deadline();
            tokio::select! {
                _ = self.shutdown.wait() => break,
                ev = self.net_events.recv() => match ev {
                    Some(ev) => {
                        self.on_net(ev);
                        for _ in 0..BURST {
                            match self.net_events.try_recv() {
                                Ok(ev) => self.on_net(ev),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                req = self.api.recv() => {
                    if let Some(req) = req {
                        self.on_api(req);
                        for _ in 0..BURST {
                            match self.api.try_recv() {
                                Ok(req) => self.on_api(req),
                                Err(_) => break,
                            }
                        }
                    }
                }
                done = self.persisted.recv() => {
                    if let Some(done) = done {
                        self.on_persisted(done);
                        while let Ok(done) = self.persisted.try_recv() {
                            self.on_persisted(done);
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.engine.handle(Input::Tick, now_ms());
                    self.maybe_recover().await;
                }
            }
            self.drain().await;
        }
        for (_, reply) in self.replies.drain() {
            let _ = reply.send(Err(EngineError::Storage(
                "the node is shutting down".into(),
            )));
        }
        // The tape waits for a group to ride along with; put it on disk
        // before the node exits (but a disk that hangs does not keep the
        // node from stopping).
        let (flushed, done) = oneshot::channel();
        if self
            .writes
            .send(ToWriter::Control(Control::Flush(flushed)))
            .is_ok()
            && tokio::time::timeout(FLUSH_ON_STOP, done).await.is_err()
        {
            tracing::warn!(
                "the store did not finish its writes within {FLUSH_ON_STOP:?}; stopping without the last trades on the tape"
            );
        }
    }

    /// When the engine wants its next tick.
    fn deadline(&self) -> Instant {
        let mut at = instant_at(self.engine.poll_timeout());
        if let Some(p) = self.probing {
            at = at.min(p);
        }
        at
    }

    fn on_net(&mut self, input: NetInput) {
        match &input {
            NetInput::Response { tag, result } => {
                if let Some(sent) = self.takes_sent.remove(tag) {
                    if result.is_ok() {
                        self.latency
                            .take_round_trip
                            .observe(sent.elapsed().as_secs_f64());
                    }
                }
            }
            NetInput::PeerConnected(peer) | NetInput::PeerDisconnected(peer) => {
                let connected = matches!(input, NetInput::PeerConnected(_));
                let _ = self.events.send(Event::Peer {
                    peer: *peer,
                    connected,
                });
            }
            _ => {}
        }
        self.engine.handle(input.into(), now_ms());
    }

    fn on_api(&mut self, req: ApiRequest) {
        match req {
            ApiRequest::Command { cmd, reply } => {
                let id = self.next_cmd;
                self.next_cmd += 1;
                self.replies.insert(id, reply);
                self.engine.handle(
                    Input::Command {
                        id: CommandId(id),
                        cmd,
                    },
                    now_ms(),
                );
            }
            ApiRequest::Snapshot { market, reply } => {
                let _ = reply.send(self.feed.snapshot(&mut self.engine, &market));
            }
            ApiRequest::Query(q) => q.answer(&self.engine),
        }
    }

    fn on_persisted(&mut self, (ticket, result): (u64, Result<(), String>)) {
        if ticket < self.fresh_tickets {
            // A write of the engine replaced after a storage failure.
            return;
        }
        let input = match result {
            Ok(()) => Input::Persisted { ticket },
            Err(error) => {
                if self.probing.is_none() {
                    self.probing = Some(Instant::now() + PROBE_EVERY);
                }
                Input::PersistFailed { ticket, error }
            }
        };
        self.engine.handle(input, now_ms());
    }

    /// Carry out everything the engine asked for.
    async fn drain(&mut self) {
        for ms in self.engine.take_replication_delays() {
            self.latency.replication.observe(ms as f64 / 1000.0);
        }
        let mut tape = Vec::new();
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Net(action) => {
                    if let NetAction::Request {
                        proto: Proto::Take,
                        tag,
                        ..
                    } = &action
                    {
                        self.takes_sent.insert(*tag, Instant::now());
                    }
                    self.net.carry_out(action).await;
                }
                Action::Persist { ticket, ops } => {
                    if self.writes.send(ToWriter::Write(ticket, ops)).is_err() {
                        let error = "the store writer stopped".to_string();
                        self.engine
                            .handle(Input::PersistFailed { ticket, error }, now_ms());
                    }
                }
                Action::Reply { id, result } => {
                    if let Some(reply) = self.replies.remove(&id.0) {
                        let _ = reply.send(result);
                    }
                }
                Action::Event(ev) => {
                    if let Event::Trade(t) = &ev {
                        tape.push(t.clone());
                    }
                    let _ = self.events.send(ev);
                }
            }
        }
        // Every trade the node learns of goes on the durable tape (it needs
        // no answer: it rides along with the next group commit).
        if !tape.is_empty() {
            let _ = self.writes.send(ToWriter::Tape(tape));
        }
        self.feed.publish(&mut self.engine);
    }

    /// While degraded: once the disk takes a write, rebuild the engine from
    /// what is durable and pull the books again.
    async fn maybe_recover(&mut self) {
        let Some(at) = self.probing else { return };
        if Instant::now() < at {
            return;
        }
        // redb takes no write after a failed one until it is reopened, so
        // every probe reopens the database first; it goes through the
        // writer, after every write already queued, so what it loads is
        // all the disk will hold.
        let (reply, answer) = oneshot::channel();
        if self
            .writes
            .send(ToWriter::Control(Control::Recover(
                self.parts.window(),
                reply,
            )))
            .is_err()
        {
            tracing::error!("the store writer stopped; the node cannot recover its storage");
            self.probing = Some(Instant::now() + PROBE_EVERY);
            return;
        }
        let probe = answer.await;
        let snapshot = match probe {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "storage still refuses writes; orders stay refused");
                self.probing = Some(Instant::now() + PROBE_EVERY);
                return;
            }
            Err(_) => {
                tracing::error!("the store writer stopped during a storage probe");
                self.probing = Some(Instant::now() + PROBE_EVERY);
                return;
            }
        };
        tracing::info!("storage takes writes again: rebuilding the engine from what is durable");
        self.probing = None;
        for (_, reply) in self.replies.drain() {
            let _ = reply.send(Err(EngineError::Storage(
                "the node restarted its engine after a storage failure".into(),
            )));
        }
        let old = std::mem::replace(
            &mut self.engine,
            Engine::new(
                self.parts.key.clone(),
                self.parts.config.clone(),
                self.parts.markets.clone(),
                snapshot,
                now_ms(),
            ),
        );
        self.fresh_tickets = self.engine.continue_numbering(&old);
        for p in self.net.peers().await.into_iter().filter(|p| p.connected) {
            self.engine
                .handle(NetInput::PeerConnected(p.peer_id).into(), now_ms());
        }
    }
}
