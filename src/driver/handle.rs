//! The API's handle on the engine task: commands and reads go to the task
//! over a channel, each with a oneshot for its answer; events come back
//! through a broadcast channel every subscriber reads.
//!
//! The API reads the engine only through the methods here, one per thing
//! it shows (a book, an order, a list, the status, the metrics), each a
//! [`Query`] the engine task answers from the engine's public views. So
//! what the API can see of the engine is this list, and the engine's
//! insides can change without the API noticing.
//!
//! A handle is cheap to clone. When the engine task has stopped (the node is
//! shutting down), every call answers [`EngineGone`].

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::feed::{BookDelta, BookSnapshot};

use super::upkeep::Upkeep;
use crate::engine::{
    stored_order_info, BookInfo, Command, Counters, Engine, EngineError, Event, MarketInfo,
    OrderId, OrderInfo, OrderStatus, OwnerInfo, TradeInfo,
};
use crate::market::MarketSpec;
use crate::store::{Store, StoreStats};

/// A read of the engine, with the oneshot its answer goes back on.
pub(super) enum Query {
    Book {
        market: String,
        depth: usize,
        reply: oneshot::Sender<Result<BookInfo, EngineError>>,
    },
    Order {
        id: String,
        reply: oneshot::Sender<Result<OrderInfo, EngineError>>,
    },
    Orders {
        market: Option<String>,
        status: Option<OrderStatus>,
        before: u64,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<OrderInfo>, EngineError>>,
    },
    Trades {
        market: Option<String>,
        page: Page<u64>,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<TradeInfo>, EngineError>>,
    },
    Status {
        reply: oneshot::Sender<EngineStatus>,
    },
    Metrics {
        reply: oneshot::Sender<EngineMetrics>,
    },
    Degraded {
        reply: oneshot::Sender<Option<String>>,
    },
}

impl Query {
    /// Answer the query from the engine, in the engine task. A caller that
    /// stopped waiting (its client went away) gets nothing, and nothing
    /// else changes.
    pub(super) fn answer(self, e: &Engine) {
        match self {
            Query::Book {
                market,
                depth,
                reply,
            } => {
                let _ = reply.send(e.book(&market, depth));
            }
            Query::Order { id, reply } => {
                let _ = reply.send(e.order(&id));
            }
            Query::Orders {
                market,
                status,
                before,
                limit,
                reply,
            } => {
                let _ = reply.send(e.orders_before(market.as_deref(), status, before, limit));
            }
            Query::Trades {
                market,
                page,
                limit,
                reply,
            } => {
                let _ =
                    reply.send(e.trades_between(market.as_deref(), page.before, page.after, limit));
            }
            Query::Status { reply } => {
                let _ = reply.send(EngineStatus {
                    markets: e.market_infos(),
                    owners: e.owners(),
                    degraded: e.degraded().map(str::to_string),
                });
            }
            Query::Metrics { reply } => {
                let _ = reply.send(EngineMetrics {
                    counters: e.counters().clone(),
                    markets: e.market_infos(),
                    owners: e.owners(),
                    degraded: e.degraded().is_some(),
                });
            }
            Query::Degraded { reply } => {
                let _ = reply.send(e.degraded().map(str::to_string));
            }
        }
    }
}

/// What `/api/v1/status` shows of the engine, read in one look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineStatus {
    /// Each market's replicated book: digest, sizes, whether it is synced.
    pub markets: Vec<MarketInfo>,
    /// Every owner the node has heard of.
    pub owners: Vec<OwnerInfo>,
    /// Why the node refuses new orders, if it does (storage failure).
    pub degraded: Option<String>,
}

/// What `/metrics` renders of the engine, read in one look so the numbers
/// of one scrape agree with each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineMetrics {
    pub counters: Counters,
    pub markets: Vec<MarketInfo>,
    pub owners: Vec<OwnerInfo>,
    /// Whether the node refuses new orders (storage failure).
    pub degraded: bool,
}

