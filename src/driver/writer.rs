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
//! answer), and when nothing waits the writer prunes what is past the
//! retention, one small step at a time (`upkeep.rs`).

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
    /// After every write sent before: reopen the database, make a tiny
    /// durable write and load what is durable.
    Recover(LoadWindow, oneshot::Sender<Result<Snapshot, StoreError>>),
}

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
                next_pass: Instant::now(),
                pass: None,
            };
            w.sizes();
            loop {
                let msg = match rx.try_recv() {
                    Ok(m) => m,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                    Err(std::sync::mpsc::TryRecvError::Empty) => {
                        // Nothing waits: the tape, then a pruning step.
                        w.flush_tape();
                        if w.prune_step() {
                            continue;
                        }
                        let wait = w.next_pass.saturating_duration_since(Instant::now());
                        match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
                            Ok(m) => m,
                            Err(RecvTimeoutError::Timeout) => continue,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                };
                let (ticket, ops) = match msg {
                    ToWriter::Recover(window, reply) => {
                        let result = w.recover(window);
                        let _ = reply.send(result);
                        continue;
                    }
                    ToWriter::Tape(trades) => {
                        w.tape.extend(trades);
                        continue;
                    }
                    ToWriter::Write(ticket, ops) => (ticket, ops),
                };
                let mut group = vec![(ticket, ops)];
                let mut after = None;
                while group.len() < 1024 {
                    match rx.try_recv() {
                        Ok(ToWriter::Write(t, ops)) => group.push((t, ops)),
                        Ok(ToWriter::Tape(trades)) => w.tape.extend(trades),
                        Ok(recover) => {
                            after = Some(recover);
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
                if let Some(ToWriter::Recover(window, reply)) = after {
                    let result = w.recover(window);
                    let _ = reply.send(result);
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
    next_pass: Instant,
    /// The pass in progress: when it started.
    pass: Option<Instant>,
}

/// Most trades held for the tape while the disk refuses writes.
const TAPE_BACKLOG: usize = 100_000;

impl Writer {
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

    fn keep_tape(&mut self, tape: Vec<TradeInfo>) {
        self.tape = tape;
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
