//! `POST /api/v1/orders/batch` against real nodes on loopback: every item
//! answered on its own (a bad one refuses only itself), cancels in the same
//! request, the limits of a batch; and the latency histograms in `/metrics`
//! filling up as orders replicate and take across two nodes.

mod common;

use common::{connected_pair, eventually, sample, NodeOpts};
use reqwest::Method;
use serde_json::{json, Value};

fn order(side: &str, price: &str, quantity: &str) -> Value {
    json!({"market": "BTC-USD", "side": side, "price": price, "quantity": quantity})
}

#[tokio::test]
async fn a_batch_answers_every_item_and_a_bad_item_refuses_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("batch", dir.path()).start();
    node.ready().await;
    let keep = node.place(order("buy", "90", "1")).await;
    let keep_id = keep["id"].as_str().unwrap().to_string();
    let (me, _) = keep_id.split_once('/').unwrap();
    let missing = format!("{me}/999999");

    let answer = node
        .request(
            Method::POST,
            "/api/v1/orders/batch",
            Some(&json!({
                "place": [
                    order("buy", "95", "0.5"),
                    {"market": "BTC-USD", "side": "up", "price": "1", "quantity": "1"},
                    order("sell", "105", "2"),
                    {"market": "NOPE", "side": "buy", "price": "1", "quantity": "1"},
                    {"market": "BTC-USD", "side": "buy", "price": "1", "quantity": "1", "extra": 1},
                ],
                "cancel": [keep_id, missing, "not-an-id"],
            })),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let placed = answer.body["placed"].as_array().unwrap();
    let statuses: Vec<u64> = placed
        .iter()
        .map(|i| i["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 400, 201, 404, 400], "{placed:?}");
    assert_eq!(placed[0]["order"]["status"], "open");
    assert_eq!(placed[0]["order"]["price"], "95");
    assert_eq!(placed[1]["error"]["code"], "bad_value");
    assert!(
        placed[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("up"),
        "{placed:?}"
    );
    assert_eq!(placed[3]["error"]["code"], "unknown_market");
    assert_eq!(placed[4]["error"]["code"], "bad_body");
    assert!(
        placed[4]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("extra"),
        "{placed:?}"
    );
    let cancelled = answer.body["cancelled"].as_array().unwrap();
    assert_eq!(cancelled[0]["status"], 200);
    assert_eq!(cancelled[0]["order"]["status"], "cancelled");
    assert_eq!(cancelled[1]["status"], 404, "{cancelled:?}");
    assert_eq!(cancelled[2]["status"], 400, "{cancelled:?}");

    // Exactly the two good orders rest, and the cancelled one is gone.
    let open = node.get_json("/api/v1/orders?status=open").await;
    let mut prices: Vec<String> = open
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["price"].as_str().unwrap().to_string())
        .collect();
    prices.sort();
    assert_eq!(prices, ["105", "95"]);
}

#[tokio::test]
async fn a_batch_that_is_empty_too_large_or_not_json_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("batch-limits", dir.path()).start();
    node.ready().await;

    let empty = node
        .request(Method::POST, "/api/v1/orders/batch", Some(&json!({})), None)
        .await;
    assert_eq!(empty.status, 400, "{empty:?}");
    assert_eq!(empty.code(), "bad_body");

    let many: Vec<Value> = (0..1001).map(|_| order("buy", "1", "1")).collect();
    let big = node
        .request(
            Method::POST,
            "/api/v1/orders/batch",
            Some(&json!({ "place": many })),
            None,
        )
        .await;
    assert_eq!(big.status, 400, "{big:?}");
    assert_eq!(big.code(), "batch_too_large");
    assert!(big.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1000"));

    let wrong = node
        .request(
            Method::POST,
            "/api/v1/orders/batch",
            Some(&json!({ "place": "everything" })),
            None,
        )
        .await;
    assert_eq!(wrong.status, 400, "{wrong:?}");

    let none = node.get_json("/api/v1/orders").await;
    assert_eq!(none.body.as_array().unwrap().len(), 0, "nothing was placed");
}

/// The count of a histogram in the Prometheus text of `/metrics`.
fn histogram_count(metrics: &str, name: &str) -> u64 {
    sample(metrics, &format!("{name}_count")).unwrap_or_else(|| panic!("no {name} in /metrics"))
        as u64
}

#[tokio::test]
async fn replication_and_take_latency_are_measured_in_metrics() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = connected_pair(a.path(), b.path()).await;
    assert_eq!(
        histogram_count(&b.metrics().await, "peerbook_take_round_trip_seconds"),
        0
    );
    // One order first, to know gossip flows from A to B (an order that
    // reaches B by sync instead is not a replication delay).
    a.place(order("sell", "99", "1")).await;
    eventually(
        "A's first order in B's book",
        || b.output(),
        || async {
            let book = b.get_json("/api/v1/book/BTC-USD").await;
            (book.body["asks"].as_array().map_or(0, |l| l.len()) == 1).then_some(())
        },
    )
    .await;
    let before = histogram_count(&b.metrics().await, "peerbook_replication_delay_seconds");

    let resting: Vec<Value> = (0..20)
        .map(|i| order("sell", &format!("{}", 100 + i), "1"))
        .collect();
    let placed = a
        .request(
            Method::POST,
            "/api/v1/orders/batch",
            Some(&json!({ "place": resting })),
            None,
        )
        .await;
    assert_eq!(placed.status, 200, "{placed:?}");
    eventually(
        "20 replication delays measured on B",
        || b.output(),
        || async {
            let m = b.metrics().await;
            (histogram_count(&m, "peerbook_replication_delay_seconds") >= before + 20).then_some(())
        },
    )
    .await;

    // B takes one of A's orders: B measures the take's round trip.
    let taken = b
        .place(json!({"market": "BTC-USD", "side": "buy", "price": "99", "quantity": "1", "time_in_force": "ioc"}))
        .await;
    assert_eq!(taken["status"], "filled", "{taken}");
    let after = b.metrics().await;
    assert!(histogram_count(&after, "peerbook_take_round_trip_seconds") >= 1);
    assert!(
        after.contains("peerbook_take_round_trip_seconds_bucket{le=\"0.005\"}"),
        "the buckets are in seconds"
    );
}
