//! The API's handle on the engine task: commands and reads go to the task
//! over a channel, each with a oneshot for its answer; events come back
//! through a broadcast channel every subscriber reads.
//!
//! A handle is cheap to clone. When the engine task has stopped (the node is
//! shutting down), every call answers [`EngineGone`].

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::engine::{Command, Engine, EngineError, Event, OrderInfo};

/// A read of the engine, run in the engine task.
pub(super) type Query = Box<dyn FnOnce(&Engine) + Send>;

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
