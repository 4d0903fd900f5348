//! A node that runs for months, squeezed into minutes: `cargo bench --bench
//! soak`.
//!
//! One release node (or `PEERBOOK_SOAK_NODES` of them, connected) on
//! loopback under a sustained place-and-cancel load: each node's client
//! places a batch of 500 orders and cancels them, as fast as the node
//! answers, for `PEERBOOK_SOAK_SECS` (600). The book is empty the whole
//! time, so everything the node keeps beyond a few orders is history. The
//! retention is `PEERBOOK_SOAK_RETENTION_SECS` (60), so the store reaches
//! its steady size within the run. Every `PEERBOOK_SOAK_EVERY_SECS` (30) it
//! prints, per node:
//!
//! ```text
//! soak t=<s> node=<n> pairs=<total> pairs_per_sec=<n> rss_mb=<n> store_file_mb=<n> store_data_mb=<n> commit_p99_ms=<n> pruned_orders=<n>
//! ```
//!
//! and at the end the growth of RSS over the last half of the run, then it
//! kills the first node (SIGKILL) and restarts it on the same data:
//!
//! ```text
//! soak rss_growth_last_half_pct=<n> store_file_mb=<n>
//! soak restart_to_api_ms=<n> rss_after_restart_mb=<n> open_orders=<n>
//! ```
//!
//! and draws `target/soak.png` (RSS and store size against time).

#[path = "cluster/hist.rs"]
#[allow(dead_code)]
mod hist;
#[path = "cluster/node.rs"]
#[allow(dead_code)]
mod node;
#[path = "cluster/plot.rs"]
#[allow(dead_code)]
mod plot;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hist::{sample, Buckets};
use node::NodeProc;
use plotters::prelude::*;
use serde_json::{json, Value};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Place `n` orders and cancel them; the pairs done.
async fn round(http: &reqwest::Client, api: &str, n: usize) -> u64 {
    let place: Vec<Value> = (0..n)
        .map(|i| {
            json!({"market": "BTC-USD", "side": "buy",
                   "price": format!("{}", 100 + i % 50), "quantity": "0.1"})
        })
        .collect();
    let Ok(r) = http
        .post(format!("{api}/api/v1/orders/batch"))
        .json(&json!({"place": place, "cancel": []}))
        .send()
        .await
    else {
        return 0;
    };
    let Ok(body) = r.json::<Value>().await else {
        return 0;
    };
    let ids: Vec<Value> = body["placed"]
        .as_array()
        .map(|a| a.iter().map(|i| i["order"]["id"].clone()).collect())
        .unwrap_or_default();
    let n = ids.len() as u64;
    let _ = http
        .post(format!("{api}/api/v1/orders/batch"))
        .json(&json!({"place": [], "cancel": ids}))
        .send()
        .await;
    n
}

