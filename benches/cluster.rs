//! `cargo bench --bench cluster`: the whole system as its users feel it.
//!
//! Three `peerbook node` processes (this build's release binary) on
//! loopback, a seeded mix of orders offered to all of them at a target rate
//! for a fixed time (resting orders, crossing orders that take across
//! nodes, cancels), then: accepted orders per second cluster-wide, the
//! replication delay (an order's creation on its node to its arrival in
//! every other node's replica) and the take round trip, read from the
//! nodes' own histograms in `/metrics`; whether the books converge to equal
//! digests once the load stops; the peak resident memory of a node. Each
//! offered rate runs on a fresh cluster, and a PNG plots latency against
//! the offered rate. Last, a late joiner: a fourth node joins a cluster
//! holding 100,000 resting orders; the time until its digest equals the
//! others'. Through every load a WebSocket client follows node 1's
//! `book:BTC-USD` and measures each delta from the engine's change to the
//! client, the messages per second, and resyncs and sequence gaps.
//!
//! The summary lines come last:
//! `cluster nodes=… offered=…/s accepted=…/s replicated_p50_ms=… replicated_p99_ms=… take_p99_ms=… converged=… rss_mb=…`
//! `feed book:BTC-USD on node1 messages=… messages_per_s=… deltas=… delta_p50_ms=… delta_p99_ms=… resyncs=… gaps=…`
//! `sync orders=… seconds=…`
//!
//! Knobs (environment): `PEERBOOK_BENCH_RATE` (the summary's rate, default
//! 20000), `PEERBOOK_BENCH_RATES` (the plot's rates, comma separated),
//! `PEERBOOK_BENCH_SECS` (load time per rate, default 10),
//! `PEERBOOK_BENCH_SYNC_ORDERS` (default 100000), `PEERBOOK_BENCH_SEED`,
//! `PEERBOOK_BENCH_PLOT` (the PNG's path, default docs/cluster-bench.png),
//! `PEERBOOK_BENCH_NODE_LOG` (the nodes' log filter, default `warn`),
//! `PEERBOOK_BENCH_KEEP` (scale mode: keep the nodes' data and logs).
//!
//! Scale mode: `PEERBOOK_BENCH_NODES=3,10,20,30` runs, instead, the
//! summary's rate on sparse clusters of those sizes with capped connections
//! (`PEERBOOK_BENCH_TARGET_PEERS`, default 4, `PEERBOOK_BENCH_MAX_PEERS`,
//! default 6; see `cluster/scale.rs`), one line per size, and the plot of
//! them (`PEERBOOK_BENCH_SCALE_PLOT`, default docs/scale-bench.png):
//! `scale nodes=… accepted=…/s replicated_p50_ms=… replicated_p99_ms=… take_p99_ms=… converge_s=… conns_mean=… conns_max=… gossip_bytes_per_order=… rss_mb_mean=… rss_mb_max=… cpu_cores=… idle_cpu_cores=… send_queue_full=…`

#[path = "cluster/feed.rs"]
mod feed;
#[path = "cluster/hist.rs"]
mod hist;
#[path = "cluster/load.rs"]
mod load;
#[path = "cluster/node.rs"]
mod node;
#[path = "cluster/plot.rs"]
mod plot;
#[path = "matching/rng.rs"]
#[allow(dead_code)]
mod rng;
#[path = "cluster/scale.rs"]
mod scale;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hist::Buckets;
use node::NodeProc;

const NODES: usize = 3;
const REPLICATION: &str = "peerbook_replication_delay_seconds";
const TAKE: &str = "peerbook_take_round_trip_seconds";
const COMMIT: &str = "peerbook_store_commit_seconds";
/// Engine counters worth a look after a step (summed over the nodes).
const COUNTERS: [&str; 8] = [
    "peerbook_gossip_sent_total",
    "peerbook_gossip_rate_limited_total",
    "peerbook_gossip_ignored_total",
    "peerbook_takes_sent_total",
    "peerbook_takes_refused_total",
    "peerbook_takes_rate_limited_total",
    "peerbook_owner_syncs_total",
    "peerbook_sync_requests_total",
];

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    match std::env::var(key) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{key}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// What one offered rate gave.
struct Step {
    offered: u64,
    accepted: f64,
    repl: Buckets,
    take: Buckets,
    converged: Option<Duration>,
    rss_mb: f64,
    cpu_us_per_item: f64,
    /// A WebSocket client following node 1's book through the load.
    feed: feed::FeedStats,
}

