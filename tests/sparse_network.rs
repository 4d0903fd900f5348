//! Twenty real nodes on loopback in a sparse network: each bootstrapped to
//! one random earlier node, at most four peers wanted and six kept
//! (`PEERBOOK_NET_TARGET_PEERS=4`, `PEERBOOK_NET_MAX_ESTABLISHED_TOTAL=6`),
//! so no node can hold the others and full nodes must let newcomers learn
//! of other peers. Every node joins one connected network; then every node
//! trades at random while two nodes are killed with SIGKILL and restarted
//! and one is stopped with SIGSTOP for 8 s. After the load: one digest and
//! the same trade ids everywhere, no order filled past its quantity, every
//! acknowledged order known to its owner, nothing `taking`.
//!
//! Heavy (twenty debug processes on a shared machine); it runs in a few
//! minutes. `PEERBOOK_SPARSE_NODES=n` changes the size.
//!
//! Not run by default while the sparse-network work is open: the peer
//! managers of twenty nodes still churn (the cluster benchmark's scale mode
//! saw 428 connections pruned in 10 s and nodes left with no peer, see
//! docs/performance.md), so this passes in some runs and times out in
//! others. `cargo test --test sparse_network -- --ignored` runs it.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::str::FromStr;
use std::time::Duration;

use common::{Node, NodeOpts};
use peerbook::engine::{BookInfo, OrderInfo, TradeInfo};
use rust_decimal::Decimal;
use serde_json::{json, Value};