struct Sample {
    t: f64,
    rss: f64,
    file: f64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs = env("PEERBOOK_SOAK_SECS", 600);
    let every = env("PEERBOOK_SOAK_EVERY_SECS", 30);
    let n_nodes = env("PEERBOOK_SOAK_NODES", 1) as usize;
    let retention = env("PEERBOOK_SOAK_RETENTION_SECS", 60);
    // The nodes inherit these.
    std::env::set_var("PEERBOOK_STORE_RETENTION_SECS", retention.to_string());
    std::env::set_var("PEERBOOK_STORE_PRUNE_INTERVAL_SECS", "5");
    let root = tempfile::tempdir().expect("a temporary dir");
    let http = reqwest::Client::new();
    let nodes = if n_nodes == 1 {
        vec![NodeProc::start(&http, root.path(), "node1", None).await]
    } else {
        node::cluster(&http, root.path(), n_nodes).await
    };
    println!("soak nodes={n_nodes} secs={secs} retention_secs={retention} every_secs={every}");
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Vec<Arc<AtomicU64>> = (0..n_nodes).map(|_| Arc::default()).collect();
    let mut clients = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let (http, api, stop, count) =
            (http.clone(), n.api.clone(), stop.clone(), counts[i].clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                count.fetch_add(round(&http, &api, 500).await, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    let mut last_pairs = vec![0u64; n_nodes];
    let mut last_commit: Vec<Buckets> = vec![Buckets::default(); n_nodes];
    let mut samples: Vec<Sample> = Vec::new();
    let mut last_t = 0.0;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(every)).await;
        let t = started.elapsed().as_secs_f64();
        for (i, n) in nodes.iter().enumerate() {
            let pairs = counts[i].load(Ordering::Relaxed);
            let rate = (pairs - last_pairs[i]) as f64 / (t - last_t);
            last_pairs[i] = pairs;
            let m = n.metrics(&http).await;
            let commit = Buckets::parse(&m, "peerbook_store_commit_seconds");
            let p99 = commit
                .minus(&last_commit[i])
                .quantile_ms(0.99)
                .unwrap_or(0.0);
            last_commit[i] = commit;
            let mb = |name: &str| sample(&m, name).unwrap_or(0.0) / (1 << 20) as f64;
            let (file, data) = (
                mb("peerbook_store_file_bytes"),
                mb("peerbook_store_stored_bytes"),
            );
            let pruned = sample(&m, "peerbook_store_pruned_total{kind=\"orders\"}").unwrap_or(0.0);
            let rss = n.rss_mb();
            println!(
                "soak t={t:.0} node={} pairs={pairs} pairs_per_sec={rate:.0} rss_mb={rss:.1} store_file_mb={file:.1} store_data_mb={data:.1} commit_p99_ms={p99:.2} pruned_orders={pruned:.0}",
                i + 1
            );
            if i == 0 {
                samples.push(Sample { t, rss, file });
            }
        }
        last_t = t;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let half: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= secs as f64 / 2.0)
        .collect();
    if let (Some(first), Some(last)) = (half.first(), half.last()) {
        let growth = (last.rss - first.rss) / first.rss.max(1.0) * 100.0;
        println!(
            "soak rss_growth_last_half_pct={growth:.1} store_file_mb={:.1}",
            last.file
        );
    }
    // Kill the first node and bring it back on the same data.
    let mut nodes = nodes;
    let first = nodes.remove(0);
    let name = first.name.clone();
    drop(first);
    let t = Instant::now();
    let again = NodeProc::start(&http, root.path(), &name, None).await;
    let took = t.elapsed();
    let open = again
        .get::<Vec<Value>>(&http, "/api/v1/orders?status=open&limit=10000")
        .await
        .ok()
        .and_then(Result::ok)
        .map_or(0, |v| v.len());
    println!(
        "soak restart_to_api_ms={} rss_after_restart_mb={:.1} open_orders={open}",
        took.as_millis(),
        again.rss_mb()
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/soak.png");
    match draw(&path, &samples) {
        Ok(()) => println!("soak plot={}", path.display()),
        Err(e) => eprintln!("soak: no plot: {e}"),
    }
}

/// A line of the chart: its name, colour and value.
type Series = (&'static str, RGBColor, fn(&Sample) -> f64);

/// RSS and store file size of the first node against time.
fn draw(path: &std::path::Path, samples: &[Sample]) -> Result<(), String> {
    plot::load_font()?;
    let root = BitMapBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let t_max = samples.last().map_or(1.0, |s| s.t);
    let y_max = samples
        .iter()
        .map(|s| s.rss.max(s.file))
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption("soak: one node, place and cancel", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("MiB")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    let series: [Series; 2] = [
        ("resident memory", RGBColor(200, 60, 40), |s| s.rss),
        ("database file", RGBColor(40, 90, 190), |s| s.file),
    ];
    for (name, colour, f) in series {
        chart
            .draw_series(LineSeries::new(
                samples.iter().map(|s| (s.t, f(s))),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
