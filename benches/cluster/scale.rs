//! The scale mode (`PEERBOOK_BENCH_NODES=3,10,20,30`): the same load on
//! clusters of growing size that are *not* a full mesh. Each node is
//! bootstrapped to one random earlier node and runs with capped connections
//! (`PEERBOOK_BENCH_TARGET_PEERS`, default 4; `PEERBOOK_BENCH_MAX_PEERS`,
//! default 6), so gossip and sync travel through relays and takes dial
//! makers they are not connected to. Per size it prints accepted orders a
//! second, replication p50/p99 (creation on its node to arrival in every
//! other replica), take p99, the time to one digest everywhere after the
//! load stops, connections per node, gossip bytes sent per accepted order
//! (summed over the nodes: the amplification), resident memory per node,
//! the CPU the nodes used during the load (in cores: 2.0 is all of a
//! two-core machine) and how often gossipsub found a peer's send queue
//! full and dropped a message to it (its `Send Queue full` warning).

use std::path::Path;
use std::time::{Duration, Instant};

use super::hist::{self, Buckets};
use super::load;
use super::node::{self, NodeProc};
use super::rng::Rng;

/// One cluster size's numbers.
pub struct Scale {
    pub nodes: usize,
    pub accepted: f64,
    pub repl: Buckets,
    pub take: Buckets,
    pub converged: Option<Duration>,
    pub conns_mean: f64,
    pub conns_max: usize,
    pub gossip_bytes_per_order: f64,
    pub rss_mean: f64,
    pub rss_max: f64,
    /// CPU the nodes used together during the load, in cores.
    pub cpu_cores: f64,
    /// CPU the nodes used together while idle before the load, in cores.
    pub idle_cores: f64,
    /// Messages gossipsub dropped because a peer's send queue was full.
    pub queue_full: usize,
}

/// How long the cluster's idle CPU is measured before the load.
const IDLE: Duration = Duration::from_secs(5);

/// Wait until the start-up is over: the nodes' dials, DHT walks and
/// pruning after a start cost more CPU than the load for about ten
/// seconds, and a load measured on top of that says nothing of the network
/// it runs on. Settled is two windows of `SETTLE_WINDOW` that cost about
/// the same (within a tenth, or 0.02 cores), or `SETTLE_MAX`.
async fn settle(nodes: &[NodeProc]) -> Duration {
    let started = Instant::now();
    let mut last = cpu_seconds(nodes);
    let mut previous: Option<f64> = None;
    while started.elapsed() < SETTLE_MAX {
        tokio::time::sleep(SETTLE_WINDOW).await;
        let now = cpu_seconds(nodes);
        let cores = (now - last) / SETTLE_WINDOW.as_secs_f64();
        last = now;
        if previous.is_some_and(|p| (p - cores).abs() <= (0.1 * p).max(0.02)) {
            break;
        }
        previous = Some(cores);
    }
    started.elapsed()
}

const SETTLE_WINDOW: Duration = Duration::from_secs(2);
const SETTLE_MAX: Duration = Duration::from_secs(40);

/// CPU time the nodes used together so far, in seconds.
fn cpu_seconds(nodes: &[NodeProc]) -> f64 {
    nodes.iter().map(|n| n.cpu_seconds()).sum()
}

/// How many times a node's log says gossipsub dropped a message to a peer
/// whose send queue was full.
fn queue_full(node: &NodeProc) -> usize {
    node.logs().matches("Send Queue full").count()
}

/// The gossip bytes a node has sent, all topics.
fn gossip_bytes(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("gossipsub_topic_msg_sent_bytes"))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

