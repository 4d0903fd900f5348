//! The store writer: a thread that makes the engine's writes durable, many
//! batches per transaction (group commit: many fills, one fsync).
//!
//! The engine task sends it [`ToWriter`] messages in order and hears back,
//! per ticket, whether the write is durable. redb's writes block, so they
//! run on a thread of their own rather than on the runtime. After a failed
//! write the writer refuses everything until a `Recover` (the disk probe of
//! degraded mode) succeeds.
//!
//! Trades for the tape ride along with the next group (they need no
//! answer); with no group to ride along with, they wait up to
//! [`TAPE_DELAY`] (or until [`TAPE_GROUP`] are waiting) and go in a commit
//! of their own. Every node puts every trade of the network on its tape, so
//! a commit per trade cost each node an fsync per trade anywhere (at 20
//! nodes on two cores, 3 % of the machine). A node killed loses at most the last
//! `TAPE_DELAY` of other nodes' trades from its tape (its own trades are
//! written with its orders); a node stopped flushes first. When nothing
//! waits the writer prunes what is past the retention, one small step at a
//! time (`upkeep.rs`).

use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot};

use super::upkeep::Upkeep;
use crate::clock::now_ms;
use crate::engine::{Op, Snapshot, TradeInfo};
use crate::store::{LoadWindow, Store, StoreError};

/// What the store writer is asked, in order.
pub(super) enum ToWriter {
    /// A batch of writes, with its ticket.
    Write(u64, Vec<Op>),
    /// Trades for the tape (no answer).
    Tape(Vec<TradeInfo>),
    /// Done after every write sent before it.
    Control(Control),
}

/// What the store writer does after every write sent before it.
pub(super) enum Control {
    /// Reopen the database, make a tiny durable write and load what is
    /// durable.
    Recover(LoadWindow, oneshot::Sender<Result<Snapshot, StoreError>>),
    /// Put the waiting tape on disk, then answer (the node is stopping).
    Flush(oneshot::Sender<()>),
}

/// The longest tape trades wait for a group to ride along with.
pub(super) const TAPE_DELAY: Duration = Duration::from_millis(250);
/// Tape trades that go on disk at once, without waiting.
const TAPE_GROUP: usize = 1_000;

pub(super) type WriteTx = std::sync::mpsc::Sender<ToWriter>;
/// Tickets whose writes finished, and how.
pub(super) type DoneRx = mpsc::UnboundedReceiver<(u64, Result<(), String>)>;

