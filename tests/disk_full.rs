//! A node whose disk stops taking writes: it refuses what it cannot make
//! durable (503 saying the storage fails and why), shows the reason in its
//! status, recovers by itself once writes work again, and loses nothing it
//! acknowledged — also across a restart.
//!
//! The disk "fills up" deterministically and for any user: the node runs
//! with a file-size limit (`RLIMIT_FSIZE`) at the size of its database, so
//! the write that would grow the file fails with `EFBIG` (SIGXFSZ is
//! ignored in the child, or the kernel would kill it instead). Raising the
//! limit on the live process with `prlimit` is the disk getting space back.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Child;

use common::{eventually, Captured, NodeOpts};
use peerbook::api::status::Status;
use serde_json::{json, Value};

/// A node started with a file-size limit.
struct Limited {
    child: Option<Child>,
    stdout: Captured,
    stderr: Captured,
    opts: NodeOpts,
    http: reqwest::Client,
}

impl Limited {
    fn start(opts: NodeOpts, max_file_bytes: u64) -> Limited {
        let mut cmd = opts.command();
        let mut current = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut current) },
            0
        );
        let limit = libc::rlimit {
            rlim_cur: max_file_bytes,
            rlim_max: current.rlim_max,
        };
        // SAFETY: between fork and exec this only calls async-signal-safe
        // functions (signal, setrlimit) on the child's own state.
        unsafe {
            cmd.pre_exec(move || {
                if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let (child, stdout, stderr) = common::spawn_captured(cmd);
        Limited {
            child: Some(child),
            stdout,
            stderr,
            opts,
            http: reqwest::Client::new(),
        }
    }

    fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout.text(),
            self.stderr.text()
        )
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.opts.api_port)
    }

    async fn status(&self) -> Option<Status> {
        let r = self
            .http
            .get(self.url("/api/v1/status"))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    async fn post(&self, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/api/v1/orders"))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /api/v1/orders: {e}\n{}", self.output()));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Give the disk its space back: lift the limit on the live process
    /// (to the hard limit, which it was started with).
    fn lift_limit(&self) {
        let pid = self.child.as_ref().expect("running").id() as libc::pid_t;
        let mut current = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit on our own child, reading into a struct we own.
        let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, std::ptr::null(), &mut current) };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
        let lifted = libc::rlimit {
            rlim_cur: current.rlim_max,
            rlim_max: current.rlim_max,
        };
        // SAFETY: as above, with a new limit we own.
        let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &lifted, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    }

    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let status = child.wait().expect("wait");
        assert!(status.success(), "{status:?}\n{}", self.output());
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn buy(price: usize) -> Value {
    json!({"market": "BTC-USD", "side": "buy", "price": price.to_string(), "quantity": "1"})
}

#[tokio::test]
async fn a_full_disk_refuses_orders_says_why_recovers_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let opts = NodeOpts::new("disk", dir.path());
    let mut acked: Vec<String> = Vec::new();

    // A node with a database that has something in it.
    let mut node = opts.clone().start();
    node.ready().await;
    for p in 1..=5 {
        let o = node.place(buy(p)).await;
        acked.push(o["id"].as_str().unwrap().to_string());
    }
    node.stop();
    drop(node);
    let db = dir.path().join(peerbook::store::DB_FILE);
    let size = std::fs::metadata(&db).unwrap().len();

    // The same node on a disk with no room to grow its database.
    let mut node = Limited::start(opts.clone(), size);
    eventually(
        "the limited node to be up",
        || node.output(),
        || async { node.status().await.filter(|s| !s.listen_addrs.is_empty()) },
    )
    .await;
    let mut refusal = None;
    for p in 100..10_000 {
        let (status, body) = node.post(&buy(p)).await;
        match status {
            201 => acked.push(body["id"].as_str().unwrap().to_string()),
            503 => {
                refusal = Some(body);
                break;
            }
            other => panic!("order at {p}: {other} {body}\n{}", node.output()),
        }
    }
    let refusal = refusal
        .unwrap_or_else(|| panic!("the database never outgrew {size} bytes\n{}", node.output()));
    assert_eq!(refusal["error"]["code"], "storage_unavailable", "{refusal}");
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("storage is failing") && message.contains("File too large"),
        "{message}"
    );

    // It says why, in its status and its log, and keeps refusing.
    let status = node.status().await.expect("status while degraded");
    let reason = status.degraded.expect("degraded while the disk is full");
    assert!(reason.contains("File too large"), "{reason}");
    // The log line may still be on its way through the pipe (every order
    // placed is logged too).
    eventually(
        "the failed write in the log",
        || node.output(),
        || async {
            node.stderr
                .text()
                .contains("a write to the database failed")
                .then_some(())
        },
    )
    .await;
    let metrics = node
        .http
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("\npeerbook_degraded 1\n"), "{metrics}");
    let (again, body) = node.post(&buy(20_000)).await;
    assert_eq!(again, 503, "{body}");

    // Space again: it recovers by itself and takes orders.
    node.lift_limit();
    eventually(
        "the node to recover from the full disk",
        || node.output(),
        || async { node.status().await.filter(|s| s.degraded.is_none()) },
    )
    .await;
    let (placed, body) = node.post(&buy(30_000)).await;
    assert_eq!(placed, 201, "{body}\n{}", node.output());
    acked.push(body["id"].as_str().unwrap().to_string());
    for id in &acked {
        let r = node
            .http
            .get(node.url(&format!("/api/v1/orders/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{id} after recovery\n{}", node.output());
    }
    node.stop();

    // And after a restart: exactly what was acknowledged.
    let node = opts.start();
    node.ready().await;
    let list = node.get_json("/api/v1/orders?limit=10000").await;
    let mut listed: Vec<String> = list
        .body
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    acked.sort();
    assert_eq!(listed, acked, "{}", node.output());
    assert!(acked.len() > 6, "the disk filled only after {acked:?}");
}
