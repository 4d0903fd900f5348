//! Test harness for real `peerbook` processes on loopback: start a node with
//! its own data dir and free ports, talk to its API, stop it with a signal,
//! and kill whatever is left when the test ends (also when it fails).
//!
//! Nothing here waits a fixed time: every wait polls a condition with a
//! generous deadline (the machine is shared), and a timeout panics with the
//! node's output so the failure explains itself.

#![allow(dead_code)]

pub mod openmetrics;

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerbook::api::peers::Peer;
use peerbook::api::status::Status;

/// How long any condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(90);

const POLL: Duration = Duration::from_millis(150);

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_peerbook")
}

/// A port nobody listens on right now.
///
/// Not a port the kernel hands out (bind to port 0): that one is from the
/// ephemeral range, where the nodes' own outgoing connections take their
/// source ports, and two tests of one binary could be given the same one
/// (a node then failed to bind its API and the test talked to another
/// test's node). Ports come from below the ephemeral range (32768 and up),
/// counted, so one test binary never hands out a port twice, and offset by
/// the process id; one that is taken is skipped.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let base = (std::process::id() % 80) * 150;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (base + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}

/// `peerbook` with a clean environment: no inherited `PEERBOOK_*` variables.
pub fn command() -> Command {
    let mut cmd = Command::new(bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PEERBOOK_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info,peerbook=debug");
    cmd
}

/// Output collected from a child's pipe by a background thread.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn collect(pipe: impl Read + Send + 'static) -> Self {
        let captured = Captured::default();
        let sink = captured.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        captured
    }

    pub fn text(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// A command that is expected to exit on its own: its status and output.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` to its end (killing it and failing the test after the deadline).
pub fn run_to_exit(cmd: Command) -> Finished {
    let (mut child, stdout, stderr) = spawn_captured(cmd);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "peerbook did not exit in time\nstdout:\n{}\nstderr:\n{}",
                stdout.text(),
                stderr.text()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Let the reader threads drain the pipes.
    let drained = Instant::now();
    while drained.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
        if Arc::strong_count(&stdout.0) == 1 && Arc::strong_count(&stderr.0) == 1 {
            break;
        }
    }
    Finished {
        status,
        stdout: stdout.text(),
        stderr: stderr.text(),
    }
}

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeOpts {
    pub name: String,
    pub data_dir: PathBuf,
    pub p2p_port: u16,
    pub api_port: u16,
    pub api_host: String,
    pub bootstrap: Vec<String>,
    pub mdns: bool,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl NodeOpts {
    /// A node on free loopback ports with mDNS off.
    pub fn new(name: &str, data_dir: &Path) -> Self {
        NodeOpts {
            name: name.to_string(),
            data_dir: data_dir.to_path_buf(),
            p2p_port: free_port(),
            api_port: free_port(),
            api_host: "127.0.0.1".into(),
            bootstrap: Vec::new(),
            mdns: false,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn bootstrap(mut self, addr: impl Into<String>) -> Self {
        self.bootstrap.push(addr.into());
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = command();
        cmd.arg("node")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(format!("/ip4/127.0.0.1/tcp/{}", self.p2p_port))
            .arg("--api")
            .arg(format!("{}:{}", self.api_host, self.api_port));
        if !self.mdns {
            cmd.arg("--no-mdns");
        }
        for b in &self.bootstrap {
            cmd.arg("--bootstrap").arg(b);
        }
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Start the node (it may still be starting up when this returns).
    pub fn start(self) -> Node {
        let (child, stdout, stderr) = spawn_captured(self.command());
        Node {
            child: Some(child),
            stdout,
            stderr,
            http: reqwest::Client::new(),
            opts: self,
        }
    }
}

/// A running `peerbook node`; killed when dropped.
pub struct Node {
    child: Option<Child>,
    stdout: Captured,
    stderr: Captured,
    http: reqwest::Client,
    pub opts: NodeOpts,
}

impl Node {
    /// `/ip4/127.0.0.1/tcp/<port>`: the node's address without peer id.
    pub fn addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.opts.p2p_port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.opts.api_port)
    }

    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.opts.api_port))
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Everything the node said, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- {} stdout ---\n{}--- {} stderr ---\n{}",
            self.opts.name,
            self.stdout(),
            self.opts.name,
            self.stderr()
        )
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Option<T> {
        let response = self.http.get(self.url(path)).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// `/api/v1/status`, if the node answers.
    pub async fn status(&self) -> Option<Status> {
        self.get("/api/v1/status").await
    }

    /// `/api/v1/peers`, if the node answers.
    pub async fn peers(&self) -> Option<Vec<Peer>> {
        self.get("/api/v1/peers").await
    }

    /// Wait until the API answers and the node listens; its status then.
    pub async fn ready(&self) -> Status {
        let what = format!("{} to be up", self.opts.name);
        eventually(
            &what,
            || self.output(),
            || async { self.status().await.filter(|s| !s.listen_addrs.is_empty()) },
        )
        .await
    }

    /// Wait until the API of a node with a token answers `token`'s status.
    pub async fn ready_with_token(&self, token: &str) {
        eventually(
            "the API to answer",
            || self.output(),
            || async {
                self.http
                    .get(self.url("/api/v1/status"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| ())
            },
        )
        .await
    }

    /// Wait until the node is connected to `peer_id`.
    pub async fn connected_to(&self, peer_id: &str) {
        let what = format!("{} to be connected to {peer_id}", self.opts.name);
        eventually(
            &what,
            || self.output(),
            || async {
                let peers = self.peers().await?;
                peers
                    .iter()
                    .any(|p| p.peer_id == peer_id && p.connected)
                    .then_some(())
            },
        )
        .await
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }

    /// Send `signal` and wait for the process to exit; its exit status.
    pub fn stop_with(&mut self, signal: i32) -> ExitStatus {
        let Some(pid) = self.pid() else {
            panic!("{} is not running", self.opts.name)
        };
        // SAFETY: kill(2) on the pid of our own child, which we have not reaped.
        unsafe {
            libc::kill(pid, signal);
        }
        let started = Instant::now();
        let child = self.child.as_mut().expect("child");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if started.elapsed() > DEADLINE {
                panic!("{} did not stop\n{}", self.opts.name, self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Poll `check` until it returns `Some`, or fail after [`DEADLINE`] saying
/// what was awaited and showing `context()` (usually node output).
pub async fn eventually<T, F, Fut>(what: &str, context: impl Fn() -> String, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if started.elapsed() > DEADLINE {
            panic!("timed out waiting for {what}\n{}", context());
        }
        tokio::time::sleep(POLL).await;
    }
}

// ------------------------------------------------------------ API helpers
// (for the api_*, cli_* and browser tests)

/// An HTTP answer: status and body (JSON when it is JSON, else a string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub content_type: String,
}

impl Answer {
    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Node {
    /// `http://127.0.0.1:<api port>`, what `--api` takes.
    pub fn api_base(&self) -> String {
        self.url("")
    }

    /// Send a request with an optional JSON body and bearer token.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        token: Option<&str>,
    ) -> Answer {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let response = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.output()));
        answer(response).await
    }

    pub async fn get_json(&self, path: &str) -> Answer {
        self.request(reqwest::Method::GET, path, None, None).await
    }

    /// The Prometheus text of `GET /metrics`; panics unless it answers 200.
    pub async fn metrics(&self) -> String {
        let r = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    /// Place an order; panics unless the node answers 201.
    pub async fn place(&self, body: serde_json::Value) -> serde_json::Value {
        let a = self
            .request(reqwest::Method::POST, "/api/v1/orders", Some(&body), None)
            .await;
        assert_eq!(a.status, 201, "placing {body}: {a:?}\n{}", self.output());
        a.body
    }
}

/// Read a response into an [`Answer`].
pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Answer {
        status,
        body,
        content_type,
    }
}

/// Two nodes, B bootstrapping to A, connected to each other.
pub async fn connected_pair(dir_a: &Path, dir_b: &Path) -> (Node, Node) {
    let a = NodeOpts::new("A", dir_a).start();
    let a_id = a.ready().await.peer_id;
    let b = NodeOpts::new("B", dir_b)
        .bootstrap(format!("{}/p2p/{a_id}", a.addr()))
        .start();
    let b_id = b.ready().await.peer_id;
    b.connected_to(&a_id).await;
    a.connected_to(&b_id).await;
    (a, b)
}

/// Start `cmd` with its output collected (for commands a test stops
/// itself, e.g. with a signal): the child, its stdout and its stderr.
pub fn spawn_captured(mut cmd: Command) -> (Child, Captured, Captured) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start peerbook");
    let stdout = Captured::collect(child.stdout.take().expect("stdout"));
    let stderr = Captured::collect(child.stderr.take().expect("stderr"));
    (child, stdout, stderr)
}

/// The value of a sample line `name value` (or `name{labels} value`, with
/// the labels in `series`) of Prometheus text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