const TARGET: &str = "4";
const MAX_TOTAL: &str = "6";
/// The ceiling every node gets back under once the start-up is over (DHT
/// bootstraps dial most of the network at first; the peer manager prunes).
const CEILING: usize = 6;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn outputs(nodes: &[Node]) -> String {
    // Only the tails: twenty full logs would drown the failure.
    nodes
        .iter()
        .map(|n| {
            let out = n.output();
            let tail: Vec<&str> = out.lines().rev().take(40).collect();
            format!(
                "=== {} (last lines) ===\n{}\n",
                n.opts.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect()
}

async fn get<T: serde::de::DeserializeOwned>(node: &Node, path: &str) -> Option<T> {
    let r = node
        .http()
        .get(node.url(path))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// Whether the connections the nodes report make one connected network in
/// which every node has a peer, and the peer count of every node.
async fn one_network(nodes: &[Node], ids: &[String]) -> Option<Vec<usize>> {
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut counts = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let peers = n.peers().await?;
        let connected: Vec<usize> = peers
            .iter()
            .filter(|p| p.connected)
            .filter_map(|p| index.get(p.peer_id.as_str()).copied())
            .collect();
        counts.push(connected.len());
        for j in connected {
            adj[i].push(j);
            adj[j].push(i);
        }
    }
    let mut seen = vec![false; nodes.len()];
    let mut queue = VecDeque::from([0usize]);
    seen[0] = true;
    while let Some(i) = queue.pop_front() {
        for &j in &adj[i] {
            if !seen[j] {
                seen[j] = true;
                queue.push_back(j);
            }
        }
    }
    // Each node must see a peer itself (the two ends of a connection learn
    // of it, or of its end, at different moments).
    (seen.iter().all(|s| *s) && counts.iter().all(|c| *c >= 1)).then_some(counts)
}

/// How long the network may take to join, and to converge after the load:
/// twenty debug processes share two cores with whatever else runs.
const SETTLE: Duration = Duration::from_secs(240);

/// Poll `check` until it returns `Some`, or fail after [`SETTLE`] saying what
/// was awaited, with the nodes' last lines.
async fn eventually<T, F, Fut>(what: &str, context: impl Fn() -> String, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if started.elapsed() > SETTLE {
            panic!(
                "timed out after {SETTLE:?} waiting for {what}\n{}",
                context()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn random_order(r: &mut Rng) -> Value {
    let side = if r.below(2) == 0 { "buy" } else { "sell" };
    let price = 995 + r.below(11) as i64;
    let qty = 1 + r.below(4);
    let tif = if r.below(5) == 0 { "ioc" } else { "gtc" };
    json!({"market":"ETH-USD","side":side,"price":price.to_string(),"quantity":qty.to_string(),"time_in_force":tif})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sparse_nodes_stay_connected_and_converge_through_kills_and_a_stall() {
    let n: usize = std::env::var("PEERBOOK_SPARSE_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    assert!(n >= 6, "PEERBOOK_SPARSE_NODES must be at least 6");
    let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut r = Rng(0x005b_a75e);
    let mut nodes: Vec<Node> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut opts = NodeOpts::new(&format!("N{i}"), dir.path())
            .env("PEERBOOK_NET_TARGET_PEERS", TARGET)
            .env("PEERBOOK_NET_MAX_ESTABLISHED_TOTAL", MAX_TOTAL)
            .env("RUST_LOG", "info");
        if i > 0 {
            let b = r.below(i as u64) as usize;
            opts = opts.bootstrap(format!("{}/p2p/{}", nodes[b].addr(), ids[b]));
        }
        let node = opts.start();
        ids.push(node.ready().await.peer_id);
        nodes.push(node);
    }

    // Every node joins one connected network, none over the hard limit.
    let counts = eventually(
        "every node to be connected into one network",
        || outputs(&nodes),
        || async { one_network(&nodes, &ids).await },
    )
    .await;
    for (i, c) in counts.iter().enumerate() {
        assert!(*c >= 1, "N{i} has no peer: {counts:?}");
    }
    // And every node gets back to its ceiling, still one network.
    let counts = eventually(
        "every node to be at or under its ceiling, in one network",
        || outputs(&nodes),
        || async {
            one_network(&nodes, &ids)
                .await
                .filter(|c| c.iter().all(|&c| (1..=CEILING).contains(&c)))
        },
    )
    .await;
    eprintln!("peers per node once settled: {counts:?}");

    // Random trading on every node; N3 and N11 are killed and restarted,
    // N7 stalls for 8 s.
    let (killed, stalled) = ([3usize, 11], 7usize);
    let mut load = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let url = node.url("/api/v1/orders");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let seed = 1000 + i as u64;
        load.push(tokio::spawn(async move {
            let mut r = Rng(seed);
            let mut acked = Vec::new();
            for _ in 0..12 {
                if let Ok(resp) = http.post(&url).json(&random_order(&mut r)).send().await {
                    if resp.status().as_u16() == 201 {
                        if let Ok(o) = resp.json::<OrderInfo>().await {
                            acked.push(o);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100 + r.below(200))).await;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for &k in &killed {
        nodes[k].stop_with(libc::SIGKILL);
    }
    let stalled_pid = nodes[stalled].pid().expect("N7 runs");
    // SAFETY: kill(2) on the pid of our own child, which we have not reaped.
    unsafe {
        libc::kill(stalled_pid, libc::SIGSTOP);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for &k in &killed {
        let opts = nodes[k].opts.clone();
        nodes[k] = opts.start();
        nodes[k].ready().await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    // SAFETY: as above.
    unsafe {
        libc::kill(stalled_pid, libc::SIGCONT);
    }
    let mut acked: BTreeMap<String, (usize, OrderInfo)> = BTreeMap::new();
    for (i, t) in load.into_iter().enumerate() {
        for o in t.await.unwrap() {
            acked.insert(o.id.clone(), (i, o));
        }
    }
    assert!(
        acked.len() > n * 4,
        "only {} orders acknowledged",
        acked.len()
    );

    // After the load: one network again, one digest, one trade log and
    // nothing taking, everywhere.
    eventually(
        "every node to be connected into one network after the faults",
        || outputs(&nodes),
        || async { one_network(&nodes, &ids).await },
    )
    .await;
    let state = std::sync::Mutex::new(String::new());
    let log: Vec<TradeInfo> = eventually(
        "one digest, one trade log and nothing taking on every node",
        || format!("{}\nlast seen:\n{}", outputs(&nodes), state.lock().unwrap()),
        || async {
            let mut digests = BTreeSet::new();
            let mut logs = BTreeSet::new();
            let mut last = Vec::new();
            let mut seen = String::new();
            let mut crossed = false;
            let mut taking_anywhere = false;
            for (i, node) in nodes.iter().enumerate() {
                let b: BookInfo = get(node, "/api/v1/book/ETH-USD?depth=1000").await?;
                if let (Some(bid), Some(ask)) = (b.bids.first(), b.asks.first()) {
                    crossed |= bid.0 >= ask.0;
                }
                let taking: Vec<OrderInfo> = get(node, "/api/v1/orders?status=taking").await?;
                taking_anywhere |= !taking.is_empty();
                let mut t: Vec<TradeInfo> = get(node, "/api/v1/trades?limit=10000").await?;
                t.retain(|t| t.market == "ETH-USD");
                t.sort_by(|a, b| a.id.cmp(&b.id));
                let peers = node
                    .peers()
                    .await
                    .map_or(0, |p| p.iter().filter(|p| p.connected).count());
                seen.push_str(&format!(
                    "N{i}: digest {} orders {} trades {} taking {} peers {peers} top {:?} / {:?}\n",
                    &b.digest[..b.digest.len().min(12)],
                    b.orders,
                    t.len(),
                    taking.len(),
                    b.bids.first(),
                    b.asks.first()
                ));
                digests.insert(b.digest);
                logs.insert(t.iter().map(|t| t.id.clone()).collect::<Vec<_>>());
                last = t;
            }
            *state.lock().unwrap() = seen;
            (!crossed && !taking_anywhere && digests.len() == 1 && logs.len() == 1).then_some(last)
        },
    )
    .await;

    // No overfill, and every acknowledged order is known to its owner with
    // at least the fills it was acknowledged with.
    let mut traded: BTreeMap<&str, Decimal> = BTreeMap::new();
    for t in &log {
        *traded.entry(t.maker_order_id.as_str()).or_default() += t.quantity;
        *traded.entry(t.taker_order_id.as_str()).or_default() += t.quantity;
    }
    for (id, (owner, before)) in &acked {
        let now: OrderInfo = get(&nodes[*owner], &format!("/api/v1/orders/{id}"))
            .await
            .unwrap_or_else(|| {
                panic!("N{owner} does not know its order {id}\n{}", outputs(&nodes))
            });
        assert!(
            now.filled >= before.filled,
            "{id} lost fills: {before:?} -> {now:?}"
        );
        assert!(now.filled <= now.quantity, "{id} overfilled: {now:?}");
        assert!(
            now.pending.is_zero(),
            "{id} still has {} in doubt",
            now.pending
        );
        let by_trades = traded.get(id.as_str()).copied().unwrap_or_default();
        assert_eq!(
            by_trades, now.filled,
            "{id}: trade log and order disagree: {now:?}"
        );
    }
    for (id, q) in &traded {
        let qty = acked
            .get(*id)
            .map(|(_, o)| o.quantity)
            .unwrap_or(Decimal::from_str("1000000").unwrap());
        assert!(*q <= qty, "{id} traded {q} of {qty}");
    }
    assert!(
        !log.is_empty(),
        "no trade at all: the load exercised nothing"
    );
}
