//! Real `peerbook node` processes on loopback, and what the benchmark reads
//! from them: status, books, `/metrics`, and the kernel's view of their
//! memory and CPU time.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use peerbook::api::peers::Peer;
use peerbook::api::status::Status;
use serde::Deserialize;

/// How long a node may take to come up, and a cluster to connect.
const START_DEADLINE: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// One running node; killed when dropped.
pub struct NodeProc {
    pub name: String,
    pub api: String,
    pub p2p: String,
    pub peer_id: String,
    dir: PathBuf,
    child: Child,
}

/// The part of `GET /api/v1/book/{market}` the benchmark needs.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BookHead {
    pub digest: String,
    pub orders: usize,
}

/// The nodes' log filter: `PEERBOOK_BENCH_NODE_LOG`, or warnings only (a
/// node's logging is CPU the benchmark would charge to the network).
fn node_log_filter() -> String {
    std::env::var("PEERBOOK_BENCH_NODE_LOG").unwrap_or_else(|_| "warn".to_string())
}

impl NodeProc {
    /// Start `peerbook node` with its data in `root/<name>`; returns once
    /// its API answers.
    pub async fn start(
        http: &reqwest::Client,
        root: &Path,
        name: &str,
        bootstrap: Option<&str>,
    ) -> NodeProc {
        Self::start_with(http, root, name, bootstrap, &[]).await
    }

    /// [`NodeProc::start`] with extra environment variables.
    pub async fn start_with(
        http: &reqwest::Client,
        root: &Path,
        name: &str,
        bootstrap: Option<&str>,
        env: &[(String, String)],
    ) -> NodeProc {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("cannot create the node's data dir");
        let (p2p_port, api_port) = (free_port(), free_port());
        let log = |what: &str| File::create(dir.join(what)).expect("cannot create a log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_peerbook"));
        cmd.arg("node")
            .arg("--data-dir")
            .arg(&dir)
            .arg("--listen")
            .arg(format!("/ip4/127.0.0.1/tcp/{p2p_port}"))
            .arg("--api")
            .arg(format!("127.0.0.1:{api_port}"))
            .arg("--no-mdns")
            .env("RUST_LOG", node_log_filter())
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"));
        if let Some(b) = bootstrap {
            cmd.arg("--bootstrap").arg(b);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("cannot start peerbook");
        let api = format!("http://127.0.0.1:{api_port}");
        let mut node = NodeProc {
            name: name.to_string(),
            api,
            p2p: String::new(),
            peer_id: String::new(),
            dir,
            child,
        };
        let started = Instant::now();
        loop {
            if let Ok(Ok(s)) = node.get::<Status>(http, "/api/v1/status").await {
                if !s.listen_addrs.is_empty() {
                    node.p2p = format!("/ip4/127.0.0.1/tcp/{p2p_port}/p2p/{}", s.peer_id);
                    node.peer_id = s.peer_id;
                    return node;
                }
            }
            node.check_alive();
            assert!(
                started.elapsed() < START_DEADLINE,
                "{} did not come up\n{}",
                node.name,
                node.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GET a JSON document from the node's API.
    pub async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        http: &reqwest::Client,
        path: &str,
    ) -> Result<Result<T, String>, reqwest::Error> {
        let r = http.get(format!("{}{path}", self.api)).send().await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            return Ok(Err(format!("{status}: {text}")));
        }
        Ok(serde_json::from_str(&text).map_err(|e| format!("{e}: {text}")))
    }

    pub async fn book(&self, http: &reqwest::Client) -> Option<BookHead> {
        match self
            .get::<BookHead>(http, "/api/v1/book/BTC-USD?depth=1")
            .await
        {
            Ok(Ok(b)) => Some(b),
            _ => None,
        }
    }

    pub async fn connected_peers(&self, http: &reqwest::Client) -> usize {
        match self.get::<Vec<Peer>>(http, "/api/v1/peers").await {
            Ok(Ok(peers)) => peers.iter().filter(|p| p.connected).count(),
            _ => 0,
        }
    }

    pub async fn metrics(&self, http: &reqwest::Client) -> String {
        let r = http
            .get(format!("{}/metrics", self.api))
            .send()
            .await
            .expect("cannot read /metrics");
        r.text().await.expect("cannot read /metrics")
    }

    /// Peak resident memory of the process so far, in MiB.
    pub fn peak_rss_mb(&self) -> f64 {
        self.status_mb("VmHWM:")
    }

    /// Resident memory of the process now, in MiB.
    #[allow(dead_code)] // the soak benchmark's
    pub fn rss_mb(&self) -> f64 {
        self.status_mb("VmRSS:")
    }

    fn status_mb(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// CPU time (user + system) the process has used, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        stat_cpu(&format!("/proc/{}/stat", self.child.id())).map_or(0.0, |(_, secs)| secs)
    }

    /// CPU time by thread name (tokio workers, the store writer, …), in
    /// seconds: where a node spends its time.
    pub fn cpu_by_thread(&self) -> Vec<(String, f64)> {
        let mut by: Vec<(String, f64)> = Vec::new();
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id()));
        for task in tasks.into_iter().flatten().flatten() {
            let Some((name, secs)) = stat_cpu(&task.path().join("stat").to_string_lossy()) else {
                continue;
            };
            // Numbered threads of one pool count as one.
            let name = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
            match by.iter_mut().find(|(n, _)| n == name) {
                Some(e) => e.1 += secs,
                None => by.push((name.to_string(), secs)),
            }
        }
        by.sort_by(|a, b| b.1.total_cmp(&a.1));
        by
    }

    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status})\n{}", self.name, self.logs());
        }
    }

    pub fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "--- {} stdout\n{}--- {} stderr\n{}",
            self.name,
            read("stdout.log"),
            self.name,
            read("stderr.log")
        )
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's or thread's name and CPU time (user + system, seconds)
/// from its `/proc/.../stat`.
fn stat_cpu(path: &str) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(').map_or("?", |(_, n)| n).to_string();
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after the name.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) if hz > 0.0 => Some((name, (u + s) / hz)),
        _ => None,
    }
}