/// What the API asks of the engine task.
pub(super) enum ApiRequest {
    Command {
        cmd: Command,
        reply: oneshot::Sender<Result<OrderInfo, EngineError>>,
    },
    /// A whole book with the feed's sequence number (see `feed.rs`).
    Snapshot {
        market: String,
        reply: oneshot::Sender<Result<BookSnapshot, EngineError>>,
    },
    Query(Query),
}

/// Why the engine could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the engine is not running (the node is shutting down)")]
pub struct EngineGone;

/// A page of a list, newest first: items older than `before`, newer than
/// `after` (order ids for orders, ms for trades).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page<T> {
    pub before: Option<T>,
    pub after: Option<T>,
}

/// What `/api/v1/status` shows of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreStatus {
    pub stats: StoreStats,
    pub retention_secs: u64,
    pub max_bytes: u64,
}

/// The API's handle on the engine task.
///
/// The engine holds what is live and a window of what is done; what it no
/// longer holds, the handle reads from the store (done orders by id or page,
/// the trade tape), so the API answers the same for anything the node ever
/// had, within the retention.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<ApiRequest>,
    events: broadcast::Sender<Event>,
    levels: broadcast::Sender<Arc<BookDelta>>,
    store: Store,
    upkeep: Upkeep,
    markets: Vec<MarketSpec>,
}

impl EngineHandle {
    pub(super) fn new(
        tx: mpsc::Sender<ApiRequest>,
        events: broadcast::Sender<Event>,
        levels: broadcast::Sender<Arc<BookDelta>>,
        store: Store,
        upkeep: Upkeep,
        markets: Vec<MarketSpec>,
    ) -> Self {
        EngineHandle {
            tx,
            events,
            levels,
            store,
            upkeep,
            markets,
        }
    }