/// The store writer: a thread that makes batches durable, several at once.
///
/// After a failed write it writes nothing more until a `Recover` succeeds:
/// the engine answered everything queued behind the failure as refused, so
/// none of it may reach the disk later and come back after a restart.
pub(super) fn spawn_writer(
    store: Store,
    commit_time: Histogram,
    upkeep: Upkeep,
) -> std::io::Result<(WriteTx, DoneRx)> {
    let (tx, rx) = std::sync::mpsc::channel::<ToWriter>();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("peerbook-store".into())
        .spawn(move || {
            let mut w = Writer {
                store,
                commit_time,
                upkeep,
                failed: None,
                tape: Vec::new(),
                tape_since: None,
                next_pass: Instant::now(),
                pass: None,
            };
            w.sizes();
            loop {
                let msg = match rx.try_recv() {
                    Ok(m) => m,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        w.flush_tape();
                        return;
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => {
                        // Nothing waits: the tape if it waited long enough,
                        // then a pruning step.
                        if w.tape_wait() == Some(Duration::ZERO) {
                            w.flush_tape();
                        }
                        if w.prune_step() {
                            continue;
                        }
                        let mut wait = w.next_pass.saturating_duration_since(Instant::now());
                        if let Some(t) = w.tape_wait() {
                            wait = wait.min(t);
                        }
                        match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
                            Ok(m) => m,
                            Err(RecvTimeoutError::Timeout) => continue,
                            Err(RecvTimeoutError::Disconnected) => {
                                w.flush_tape();
                                return;
                            }
                        }
                    }
                };
                let (ticket, ops) = match msg {
                    ToWriter::Write(ticket, ops) => (ticket, ops),
                    ToWriter::Tape(trades) => {
                        w.add_tape(trades);
                        continue;
                    }
                    ToWriter::Control(c) => {
                        w.control(c);
                        continue;
                    }
                };
                let mut group = vec![(ticket, ops)];
                let mut after = None;
                while group.len() < 1024 {
                    match rx.try_recv() {
                        Ok(ToWriter::Write(t, ops)) => group.push((t, ops)),
                        Ok(ToWriter::Tape(trades)) => w.tape.extend(trades),
                        Ok(ToWriter::Control(c)) => {
                            after = Some(c);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let result = w.write(&group);
                for (ticket, _) in &group {
                    if done_tx.send((*ticket, result.clone())).is_err() {
                        return;
                    }
                }
                if let Some(c) = after {
                    w.control(c);
                }
            }
        })?;
    Ok((tx, done_rx))
}

struct Writer {
    store: Store,
    commit_time: Histogram,
    upkeep: Upkeep,
    /// The first write failure, until a recovery.
    failed: Option<String>,
    /// Trades waiting to go on the tape with the next write.
    tape: Vec<TradeInfo>,
    /// Since when the oldest of them waits (or the last failed attempt).
    tape_since: Option<Instant>,
    next_pass: Instant,
    /// The pass in progress: when it started.
    pass: Option<Instant>,
}

/// Most trades held for the tape while the disk refuses writes.
const TAPE_BACKLOG: usize = 100_000;

impl Writer {
    fn control(&mut self, c: Control) {
        match c {
            Control::Recover(window, reply) => {
                let result = self.recover(window);
                let _ = reply.send(result);
            }
            Control::Flush(reply) => {
                self.flush_tape();
                let _ = reply.send(());
            }
        }
    }

    fn add_tape(&mut self, trades: Vec<TradeInfo>) {
        if self.tape.is_empty() {
            self.tape_since = Some(Instant::now());
        }
        self.tape.extend(trades);
        if self.tape.len() >= TAPE_GROUP {
            self.flush_tape();
        }
    }

    /// How much longer the waiting tape may wait for a group to ride
    /// along with; `None` if nothing waits (or the writer is failed).
    fn tape_wait(&self) -> Option<Duration> {
        if self.tape.is_empty() || self.failed.is_some() {
            return None;
        }
        let since = self.tape_since?;
        Some(TAPE_DELAY.saturating_sub(since.elapsed()))
    }

    fn write(&mut self, group: &[(u64, Vec<Op>)]) -> Result<(), String> {
        if let Some(first) = &self.failed {
            return Err(format!("not written: an earlier write failed ({first})"));
        }
        let batches: Vec<&[Op]> = group.iter().map(|(_, ops)| ops.as_slice()).collect();
        let started = Instant::now();
        let tape = std::mem::take(&mut self.tape);
        let result = self
            .store
            .apply_with_tape(&batches, &tape)
            .map_err(|e| e.to_string());
        self.commit_time.observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            tracing::error!(error = %e, "a write to the database failed");
            self.failed = Some(e.clone());
            self.keep_tape(tape);
        }
        result
    }

    /// Tape trades with no write to ride along with go on their own.
    fn flush_tape(&mut self) {
        if self.tape.is_empty() || self.failed.is_some() {
            return;
        }
        let tape = std::mem::take(&mut self.tape);
        if let Err(e) = self.store.apply_with_tape(&[], &tape) {
            tracing::warn!(error = %e, "cannot write trades to the tape; will try again");
            self.keep_tape(tape);
        }
    }

    /// Trades a failed write took back: they wait again, a whole
    /// `TAPE_DELAY` before the next attempt.
    fn keep_tape(&mut self, tape: Vec<TradeInfo>) {
        self.tape = tape;
        self.tape_since = Some(Instant::now());
        let over = self.tape.len().saturating_sub(TAPE_BACKLOG);
        self.tape.drain(..over);
    }

    fn recover(&mut self, window: LoadWindow) -> Result<Snapshot, StoreError> {
        let me = self.upkeep.me;
        let result = self
            .store
            .reopen()
            .and_then(|()| self.store.probe())
            .and_then(|()| self.store.load(&me, window));
        if result.is_ok() {
            self.failed = None;
        }
        result
    }

    /// One pruning step if a pass is due or under way; whether it did one.
    fn prune_step(&mut self) -> bool {
        if self.failed.is_some() {
            return false;
        }
        if self.pass.is_none() {
            if Instant::now() < self.next_pass {
                return false;
            }
            self.pass = Some(Instant::now());
        }
        let u = &self.upkeep;
        match self.store.prune(&u.me, u.retention, now_ms(), u.chunk) {
            Ok(p) => {
                let m = &u.metrics;
                for (kind, n) in [("orders", p.orders), ("trades", p.trades), ("tape", p.tape)] {
                    if n > 0 {
                        m.pruned.get_or_create(&vec![("kind", kind)]).inc_by(n);
                    }
                }
                if p.more {
                    return true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "pruning the database failed; will try again"),
        }
        if let Some(started) = self.pass.take() {
            let u = &self.upkeep;
            u.metrics.prune_runs.inc();
            u.metrics
                .prune_seconds
                .observe(started.elapsed().as_secs_f64());
            self.next_pass = Instant::now() + u.every;
        }
        self.sizes();
        true
    }

    fn sizes(&self) {
        match self.store.stats() {
            Ok(s) => self.upkeep.metrics.sizes(&s),
            Err(e) => tracing::debug!(error = %e, "cannot read the database's sizes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use libp2p::PeerId;

    use super::*;
    use crate::store::Retention;

    fn writer(dir: &std::path::Path) -> (Store, WriteTx, DoneRx) {
        let store = Store::open(dir).unwrap();
        let upkeep = Upkeep {
            me: PeerId::random(),
            retention: Retention {
                max_age_ms: u64::MAX,
                max_bytes: u64::MAX,
            },
            every: Duration::from_secs(3600),
            chunk: 100,
            metrics: Default::default(),
        };
        let (tx, done) = spawn_writer(store.clone(), Histogram::new([1.0]), upkeep).unwrap();
        (store, tx, done)
    }

    fn trade(i: u64) -> TradeInfo {
        crate::store::tape_trade(i, 1_000 + i)
    }

    fn on_tape(store: &Store) -> usize {
        store.tape("BTC-USD", None, None, 100).unwrap().len()
    }

    #[tokio::test]
    async fn a_flush_puts_the_waiting_tape_on_disk_before_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (store, tx, _done) = writer(dir.path());
        tx.send(ToWriter::Tape(vec![trade(1), trade(2)])).unwrap();
        let (flushed, answered) = oneshot::channel();
        tx.send(ToWriter::Control(Control::Flush(flushed))).unwrap();
        answered.await.unwrap();
        assert_eq!(on_tape(&store), 2);
    }

    #[tokio::test]
    async fn tape_trades_with_no_write_to_ride_along_with_go_on_disk_by_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let (store, tx, _done) = writer(dir.path());
        tx.send(ToWriter::Tape(vec![trade(1)])).unwrap();
        tx.send(ToWriter::Tape(vec![trade(2), trade(3)])).unwrap();
        let started = Instant::now();
        while on_tape(&store) < 3 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the tape was not written"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // All three in one commit, none lost.
        assert_eq!(on_tape(&store), 3);
    }

    #[tokio::test]
    async fn tape_trades_ride_along_with_a_write_and_are_kept_when_the_writer_stops() {
        let dir = tempfile::tempdir().unwrap();
        let (store, tx, mut done) = writer(dir.path());
        tx.send(ToWriter::Tape(vec![trade(1)])).unwrap();
        tx.send(ToWriter::Write(7, Vec::new())).unwrap();
        let (ticket, result) = done.recv().await.unwrap();
        assert_eq!((ticket, result), (7, Ok(())));
        assert_eq!(on_tape(&store), 1, "rode along with the write");
        // Waiting trades are written when the engine's sender goes away.
        tx.send(ToWriter::Tape(vec![trade(2)])).unwrap();
        drop(tx);
        assert!(done.recv().await.is_none(), "the writer stopped");
        assert_eq!(on_tape(&store), 2);
    }
}
