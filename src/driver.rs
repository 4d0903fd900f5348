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

use std::collections::HashMap;
use std::time::Duration;

use libp2p::PeerId;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::{instant_at, now_ms};
use crate::engine::Snapshot;
use crate::engine::{
    Action, Command, CommandId, Engine, EngineConfig, EngineError, Event, Input, NetAction,
    NetInput, Op, OrderInfo, Proto, RequestTag,
};
use crate::market::MarketSpec;
use crate::net::NetHandle;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};

/// How often a degraded node checks whether its disk takes writes again.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// Inputs handled before the actions are carried out (batching under load).
const BURST: usize = 256;

type Query = Box<dyn FnOnce(&Engine) + Send>;

enum ApiRequest {
    Command {
        cmd: Command,
        reply: oneshot::Sender<Result<OrderInfo, EngineError>>,
    },
    Query(Query),
}

/// Why the engine could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the engine is not running (the node is shutting down)")]
pub struct EngineGone;

/// The API's handle on the engine task.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<ApiRequest>,
    events: broadcast::Sender<Event>,
}

impl EngineHandle {
    /// Place or cancel an order; answers once the change is durable.
    pub async fn command(
        &self,
        cmd: Command,
    ) -> Result<Result<OrderInfo, EngineError>, EngineGone> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(ApiRequest::Command { cmd, reply })
            .await
            .map_err(|_| EngineGone)?;
        rx.await.map_err(|_| EngineGone)
    }

    /// Read something from the engine, in the engine task.
    pub async fn query<R, F>(&self, f: F) -> Result<R, EngineGone>
    where
        R: Send + 'static,
        F: FnOnce(&Engine) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let q: Query = Box::new(move |e| {
            let _ = tx.send(f(e));
        });
        self.tx
            .send(ApiRequest::Query(q))
            .await
            .map_err(|_| EngineGone)?;
        rx.await.map_err(|_| EngineGone)
    }

    /// Every event from now on (lagging receivers lose the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

/// What the engine is built from (again, after a storage failure).
pub struct EngineParts {
    pub me: PeerId,
    pub config: EngineConfig,
    pub markets: Vec<MarketSpec>,
}

/// Upper bounds of the latency histograms' buckets, in seconds: fine
/// where the goals are (milliseconds), coarse beyond.
const LATENCY_BUCKETS: [f64; 22] = [
    0.000_5, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.010, 0.012, 0.015, 0.020, 0.025,
    0.030, 0.040, 0.050, 0.075, 0.100, 0.250, 0.500, 1.0, 5.0,
];

/// How long the network takes, as this node sees it: the histograms behind
/// `peerbook_replication_delay_seconds` and
/// `peerbook_take_round_trip_seconds` in `/metrics`.
#[derive(Clone)]
pub struct Latency {
    /// From an order's creation on its owner's node to its arrival in this
    /// node's replica by gossip (wall clocks, millisecond stamps).
    pub replication: Histogram,
    /// From sending a take request to its answer (monotonic clock).
    pub take_round_trip: Histogram,
    /// How long one group commit of the store takes (writes and fsync).
    pub store_commit: Histogram,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            replication: Histogram::new(LATENCY_BUCKETS),
            take_round_trip: Histogram::new(LATENCY_BUCKETS),
            store_commit: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl Latency {
    /// Add both histograms to the node's metrics registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "peerbook_replication_delay",
            "From an order's creation on its owner's node to its arrival in this node's replica by gossip",
            Unit::Seconds,
            self.replication.clone(),
        );
        registry.register_with_unit(
            "peerbook_take_round_trip",
            "From sending a take request to a maker to its answer",
            Unit::Seconds,
            self.take_round_trip.clone(),
        );
        registry.register_with_unit(
            "peerbook_store_commit",
            "How long one group commit of the database takes, fsync included",
            Unit::Seconds,
            self.store_commit.clone(),
        );
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
    let snapshot = store.load()?;
    let engine = Engine::new(
        parts.me,
        parts.config.clone(),
        parts.markets.clone(),
        snapshot,
        now_ms(),
    );
    let (tx, api) = mpsc::channel(1024);
    let (events, _) = broadcast::channel(4096);
    let (writes, persisted) =
        spawn_writer(store.clone(), latency.store_commit.clone()).map_err(LoadError::Writer)?;
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
    };
    let task = tokio::spawn(driver.run());
    Ok((EngineHandle { tx, events }, task))
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
            ApiRequest::Query(q) => q(&self.engine),
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
                    let _ = self.events.send(ev);
                }
            }
        }
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
        if self.writes.send(ToWriter::Recover(reply)).is_err() {
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
                self.parts.me,
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

/// What the store writer is asked, in order.
enum ToWriter {
    /// A batch of writes, with its ticket.
    Write(u64, Vec<Op>),
    /// After every write sent before: reopen the database, make a tiny
    /// durable write and load what is durable.
    Recover(oneshot::Sender<Result<Snapshot, StoreError>>),
}

type WriteTx = std::sync::mpsc::Sender<ToWriter>;
/// Tickets whose writes finished, and how.
type DoneRx = mpsc::UnboundedReceiver<(u64, Result<(), String>)>;

/// The store writer: a thread that makes batches durable, several at once.
///
/// After a failed write it writes nothing more until a `Recover` succeeds:
/// the engine answered everything queued behind the failure as refused, so
/// none of it may reach the disk later and come back after a restart.
fn spawn_writer(store: Store, commit_time: Histogram) -> std::io::Result<(WriteTx, DoneRx)> {
    let (tx, rx) = std::sync::mpsc::channel::<ToWriter>();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("peerbook-store".into())
        .spawn(move || {
            let mut failed: Option<String> = None;
            let mut next = rx.recv().ok();
            while let Some(msg) = next.take() {
                let (ticket, ops) = match msg {
                    ToWriter::Recover(reply) => {
                        let result = store
                            .reopen()
                            .and_then(|()| store.probe())
                            .and_then(|()| store.load());
                        if result.is_ok() {
                            failed = None;
                        }
                        let _ = reply.send(result);
                        next = rx.recv().ok();
                        continue;
                    }
                    ToWriter::Write(ticket, ops) => (ticket, ops),
                };
                let mut group = vec![(ticket, ops)];
                while group.len() < 1024 {
                    match rx.try_recv() {
                        Ok(ToWriter::Write(t, ops)) => group.push((t, ops)),
                        Ok(recover) => {
                            next = Some(recover);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let result = match &failed {
                    Some(first) => Err(format!("not written: an earlier write failed ({first})")),
                    None => {
                        let batches: Vec<&[Op]> =
                            group.iter().map(|(_, ops)| ops.as_slice()).collect();
                        let started = std::time::Instant::now();
                        let result = store.apply(&batches).map_err(|e| e.to_string());
                        commit_time.observe(started.elapsed().as_secs_f64());
                        if let Err(e) = &result {
                            tracing::error!(error = %e, "a write to the database failed");
                            failed = Some(e.clone());
                        }
                        result
                    }
                };
                for (ticket, _) in &group {
                    if done_tx.send((*ticket, result.clone())).is_err() {
                        return;
                    }
                }
                if next.is_none() {
                    next = rx.recv().ok();
                }
            }
        })?;
    Ok((tx, done_rx))
}
