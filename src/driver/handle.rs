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

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::engine::{
    BookInfo, Command, Counters, Engine, EngineError, Event, MarketInfo, OrderInfo, OrderStatus,
    OwnerInfo, TradeInfo,
};

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
        limit: usize,
        reply: oneshot::Sender<Result<Vec<OrderInfo>, EngineError>>,
    },
    Trades {
        market: Option<String>,
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
                limit,
                reply,
            } => {
                let _ = reply.send(e.orders(market.as_deref(), status, limit));
            }
            Query::Trades {
                market,
                limit,
                reply,
            } => {
                let _ = reply.send(e.trades(market.as_deref(), limit));
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
    pub(super) fn new(tx: mpsc::Sender<ApiRequest>, events: broadcast::Sender<Event>) -> Self {
        EngineHandle { tx, events }
    }

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

    /// One order: one of this node's, or one of the replica.
    pub async fn order(&self, id: String) -> Result<Result<OrderInfo, EngineError>, EngineGone> {
        self.ask(|reply| Query::Order { id, reply }).await
    }

    /// This node's orders, newest first, optionally of one market and
    /// status, at most `limit`.
    pub async fn orders(
        &self,
        market: Option<String>,
        status: Option<OrderStatus>,
        limit: usize,
    ) -> Result<Result<Vec<OrderInfo>, EngineError>, EngineGone> {
        self.ask(|reply| Query::Orders {
            market,
            status,
            limit,
            reply,
        })
        .await
    }

    /// Recent trades the node knows, newest first, optionally of one market.
    pub async fn trades(
        &self,
        market: Option<String>,
        limit: usize,
    ) -> Result<Result<Vec<TradeInfo>, EngineError>, EngineGone> {
        self.ask(|reply| Query::Trades {
            market,
            limit,
            reply,
        })
        .await
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
}