/// Every node's `/metrics` text, read once per look.
async fn scrape(http: &reqwest::Client, nodes: &[NodeProc]) -> Vec<String> {
    let mut texts = Vec::new();
    for n in nodes {
        texts.push(n.metrics(http).await);
    }
    texts
}

/// The replication, take and commit histograms, summed over the nodes.
fn histograms(texts: &[String]) -> [Buckets; 3] {
    let mut out: [Buckets; 3] = Default::default();
    for m in texts {
        for (sum, name) in out.iter_mut().zip([REPLICATION, TAKE, COMMIT]) {
            *sum = sum.plus(&Buckets::parse(m, name));
        }
    }
    out
}

fn ms(v: Option<f64>) -> String {
    v.map_or("nan".into(), |v| format!("{v:.2}"))
}

async fn run_rate(http: &reqwest::Client, rate: u64, secs: f64, seed: u64) -> Step {
    let dir = tempfile::tempdir().expect("cannot make a temporary directory");
    let nodes = node::cluster(http, dir.path(), NODES).await;
    // One order per node that everyone must see: gossip flows everywhere
    // before the clock starts.
    load::fill_book(http, &nodes, NODES as u64).await;
    assert!(
        node::converge(http, &nodes, Duration::from_secs(30))
            .await
            .is_some(),
        "the cluster did not agree on its first orders"
    );
    let [repl0, take0, commit0] = histograms(&scrape(http, &nodes).await);
    let cpu0: Vec<f64> = nodes.iter().map(|n| n.cpu_seconds()).collect();
    let follower = feed::follow(&nodes[0].api, "BTC-USD").await;
    let started = Instant::now();
    let tally = load::offer(http, &nodes, rate, secs, seed).await;
    let took = started.elapsed().as_secs_f64().max(secs);
    let cpu: f64 = nodes
        .iter()
        .zip(&cpu0)
        .map(|(n, c0)| n.cpu_seconds() - c0)
        .sum();
    let threads: Vec<String> = nodes[0]
        .cpu_by_thread()
        .into_iter()
        .filter(|(_, s)| *s >= 0.05)
        .map(|(n, s)| format!("{n} {s:.1}s"))
        .collect();
    println!("  node1 CPU by thread: {}", threads.join(", "));
    let converged = node::converge(http, &nodes, Duration::from_secs(60)).await;
    let feed = follower.finish().await;
    let after = scrape(http, &nodes).await;
    let [repl1, take1, commit1] = histograms(&after);
    let counters: Vec<String> = COUNTERS
        .iter()
        .map(|name| {
            let total: f64 = after.iter().filter_map(|m| hist::sample(m, name)).sum();
            format!("{} {total}", name.trim_start_matches("peerbook_"))
        })
        .collect();
    println!("  counters (all nodes): {}", counters.join(", "));
    let commit = commit1.minus(&commit0);
    println!(
        "  store commits {}: p50 {} ms, p99 {} ms",
        commit.count(),
        ms(commit.quantile_ms(0.5)),
        ms(commit.quantile_ms(0.99))
    );
    let rss_mb = nodes.iter().map(|n| n.peak_rss_mb()).fold(0.0, f64::max);
    let accepted = tally.accepted();
    println!(
        "  rate {rate}/s for {secs}s: offered {} items, accepted {accepted} ({} placed, {} cancelled), \
         refused {}, fills {}, failed batches {}, {:.1} s until answered, node CPU {cpu:.1} s",
        tally.offered.load(Ordering::Relaxed),
        tally.placed.load(Ordering::Relaxed),
        tally.cancelled.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        tally.fills.load(Ordering::Relaxed),
        tally.failed_requests.load(Ordering::Relaxed),
        took,
    );
    let mut books = Vec::new();
    for n in &nodes {
        books.push(n.book(http).await.map_or(0, |b| b.orders));
    }
    println!(
        "  books {books:?} orders, peak rss per node {:?} MiB",
        nodes
            .iter()
            .map(|n| (n.peak_rss_mb() * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    Step {
        offered: rate,
        accepted: accepted as f64 / took,
        repl: repl1.minus(&repl0),
        take: take1.minus(&take0),
        converged,
        rss_mb,
        cpu_us_per_item: cpu * 1e6 / accepted.max(1) as f64,
        feed,
    }
}

fn print_step(s: &Step) {
    println!(
        "cluster nodes={NODES} offered={}/s accepted={:.0}/s replicated_p50_ms={} replicated_p99_ms={} take_p99_ms={} converged={} rss_mb={:.1}",
        s.offered,
        s.accepted,
        ms(s.repl.quantile_ms(0.5)),
        ms(s.repl.quantile_ms(0.99)),
        ms(s.take.quantile_ms(0.99)),
        s.converged.is_some(),
        s.rss_mb,
    );
    let f = &s.feed;
    println!(
        "feed book:BTC-USD on node1 messages={} messages_per_s={:.0} deltas={} delta_p50_ms={} delta_p99_ms={} resyncs={} gaps={}",
        f.messages,
        f.per_second(),
        f.deltas,
        ms(f.quantile_ms(0.5)),
        ms(f.quantile_ms(0.99)),
        f.resyncs,
        f.gaps,
    );
}

async fn run_sync(http: &reqwest::Client, orders: u64) -> f64 {
    let dir = tempfile::tempdir().expect("cannot make a temporary directory");
    let nodes = node::cluster(http, dir.path(), NODES).await;
    let filling = Instant::now();
    load::fill_book(http, &nodes, orders).await;
    let settled = node::converge(http, &nodes, Duration::from_secs(120))
        .await
        .expect("the cluster did not converge on its resting orders");
    let head = nodes[0].book(http).await.expect("node1's book");
    assert_eq!(
        head.orders as u64, orders,
        "node1 does not hold every order"
    );
    println!(
        "  sync: {orders} resting orders placed in {:.1} s, replicated everywhere {:.1} s later",
        filling.elapsed().as_secs_f64() - settled.as_secs_f64(),
        settled.as_secs_f64()
    );
    let started = Instant::now();
    let mut joiner = NodeProc::start(http, dir.path(), "node4", Some(&nodes[0].p2p)).await;
    let up = started.elapsed();
    loop {
        if let Some(b) = joiner.book(http).await {
            if b.digest == head.digest {
                break;
            }
        }
        joiner.check_alive();
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the late joiner did not catch up\n{}",
            joiner.logs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "  sync: node4 answered after {:.2} s, held every order after {seconds:.2} s, peak rss {:.1} MiB",
        up.as_secs_f64(),
        joiner.peak_rss_mb()
    );
    seconds
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let rate: u64 = env_or("PEERBOOK_BENCH_RATE", 20_000);
    let rates: String = env_or(
        "PEERBOOK_BENCH_RATES",
        "5000,10000,20000,30000,40000".into(),
    );
    let mut rates: Vec<u64> = rates
        .split(',')
        .map(|r| {
            r.trim()
                .parse()
                .unwrap_or_else(|_| panic!("PEERBOOK_BENCH_RATES: {r:?} is not a rate"))
        })
        .collect();
    if !rates.contains(&rate) {
        rates.push(rate);
    }
    rates.sort_unstable();
    let secs: f64 = env_or("PEERBOOK_BENCH_SECS", 10.0);
    let sync_orders: u64 = env_or("PEERBOOK_BENCH_SYNC_ORDERS", 100_000);
    let seed: u64 = env_or("PEERBOOK_BENCH_SEED", 7);
    let plot: PathBuf = std::env::var_os("PEERBOOK_BENCH_PLOT").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/cluster-bench.png"),
        PathBuf::from,
    );
    let machine = machine();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .build()
        .expect("cannot build the HTTP client");

    if let Ok(sizes) = std::env::var("PEERBOOK_BENCH_NODES") {
        let target: u32 = env_or("PEERBOOK_BENCH_TARGET_PEERS", 4);
        let max_peers: u32 = env_or("PEERBOOK_BENCH_MAX_PEERS", 6);
        println!(
            "cluster benchmark, scale mode: sparse clusters on loopback, {machine}; {rate} items/s for {secs} s, target {target} peers, at most {max_peers} kept"
        );
        let mut scale_points = Vec::new();
        for size in sizes.split(',') {
            let n: usize = size
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("PEERBOOK_BENCH_NODES: {size:?} is not a node count"));
            assert!(
                n >= 2,
                "PEERBOOK_BENCH_NODES: {n} nodes cannot trade with each other"
            );
            let params = scale::Params {
                nodes: n,
                rate,
                secs,
                seed,
                target,
                max_peers,
            };
            let s = scale::run(&http, &params, histograms).await;
            scale_points.push(plot::ScalePoint {
                nodes: n as f64,
                repl_p50: s.repl.quantile_ms(0.5).unwrap_or(0.0),
                repl_p99: s.repl.quantile_ms(0.99).unwrap_or(0.0),
                take_p99: s.take.quantile_ms(0.99).unwrap_or(0.0),
                cpu_cores: s.cpu_cores,
                idle_cores: s.idle_cores,
            });
            println!(
                "scale nodes={} accepted={:.0}/s replicated_p50_ms={} replicated_p99_ms={} take_p99_ms={} converge_s={} conns_mean={:.1} conns_max={} gossip_bytes_per_order={:.0} rss_mb_mean={:.1} rss_mb_max={:.1} cpu_cores={:.2} idle_cpu_cores={:.2} send_queue_full={}",
                s.nodes,
                s.accepted,
                ms(s.repl.quantile_ms(0.5)),
                ms(s.repl.quantile_ms(0.99)),
                ms(s.take.quantile_ms(0.99)),
                s.converged.map_or("never".into(), |d| format!("{:.2}", d.as_secs_f64())),
                s.conns_mean,
                s.conns_max,
                s.gossip_bytes_per_order,
                s.rss_mean,
                s.rss_max,
                s.cpu_cores,
                s.idle_cores,
                s.queue_full,
            );
        }
        let path: PathBuf = std::env::var_os("PEERBOOK_BENCH_SCALE_PLOT").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/scale-bench.png"),
            PathBuf::from,
        );
        match plot::draw_scale(&path, &scale_points, &machine, rate) {
            Ok(()) => println!("plot: {}", path.display()),
            Err(e) => println!("plot: not drawn: {e}"),
        }
        return;
    }

    println!("cluster benchmark: {NODES} nodes on loopback, {machine}");
    let mut steps = Vec::new();
    for &r in &rates {
        let step = run_rate(&http, r, secs, seed).await;
        println!(
            "  -> {} replications (p50 {} ms), {} takes (p50 {} ms); cpu {:.1} us per accepted item (all nodes), converged after {}",
            step.repl.count(),
            ms(step.repl.quantile_ms(0.5)),
            step.take.count(),
            ms(step.take.quantile_ms(0.5)),
            step.cpu_us_per_item,
            step.converged
                .map_or("never".into(), |d| format!("{:.2} s", d.as_secs_f64()))
        );
        print_step(&step);
        steps.push(step);
    }
    let points: Vec<plot::Point> = steps
        .iter()
        .map(|s| plot::Point {
            offered: s.offered as f64,
            accepted: s.accepted,
            repl_p50: s.repl.quantile_ms(0.5).unwrap_or(0.0),
            repl_p99: s.repl.quantile_ms(0.99).unwrap_or(0.0),
            take_p99: s.take.quantile_ms(0.99).unwrap_or(0.0),
        })
        .collect();
    match plot::draw(&plot, &points, &machine) {
        Ok(()) => println!("plot: {}", plot.display()),
        Err(e) => println!("plot: not drawn: {e}"),
    }

    let sync_seconds = run_sync(&http, sync_orders).await;
    let summary = steps
        .iter()
        .find(|s| s.offered == rate)
        .expect("the summary rate was run");
    print_step(summary);
    println!("sync orders={sync_orders} seconds={sync_seconds:.2}");
}