/// `n` nodes, each bootstrapped to a random earlier one, with capped
/// connections; returns once every node has a peer.
async fn sparse_cluster(
    http: &reqwest::Client,
    root: &Path,
    n: usize,
    env: &[(String, String)],
    seed: u64,
) -> Vec<NodeProc> {
    let mut rng = Rng::new(seed);
    let mut nodes: Vec<NodeProc> = Vec::new();
    for i in 0..n {
        let boot = (i > 0).then(|| nodes[rng.below(i as u64) as usize].p2p.clone());
        let name = format!("node{}", i + 1);
        nodes.push(NodeProc::start_with(http, root, &name, boot.as_deref(), env).await);
    }
    let started = Instant::now();
    for node in &mut nodes {
        while node.connected_peers(http).await == 0 {
            node.check_alive();
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} found no peer\n{}",
                node.name,
                node.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    nodes
}

/// A convergence slower than this names the nodes that were late.
const SLOW_CONVERGENCE: Duration = Duration::from_secs(2);

/// The sum of a counter over every node's scrape in `metrics` (one node's
/// scrape or several concatenated).
fn total(metrics: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The engine's and network's counters that tell why a replica was late,
/// as "name +delta" for those that moved between two scrapes (of one node,
/// or of all concatenated).
fn what_happened(before: &str, after: &str) -> String {
    const COUNTERS: [&str; 14] = [
        "takes_sent",
        "takes_in_doubt",
        "doubts_settled_by_heartbeat",
        "takes_refused",
        "takes_late",
        "owner_syncs",
        "sync_requests",
        "sync_pages",
        "gossip_late",
        "gossip_ignored",
        "gossip_rate_limited",
        "gossip_rejected",
        "net_peers_pruned",
        "net_events_shed",
    ];
    let moved: Vec<String> = COUNTERS
        .iter()
        .filter_map(|c| {
            let name = format!("peerbook_{c}_total");
            let d = total(after, &name)? - total(before, &name).unwrap_or(0.0);
            (d != 0.0).then(|| format!("{c} +{d}"))
        })
        .collect();
    moved.join(", ")
}

/// What to run: a cluster of `nodes`, `rate` items a second for `secs`.
pub struct Params {
    pub nodes: usize,
    pub rate: u64,
    pub secs: f64,
    pub seed: u64,
    pub target: u32,
    pub max_peers: u32,
}

pub async fn run(
    http: &reqwest::Client,
    p: &Params,
    histograms: impl Fn(&[String]) -> [Buckets; 3],
) -> Scale {
    let Params {
        nodes: n,
        rate,
        secs,
        seed,
        target,
        max_peers,
    } = *p;
    // `PEERBOOK_BENCH_KEEP` keeps the nodes' data and logs to read after
    // the run.
    let keep = std::env::var_os("PEERBOOK_BENCH_KEEP").is_some();
    let dir = tempfile::Builder::new()
        .disable_cleanup(keep)
        .tempdir()
        .expect("cannot make a temporary directory");
    if keep {
        println!(
            "  {n} nodes: data and logs kept in {}",
            dir.path().display()
        );
    }
    let env = vec![
        ("PEERBOOK_NET_TARGET_PEERS".to_string(), target.to_string()),
        (
            "PEERBOOK_NET_MAX_ESTABLISHED_TOTAL".to_string(),
            max_peers.to_string(),
        ),
    ];
    let nodes = sparse_cluster(http, dir.path(), n, &env, seed).await;
    // One order per node that everyone must see: the network is one
    // before the clock starts.
    load::fill_book(http, &nodes, n as u64).await;
    assert!(
        node::converge(http, &nodes, Duration::from_secs(120))
            .await
            .is_some(),
        "{n} sparse nodes did not agree on their first orders"
    );
    let scrape = || async {
        let mut texts = Vec::new();
        for node in &nodes {
            texts.push(node.metrics(http).await);
        }
        texts
    };
    // Idle: what the network costs with nothing to trade.
    let settled = settle(&nodes).await;
    println!(
        "  {n} nodes: in one network, settled after {:.0} s; idle",
        settled.as_secs_f64()
    );
    let idle0 = cpu_seconds(&nodes);
    tokio::time::sleep(IDLE).await;
    let idle_cores = (cpu_seconds(&nodes) - idle0) / IDLE.as_secs_f64();
    println!(
        "  {n} nodes: idle for {} s, the load starts",
        IDLE.as_secs()
    );
    // Counted from here, so the gossip of the start-up and the idle
    // heartbeats are not charged to the orders.
    let before = scrape().await;
    let [repl0, take0, _] = histograms(&before);
    let bytes0: f64 = before.iter().map(|m| gossip_bytes(m)).sum();
    let cpu0 = cpu_seconds(&nodes);
    let full0: usize = nodes.iter().map(queue_full).sum();
    let started = Instant::now();
    let tally = load::offer(http, &nodes, rate, secs, seed).await;
    let took = started.elapsed().as_secs_f64().max(secs);
    let cpu1 = cpu_seconds(&nodes);
    let (converged, laggards) = node::converge_late(http, &nodes, Duration::from_secs(120)).await;
    let after = scrape().await;
    println!(
        "  {n} nodes: counters during the load and after, all nodes: {}",
        what_happened(&before.concat(), &after.concat())
    );
    if converged.is_some_and(|c| c > SLOW_CONVERGENCE) {
        for (i, t) in &laggards {
            println!(
                "  {n} nodes: {} agreed last, at {:.2} s; during the load and after: {}",
                nodes[*i].name,
                t.as_secs_f64(),
                what_happened(&before[*i], &after[*i])
            );
        }
    }
    let [repl1, take1, _] = histograms(&after);
    let bytes1: f64 = after.iter().map(|m| gossip_bytes(m)).sum();
    let mut conns = Vec::new();
    for node in &nodes {
        conns.push(node.connected_peers(http).await);
    }
    let rss: Vec<f64> = nodes.iter().map(|n| n.peak_rss_mb()).collect();
    let accepted = tally.accepted();
    let pruned: f64 = after
        .iter()
        .filter_map(|m| hist::sample(m, "peerbook_net_peers_pruned_total"))
        .sum();
    let queue_full = nodes.iter().map(queue_full).sum::<usize>() - full0;
    println!(
        "  {n} nodes: accepted {accepted} in {took:.1} s, connections {conns:?}, {pruned} peers pruned"
    );
    Scale {
        nodes: n,
        accepted: accepted as f64 / took,
        repl: repl1.minus(&repl0),
        take: take1.minus(&take0),
        converged,
        conns_mean: conns.iter().sum::<usize>() as f64 / n as f64,
        conns_max: conns.iter().copied().max().unwrap_or(0),
        gossip_bytes_per_order: (bytes1 - bytes0) / accepted.max(1) as f64,
        rss_mean: rss.iter().sum::<f64>() / n as f64,
        rss_max: rss.iter().copied().fold(0.0, f64::max),
        cpu_cores: (cpu1 - cpu0) / took,
        idle_cores,
        queue_full,
    }
}