/// `n` nodes, all bootstrapped to the first, every one connected to all
/// the others.
pub async fn cluster(http: &reqwest::Client, root: &Path, n: usize) -> Vec<NodeProc> {
    let first = NodeProc::start(http, root, "node1", None).await;
    let boot = first.p2p.clone();
    let mut nodes = vec![first];
    for i in 2..=n {
        nodes.push(NodeProc::start(http, root, &format!("node{i}"), Some(&boot)).await);
    }
    let started = Instant::now();
    for node in &mut nodes {
        while node.connected_peers(http).await < n - 1 {
            node.check_alive();
            assert!(
                started.elapsed() < START_DEADLINE,
                "{} did not connect to the others\n{}",
                node.name,
                node.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    nodes
}

/// Wait until every node's book has the same digest twice in a row;
/// how long it took, or `None` after `deadline`.
pub async fn converge(
    http: &reqwest::Client,
    nodes: &[NodeProc],
    deadline: Duration,
) -> Option<Duration> {
    converge_late(http, nodes, deadline).await.0
}

/// [`converge`], and of the nodes whose book changed last, when each last
/// changed (the latest three, latest first): which replicas were behind
/// and how long they took to catch up.
pub async fn converge_late(
    http: &reqwest::Client,
    nodes: &[NodeProc],
    deadline: Duration,
) -> (Option<Duration>, Vec<(usize, Duration)>) {
    let started = Instant::now();
    let mut heads: Vec<Option<BookHead>> = vec![None; nodes.len()];
    let mut changed = vec![Duration::ZERO; nodes.len()];
    let mut agreed: Option<BookHead> = None;
    while started.elapsed() < deadline {
        for (i, n) in nodes.iter().enumerate() {
            let h = n.book(http).await;
            if h != heads[i] {
                heads[i] = h;
                changed[i] = started.elapsed();
            }
        }
        let agree = heads[0].is_some() && heads.iter().all(|h| *h == heads[0]);
        if agree && agreed == heads[0] {
            let mut late: Vec<(usize, Duration)> = changed.iter().copied().enumerate().collect();
            late.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
            late.truncate(3);
            return (Some(started.elapsed()), late);
        }
        agreed = if agree { heads[0].clone() } else { None };
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (None, Vec::new())
}