    /// Place or cancel an order; answers once the change is durable.
    pub async fn command(
        &self,
        cmd: Command,
    ) -> Result<Result<OrderInfo, EngineError>, EngineGone> {
        let cancelled = match &cmd {
            Command::Cancel { id } => Some(id.clone()),
            Command::Place(_) => None,
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(ApiRequest::Command { cmd, reply })
            .await
            .map_err(|_| EngineGone)?;
        let answer = rx.await.map_err(|_| EngineGone)?;
        // A cancel of an order the engine let go of: it is done.
        if let (Err(EngineError::NotHeld(_)), Some(id)) = (&answer, cancelled) {
            return Ok(Err(match self.stored_order(&id).await {
                Ok(Some(o)) => EngineError::AlreadyDone(id, o.status.as_str()),
                Ok(None) => self.past_retention(id),
                Err(e) => e,
            }));
        }
        Ok(answer)
    }

    /// The sequence number of `id` if it is one of this node's orders.
    fn own_seq(&self, id: &str) -> Option<u64> {
        let oid: OrderId = id.parse().ok()?;
        (oid.owner == self.upkeep.me).then_some(oid.seq)
    }

    /// One of this node's orders from the store, if it is there.
    async fn stored_order(&self, id: &str) -> Result<Option<OrderInfo>, EngineError> {
        let Some(seq) = self.own_seq(id) else {
            return Ok(None);
        };
        let (store, me, markets) = (self.store.clone(), self.upkeep.me, self.markets.clone());
        let read = tokio::task::spawn_blocking(move || store.own_order(&me, seq))
            .await
            .map_err(|e| EngineError::Storage(e.to_string()))?
            .map_err(|e| EngineError::Storage(e.to_string()))?;
        Ok(read.and_then(|(o, trades)| {
            let spec = markets.iter().find(|m| m.name == o.market)?;
            Some(stored_order_info(spec, me, &o, &trades))
        }))
    }

    /// The store's sizes and the retention in force.
    pub fn store_status(&self) -> StoreStatus {
        let stats = self
            .upkeep
            .metrics
            .last
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        StoreStatus {
            stats,
            retention_secs: self.upkeep.retention.max_age_ms / 1000,
            max_bytes: self.upkeep.retention.max_bytes,
        }
    }

    /// A market's replicated book, `depth` levels per side.
    pub async fn book(
        &self,
        market: String,
        depth: usize,
    ) -> Result<Result<BookInfo, EngineError>, EngineGone> {
        self.ask(|reply| Query::Book {
            market,
            depth,
            reply,
        })
        .await
    }

    /// One order: one of this node's (in memory or in the store), or one
    /// of the replica.
    pub async fn order(&self, id: String) -> Result<Result<OrderInfo, EngineError>, EngineGone> {
        let key = id.clone();
        let answer = self.ask(|reply| Query::Order { id, reply }).await?;
        let Err(EngineError::NotHeld(_)) = &answer else {
            return Ok(answer);
        };
        Ok(match self.stored_order(&key).await {
            Ok(Some(o)) => Ok(o),
            Ok(None) => Err(self.past_retention(key)),
            Err(e) => Err(e),
        })
    }

    fn past_retention(&self, id: String) -> EngineError {
        let secs = self.upkeep.retention.max_age_ms / 1000;
        let kept = if secs >= 86_400 && secs.is_multiple_of(86_400) {
            format!("{} days", secs / 86_400)
        } else {
            format!("{secs} s")
        };
        EngineError::PastRetention(id, kept)
    }

    /// This node's orders, newest first, optionally of one market and
    /// status, with a sequence number below that of `before` when given, at
    /// most `limit`: what the engine holds, then what the store keeps.
    pub async fn orders(
        &self,
        market: Option<String>,
        status: Option<OrderStatus>,
        page: Page<String>,
        limit: usize,
    ) -> Result<Result<Vec<OrderInfo>, EngineError>, EngineGone> {
        let cursor = |c: Option<&String>, name: &str, none: u64| match c {
            None => Ok(none),
            Some(id) => self.own_seq(id).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "{name} must be the id of one of this node's orders"
                ))
            }),
        };
        let (before, after) = match (
            cursor(page.before.as_ref(), "before", u64::MAX),
            cursor(page.after.as_ref(), "after", 0),
        ) {
            (Ok(b), Ok(a)) => (b, a),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let m = market.clone();
        let held = match self
            .ask(|reply| Query::Orders {
                market: m,
                status,
                before,
                limit,
                reply,
            })
            .await?
        {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let seq = |o: &OrderInfo| {
            o.id.rsplit('/')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let held: Vec<OrderInfo> = held.into_iter().filter(|o| seq(o) > after).collect();
        if status.is_some_and(|s| !s.is_done()) {
            // Live orders are all in memory.
            return Ok(Ok(held));
        }
        let (store, me, markets) = (self.store.clone(), self.upkeep.me, self.markets.clone());
        let stored = tokio::task::spawn_blocking(move || {
            store.done_orders(&me, after, before, limit, |o| {
                market.as_ref().is_none_or(|m| *m == o.market)
                    && status.is_none_or(|s| s == o.status)
            })
        })
        .await;
        let stored = match stored {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Ok(Err(EngineError::Storage(e.to_string()))),
            Err(e) => return Ok(Err(EngineError::Storage(e.to_string()))),
        };
        let mut out = held;
        let have: std::collections::HashSet<String> = out.iter().map(|o| o.id.clone()).collect();
        for (o, trades) in stored {
            let Some(spec) = markets.iter().find(|m| m.name == o.market) else {
                continue;
            };
            let info = stored_order_info(spec, me, &o, &trades);
            if !have.contains(&info.id) {
                out.push(info);
            }
        }
        out.sort_by_key(|o| std::cmp::Reverse(seq(o)));
        out.truncate(limit);
        Ok(Ok(out))
    }

    /// Trades the node knows, newest first, optionally of one market, older
    /// than `before` (ms) when given: the recent ones the engine holds, then
    /// the durable tape.
    pub async fn trades(
        &self,
        market: Option<String>,
        page: Page<u64>,
        limit: usize,
    ) -> Result<Result<Vec<TradeInfo>, EngineError>, EngineGone> {
        let Page { before, after } = page;
        let m = market.clone();
        let mut out = match self
            .ask(|reply| Query::Trades {
                market: m,
                page: Page { before, after },
                limit,
                reply,
            })
            .await?
        {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if out.len() < limit {
            let names: Vec<String> = match &market {
                Some(m) => vec![m.clone()],
                None => self.markets.iter().map(|m| m.name.clone()).collect(),
            };
            let store = self.store.clone();
            let read = tokio::task::spawn_blocking(move || {
                let mut all = Vec::new();
                for m in &names {
                    all.extend(store.tape(m, after, before, limit)?);
                }
                Ok::<_, crate::store::StoreError>(all)
            })
            .await;
            match read {
                Ok(Ok(tape)) => {
                    let have: std::collections::HashSet<String> =
                        out.iter().map(|t| t.id.clone()).collect();
                    out.extend(tape.into_iter().filter(|t| !have.contains(&t.id)));
                }
                Ok(Err(e)) => return Ok(Err(EngineError::Storage(e.to_string()))),
                Err(e) => return Ok(Err(EngineError::Storage(e.to_string()))),
            }
            out.sort_by(|a, b| b.ts_ms.cmp(&a.ts_ms).then_with(|| b.id.cmp(&a.id)));
            out.truncate(limit);
        }
        Ok(Ok(out))
    }

    /// The markets, owners and degraded state, for the status page.
    pub async fn status(&self) -> Result<EngineStatus, EngineGone> {
        self.ask(|reply| Query::Status { reply }).await
    }

    /// The counters, markets, owners and degraded state, for `/metrics`.
    pub async fn metrics(&self) -> Result<EngineMetrics, EngineGone> {
        self.ask(|reply| Query::Metrics { reply }).await
    }

    /// Why the node refuses new orders, if it does.
    pub async fn degraded(&self) -> Result<Option<String>, EngineGone> {
        self.ask(|reply| Query::Degraded { reply }).await
    }

    /// Send a query built around its reply channel and wait for the answer.
    async fn ask<R>(
        &self,
        query: impl FnOnce(oneshot::Sender<R>) -> Query,
    ) -> Result<R, EngineGone> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(ApiRequest::Query(query(reply)))
            .await
            .map_err(|_| EngineGone)?;
        rx.await.map_err(|_| EngineGone)
    }

    /// Every event from now on (lagging receivers lose the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Every book delta of every market from now on (a lagging receiver is
    /// told it lagged: it must take a snapshot again).
    pub fn subscribe_levels(&self) -> broadcast::Receiver<Arc<BookDelta>> {
        self.levels.subscribe()
    }

    /// A market's whole book and the sequence number of the last delta it
    /// holds: subscribe first, then take this, then apply the deltas after.
    pub async fn book_snapshot(
        &self,
        market: String,
    ) -> Result<Result<BookSnapshot, EngineError>, EngineGone> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(ApiRequest::Snapshot { market, reply })
            .await
            .map_err(|_| EngineGone)?;
        rx.await.map_err(|_| EngineGone)
    }

    /// This node's peer id.
    pub fn me(&self) -> libp2p::PeerId {
        self.upkeep.me
    }

    /// The configured markets.
    pub fn market_specs(&self) -> &[MarketSpec] {
        &self.markets
    }

    /// Read the store off the runtime's threads.
    pub async fn read_store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<R, crate::store::StoreError> + Send + 'static,
    ) -> Result<R, EngineError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| EngineError::Storage(e.to_string()))?
            .map_err(|e| EngineError::Storage(e.to_string()))
    }
}
