//! The offered load: a seeded mix of resting orders, crossing orders that
//! take across nodes, and cancels, sent to every node at a target rate in
//! batches (`POST /api/v1/orders/batch`) every few milliseconds.
//!
//! The generator is open-loop: it owes `rate × elapsed` items whatever the
//! nodes answer, and sends what it owes each tick as long as a node has
//! fewer than [`MAX_IN_FLIGHT`] batches unanswered; what it cannot send is
//! still owed, so a node that falls behind gets bigger batches, never a
//! lower rate in the numbers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::node::NodeProc;
use crate::rng::Rng;

/// How often each node's generator sends what it owes.
const TICK: Duration = Duration::from_millis(10);
/// Most batches unanswered per node.
const MAX_IN_FLIGHT: u64 = 8;
/// Most items per batch (the API's limit).
const MAX_BATCH: u64 = peerbook::api::orders::MAX_BATCH_ITEMS as u64;
/// Orders per batch when filling a book.
const FILL_BATCH: u64 = 500;
/// The market's middle, in ticks of 0.01: resting bids lie below it,
/// resting asks above, so only the crossing orders trade.
const MID: u64 = 10_000;

/// What happened to the offered items, all nodes together.
#[derive(Default)]
pub struct Tally {
    pub offered: AtomicU64,
    pub placed: AtomicU64,
    pub cancelled: AtomicU64,
    pub refused: AtomicU64,
    pub fills: AtomicU64,
    pub failed_requests: AtomicU64,
}

impl Tally {
    pub fn accepted(&self) -> u64 {
        self.placed.load(Ordering::Relaxed) + self.cancelled.load(Ordering::Relaxed)
    }
}

#[derive(Deserialize)]
struct Answer {
    placed: Vec<Item>,
    cancelled: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    order: Option<Order>,
}

#[derive(Deserialize)]
struct Order {
    id: String,
    status: String,
    #[serde(default)]
    fills: Vec<Value>,
}

fn price(ticks: u64) -> String {
    format!("{}.{:02}", ticks / 100, ticks % 100)
}

fn qty(lots: u64) -> String {
    format!("0.{lots:04}")
}

/// One node's share of the mix.
struct Mix {
    rng: Rng,
    /// This node's resting orders, to cancel some of.
    open: Arc<Mutex<Vec<String>>>,
}

impl Mix {
    /// `n` items: about 60 % resting limit orders, 15 % immediate-or-cancel
    /// orders that cross the book (and so take from whichever node owns the
    /// best orders), 25 % cancels of this node's resting orders.
    fn batch(&mut self, n: u64) -> Value {
        let mut place = Vec::new();
        let mut cancel = Vec::new();
        for _ in 0..n {
            let r = self.rng.below(100);
            if r < 25 {
                let mut open = self.open.lock().unwrap();
                if !open.is_empty() {
                    let i = self.rng.below(open.len() as u64) as usize;
                    cancel.push(open.swap_remove(i));
                    continue;
                }
            }
            let buy = self.rng.chance(0.5);
            if r >= 85 {
                let (side, p) = if buy {
                    ("buy", MID + 300)
                } else {
                    ("sell", MID - 300)
                };
                place.push(json!({
                    "market": "BTC-USD", "side": side, "price": price(p),
                    "quantity": qty(1 + self.rng.below(5)), "time_in_force": "ioc",
                }));
            } else {
                let away = 1 + self.rng.below(200);
                let (side, p) = if buy {
                    ("buy", MID - away)
                } else {
                    ("sell", MID + away)
                };
                place.push(json!({
                    "market": "BTC-USD", "side": side, "price": price(p),
                    "quantity": qty(1 + self.rng.below(20)),
                }));
            }
        }
        json!({ "place": place, "cancel": cancel })
    }
}

