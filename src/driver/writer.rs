//! The store writer: a thread that makes the engine's writes durable, many
//! batches per transaction (group commit: many fills, one fsync).
//!
//! The engine task sends it [`ToWriter`] messages in order and hears back,
//! per ticket, whether the write is durable. redb's writes block, so they
//! run on a thread of their own rather than on the runtime. After a failed
//! write the writer refuses everything until a `Recover` (the disk probe of
//! degraded mode) succeeds.

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot};

use crate::engine::{Op, Snapshot};
use crate::store::{Store, StoreError};

/// What the store writer is asked, in order.
pub(super) enum ToWriter {
    /// A batch of writes, with its ticket.
    Write(u64, Vec<Op>),
    /// After every write sent before: reopen the database, make a tiny
    /// durable write and load what is durable.
    Recover(oneshot::Sender<Result<Snapshot, StoreError>>),
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
) -> std::io::Result<(WriteTx, DoneRx)> {
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
