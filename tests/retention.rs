//! A node that runs for months: what it holds in memory and on disk is
//! what is open plus a bounded window, and the rest is still answered from
//! its database within the retention.
//!
//! - After a history many times the in-memory window, a done order long out
//!   of memory is served by id with its fills, pages of orders walk the
//!   whole history, a cancel of it is 409, and a restart restores exactly
//!   the open orders.
//! - With a retention of a few seconds, done orders and the tape are pruned
//!   while the node trades: an old id is 404 saying it is past retention,
//!   the pruning shows in /metrics, and open orders are untouched.
//! - Killed with SIGKILL while it prunes and takes orders, the node loses
//!   nothing it acknowledged.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{eventually, sample, Node, NodeOpts};
use reqwest::Method;
use serde_json::{json, Value};

fn order(side: &str, price: &str, quantity: &str) -> Value {
    json!({"market": "BTC-USD", "side": side, "price": price, "quantity": quantity})
}

/// Place and cancel `n` orders in one batch each way; their ids.
async fn churn(node: &Node, n: usize, price: &str) -> Vec<String> {
    let place: Vec<Value> = (0..n).map(|_| order("buy", price, "0.1")).collect();
    let a = node
        .request(
            Method::POST,
            "/api/v1/orders/batch",
            Some(&json!({"place": place, "cancel": []})),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let ids: Vec<String> = a.body["placed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["order"]["id"].as_str().unwrap().to_string())
        .collect();
    let a = node
        .request(
            Method::POST,
            "/api/v1/orders/batch",
            Some(&json!({"place": [], "cancel": ids})),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    ids
}

/// The open orders: id -> remaining.
async fn open_orders(node: &Node) -> BTreeMap<String, String> {
    let a = node
        .get_json("/api/v1/orders?status=open&limit=10000")
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_string(),
                o["remaining"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_history_is_served_from_the_store_and_a_restart_restores_what_is_open() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    // A keeps only 20 done orders in memory.
    let a = NodeOpts::new("A", dirs[0].path())
        .env("PEERBOOK_ENGINE_RECENT_ORDERS", "20")
        .env("PEERBOOK_ENGINE_RECENT_FILLS", "20")
        .start();
    let a_id = a.ready().await.peer_id;
    let b = NodeOpts::new("B", dirs[1].path())
        .bootstrap(format!("{}/p2p/{a_id}", a.addr()))
        .start();
    b.ready().await;
    b.connected_to(&a_id).await;

    // A's first order fills against B: a done order with a fill.
    let sell = b.place(order("sell", "100", "0.5")).await;
    eventually(
        "A to hold B's sell",
        || a.output(),
        || async {
            let book = a.get_json("/api/v1/book/BTC-USD").await;
            (book.body["asks"].as_array().map(Vec::len) == Some(1)).then_some(())
        },
    )
    .await;
    let mut first = order("buy", "100", "0.2");
    first["time_in_force"] = json!("ioc");
    let filled = a.place(first).await;
    assert_eq!(filled["status"], "filled", "{filled}");
    let filled_id = filled["id"].as_str().unwrap().to_string();
    let fill_id = filled["fills"][0]["id"].as_str().unwrap().to_string();

    // Resting orders that stay open through all of it.
    let mut open = Vec::new();
    for p in ["90", "91", "92"] {
        open.push(
            a.place(order("buy", p, "0.3")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // A history twenty times the window.
    let mut history = Vec::new();
    for _ in 0..4 {
        history.extend(churn(&a, 100, "80").await);
    }

    // Long out of memory, still served, with its fill.
    let got = a.get_json(&format!("/api/v1/orders/{filled_id}")).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.body["status"], "filled");
    assert_eq!(got.body["fills"][0]["id"], fill_id.as_str());
    let old = &history[5];
    let got = a.get_json(&format!("/api/v1/orders/{old}")).await;
    assert_eq!(got.body["status"], "cancelled", "{got:?}");
    let again = a
        .request(Method::DELETE, &format!("/api/v1/orders/{old}"), None, None)
        .await;
    assert_eq!(again.status, 409, "{again:?}");
    // Pages of 50 walk every order the node ever had.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/orders?limit=50&before={c}"),
            None => "/api/v1/orders?limit=50".to_string(),
        };
        let page = a.get_json(&path).await;
        assert_eq!(page.status, 200, "{page:?}");
        let ids: Vec<String> = page
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect();
        if ids.is_empty() {
            break;
        }
        cursor = ids.last().cloned();
        seen.extend(ids);
    }
    assert_eq!(seen.len(), 1 + 3 + 400, "every order once");
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len());
    // The trades, beyond the in-memory window, from the tape.
    let trades = a.get_json("/api/v1/trades?limit=1000").await;
    assert!(trades
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == fill_id.as_str()));

    // A restart restores exactly what is open.
    let before = open_orders(&a).await;
    assert_eq!(before.keys().cloned().collect::<Vec<_>>(), {
        let mut o = open.clone();
        o.sort();
        o
    });
    let mut a = a;
    a.stop();
    let started = Instant::now();
    let a = NodeOpts {
        bootstrap: Vec::new(),
        ..a.opts.clone()
    }
    .start();
    a.ready().await;
    let took = started.elapsed();
    assert_eq!(open_orders(&a).await, before, "restarted in {took:?}");
    let status = a.get_json("/api/v1/status").await;
    assert_eq!(status.body["store"]["live_orders"], 3, "{}", status.body);
    assert_eq!(status.body["store"]["retention_secs"], 604_800);
    drop(sell);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_orders_past_retention_are_pruned_and_said_so_while_open_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("short", dir.path())
        .env("PEERBOOK_ENGINE_RECENT_ORDERS", "5")
        .env("PEERBOOK_STORE_RETENTION_SECS", "2")
        .env("PEERBOOK_STORE_PRUNE_INTERVAL_SECS", "1")
        .start();
    node.ready().await;
    let keep = node.place(order("buy", "50", "1")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let old = churn(&node, 50, "40").await;
    eventually(
        "the old orders to be pruned",
        || node.output(),
        || async {
            let m = node.metrics().await;
            (sample(&m, "peerbook_store_pruned_total{kind=\"orders\"}") >= Some(50.0)).then_some(())
        },
    )
    .await;
    let gone = node.get_json(&format!("/api/v1/orders/{}", old[0])).await;
    assert_eq!(gone.status, 404, "{gone:?}");
    let message = gone.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("past retention"), "{message}");
    // Open orders are never pruned, however old.
    let kept = node.get_json(&format!("/api/v1/orders/{keep}")).await;
    assert_eq!(kept.body["status"], "open", "{kept:?}");
    let m = node.metrics().await;
    assert!(
        sample(&m, "peerbook_store_prune_runs_total") >= Some(1.0),
        "{m}"
    );
    assert!(sample(&m, "peerbook_store_file_bytes") > Some(0.0));
    assert_eq!(
        sample(&m, "peerbook_store_rows{kind=\"live_orders\"}"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_while_it_prunes_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let opts = NodeOpts::new("killed", dir.path())
        .env("PEERBOOK_ENGINE_RECENT_ORDERS", "5")
        .env("PEERBOOK_STORE_RETENTION_SECS", "1")
        .env("PEERBOOK_STORE_PRUNE_INTERVAL_SECS", "1");
    let mut node = opts.clone().start();
    node.ready().await;
    let mut acked = Vec::new();
    let until = Instant::now() + Duration::from_secs(4);
    let mut round = 0;
    while Instant::now() < until {
        churn(&node, 40, "30").await;
        let o = node
            .place(order("buy", &format!("{}", 20 + round % 5), "0.1"))
            .await;
        acked.push(o["id"].as_str().unwrap().to_string());
        round += 1;
    }
    eventually(
        "pruning to have run",
        || node.output(),
        || async {
            let m = node.metrics().await;
            (sample(&m, "peerbook_store_pruned_total{kind=\"orders\"}") > Some(0.0)).then_some(())
        },
    )
    .await;
    churn(&node, 40, "30").await;
    node.stop_with(libc::SIGKILL);
    let node = opts.start();
    node.ready().await;
    let open = open_orders(&node).await;
    for id in &acked {
        assert!(
            open.contains_key(id),
            "{id} was acknowledged open and is gone"
        );
    }
    assert_eq!(open.len(), acked.len());
}