/// Send `body` as one batch to `node`; count what came back.
async fn send(
    http: reqwest::Client,
    url: String,
    body: Value,
    tally: Arc<Tally>,
    open: Arc<Mutex<Vec<String>>>,
) {
    let answer = match http.post(url).json(&body).send().await {
        Ok(r) if r.status().is_success() => r.json::<Answer>().await,
        Ok(r) => {
            eprintln!("a batch was refused: {}", r.status());
            tally.failed_requests.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(e) => Err(e),
    };
    let Ok(answer) = answer else {
        tally.failed_requests.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut resting = Vec::new();
    for item in &answer.placed {
        match &item.order {
            Some(o) if item.status < 300 => {
                tally.placed.fetch_add(1, Ordering::Relaxed);
                tally
                    .fills
                    .fetch_add(o.fills.len() as u64, Ordering::Relaxed);
                if o.status == "open" {
                    resting.push(o.id.clone());
                }
            }
            _ => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    for item in &answer.cancelled {
        if item.status < 300 {
            tally.cancelled.fetch_add(1, Ordering::Relaxed);
        } else {
            // Filled before its cancel arrived: the mix's race, not a fault.
            tally.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
    open.lock().unwrap().extend(resting);
}

/// Offer `rate` items per second, cluster-wide, for `secs`; returns when
/// every batch sent has been answered.
pub async fn offer(
    http: &reqwest::Client,
    nodes: &[NodeProc],
    rate: u64,
    secs: f64,
    seed: u64,
) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let per_node = rate as f64 / nodes.len() as f64;
    let mut generators = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let http = http.clone();
        let url = format!("{}/api/v1/orders/batch", node.api);
        let tally = tally.clone();
        let mut mix = Mix {
            rng: Rng::new(seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            open: Arc::new(Mutex::new(Vec::new())),
        };
        generators.push(tokio::spawn(async move {
            let in_flight = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let mut sent = 0u64;
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut requests = Vec::new();
            loop {
                tick.tick().await;
                let elapsed = started.elapsed().as_secs_f64().min(secs);
                let owed = (per_node * elapsed) as u64 - sent;
                if owed > 0 && in_flight.load(Ordering::Relaxed) < MAX_IN_FLIGHT {
                    let n = owed.min(MAX_BATCH);
                    sent += n;
                    tally.offered.fetch_add(n, Ordering::Relaxed);
                    let body = mix.batch(n);
                    let (http, url, tally, open, in_flight) = (
                        http.clone(),
                        url.clone(),
                        tally.clone(),
                        mix.open.clone(),
                        in_flight.clone(),
                    );
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    requests.push(tokio::spawn(async move {
                        send(http, url, body, tally, open).await;
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                    }));
                }
                if elapsed >= secs && (per_node * secs) as u64 <= sent {
                    break;
                }
                // A node that cannot keep up still ends the run.
                if started.elapsed().as_secs_f64() > secs * 3.0 + 10.0 {
                    break;
                }
            }
            for r in requests {
                let _ = r.await;
            }
        }));
    }
    for g in generators {
        g.await.expect("a load generator failed");
    }
    tally
}

/// Place `total` resting orders, spread over the nodes and over 1,000
/// price levels a side, as fast as the nodes take them.
pub async fn fill_book(http: &reqwest::Client, nodes: &[NodeProc], total: u64) {
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let share = total / nodes.len() as u64 + u64::from((i as u64) < total % nodes.len() as u64);
        let http = http.clone();
        let url = format!("{}/api/v1/orders/batch", node.api);
        tasks.push(tokio::spawn(async move {
            let mut next = 0u64;
            let mut batches = Vec::new();
            while next < share {
                let n = (share - next).min(FILL_BATCH);
                let place: Vec<Value> = (next..next + n)
                    .map(|k| {
                        let away = 1 + k % 1_000;
                        let (side, p) = if k % 2 == 0 {
                            ("buy", MID - away)
                        } else {
                            ("sell", MID + away)
                        };
                        json!({"market": "BTC-USD", "side": side, "price": price(p), "quantity": qty(1 + k % 7)})
                    })
                    .collect();
                next += n;
                batches.push(json!({ "place": place }));
            }
            // A few batches at a time per node.
            for chunk in batches.chunks(4) {
                let sends = chunk.iter().map(|b| {
                    let (http, url) = (http.clone(), url.clone());
                    async move {
                        let r = http.post(url).json(b).send().await.expect("fill: request failed");
                        assert!(r.status().is_success(), "fill: {}", r.status());
                        let a: Answer = r.json().await.expect("fill: bad answer");
                        assert!(
                            a.placed.iter().all(|i| i.status == 201),
                            "fill: an order was refused"
                        );
                    }
                });
                futures::future::join_all(sends).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("filling the book failed");
    }
}
