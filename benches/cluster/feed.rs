//! The feed step: a WebSocket client follows `book:<market>` on one node
//! while the load runs, as a trading program would, and measures how long
//! each delta took from the engine's change (`ts_ms`) to the client, how
//! many messages came, and whether the node ever had to resync it. It
//! checks the sequence numbers as it goes: a gap would be a bug.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// What the follower saw.
#[derive(Debug, Default)]
pub struct FeedStats {
    pub messages: u64,
    pub deltas: u64,
    pub resyncs: u64,
    /// Deltas whose sequence number was not the next one.
    pub gaps: u64,
    /// Engine-to-client delay of every delta, ms.
    pub delays_ms: Vec<f64>,
    pub seconds: f64,
}

impl FeedStats {
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.delays_ms.is_empty() {
            return None;
        }
        let mut v = self.delays_ms.clone();
        v.sort_by(f64::total_cmp);
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        Some(v[i])
    }

    pub fn per_second(&self) -> f64 {
        self.messages as f64 / self.seconds.max(1e-9)
    }
}

pub struct Follower {
    stop: oneshot::Sender<()>,
    task: JoinHandle<FeedStats>,
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Follow `market`'s book on the node whose API is `api`
/// (`http://host:port`), once it sent its snapshot.
pub async fn follow(api: &str, market: &str) -> Follower {
    let url = format!("{}/api/v1/ws", api.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_or_else(|e| panic!("cannot open the feed at {url}: {e}"));
    let sub = format!(r#"{{"op":"subscribe","channel":"book:{market}"}}"#);
    ws.send(Message::Text(sub.into()))
        .await
        .expect("cannot subscribe to the feed");
    let mut seq = None;
    while seq.is_none() {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no snapshot within 10 s");
        if let Some(Ok(Message::Text(t))) = m {
            let v: Value = serde_json::from_str(&t).expect("the feed sends JSON");
            if v["type"] == "snapshot" {
                seq = v["seq"].as_u64();
            }
        }
    }
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut s = FeedStats::default();
        let mut next = seq.map_or(0, |q| q + 1);
        let started = Instant::now();
        loop {
            let m = tokio::select! {
                _ = &mut stopped => break,
                m = ws.next() => m,
            };
            let Some(Ok(m)) = m else { break };
            let Message::Text(t) = m else { continue };
            let Ok(v) = serde_json::from_str::<Value>(&t) else {
                continue;
            };
            s.messages += 1;
            match v["type"].as_str() {
                Some("delta") => {
                    s.deltas += 1;
                    let q = v["seq"].as_u64().unwrap_or(0);
                    if q != next {
                        s.gaps += 1;
                    }
                    next = q + 1;
                    if let Some(ts) = v["ts_ms"].as_f64() {
                        s.delays_ms.push((now_ms() - ts).max(0.0));
                    }
                }
                Some("resync") => s.resyncs += 1,
                Some("snapshot") => next = v["seq"].as_u64().map_or(next, |q| q + 1),
                _ => {}
            }
        }
        s.seconds = started.elapsed().as_secs_f64();
        s
    });
    Follower { stop, task }
}

impl Follower {
    pub async fn finish(self) -> FeedStats {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}
