//! The API's limits on a real node, set low through the environment: a body
//! over `api.max_body_bytes` (announced or chunked) gets 413 naming the
//! limit, one event stream more than `api.max_event_streams` gets 503, each
//! refusal is counted in `/metrics`, and nothing refused changes the book.
//! `/metrics` shows every engine counter, also those no test here bumps.

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::{Node, NodeOpts};
use serde_json::json;

async fn metrics(node: &Node) -> String {
    let r = node
        .http()
        .get(node.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The value of a sample line `name value`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// An order, padded with whitespace (still valid JSON) to `pad` more bytes.
fn order_body(pad: usize) -> Vec<u8> {
    let order = json!({"market": "BTC-USD", "side": "sell", "price": "100", "quantity": "1"});
    format!("{order}{}", " ".repeat(pad)).into_bytes()
}

#[tokio::test]
async fn each_api_limit_bites_says_which_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("limits", dir.path())
        .env("PEERBOOK_API_MAX_BODY_BYTES", "4096")
        .env("PEERBOOK_API_MAX_EVENT_STREAMS", "2")
        .start();
    node.ready().await;
    let addr = node.api_addr();

    let before = metrics(&node).await;
    assert_eq!(
        sample(&before, "peerbook_api_body_too_large_total"),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "peerbook_api_event_streams_refused_total"),
        Some(0.0),
        "{before}"
    );
    // Every engine counter is there, those the hand-written list once
    // missed included.
    for name in [
        "peerbook_gossip_late_total",
        "peerbook_owners_limit_hits_total",
        "peerbook_gossip_rate_limited_total",
        "peerbook_takes_rate_limited_total",
        "peerbook_syncs_rate_limited_total",
        "peerbook_fok_holds_total",
        "peerbook_fok_commits_refused_total",
        "peerbook_fok_aborted_total",
    ] {
        assert_eq!(sample(&before, name), Some(0.0), "{name} in\n{before}");
    }

    // Under the limit: accepted.
    let small = order_body(100);
    let r = raw::send(
        addr,
        "POST /api/v1/orders HTTP/1.1\r\nContent-Type: application/json",
        raw::Body::Sized(&small),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{r:?}");

    // Announced over the limit: refused before it is read.
    let big = order_body(5000);
    let r = raw::send(
        addr,
        "POST /api/v1/orders HTTP/1.1\r\nContent-Type: application/json",
        raw::Body::Sized(&big),
    )
    .unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    let e = r.json().expect("a JSON error body");
    assert_eq!(e["error"]["code"], "body_too_large", "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("4096") && message.contains("api.max_body_bytes"),
        "{message}"
    );

    // Without a length: cut off at the limit while it is read.
    let r = raw::send(
        addr,
        "POST /api/v1/orders HTTP/1.1\r\nContent-Type: application/json",
        raw::Body::Chunked(&big, 1000),
    )
    .unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    let e = r.json().expect("a JSON error body");
    assert_eq!(e["error"]["code"], "body_too_large", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("4096"),
        "{e}"
    );

    let after = metrics(&node).await;
    assert_eq!(
        sample(&after, "peerbook_api_body_too_large_total"),
        Some(2.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "peerbook_orders_placed_total"),
        Some(1.0),
        "only the small order was placed\n{after}"
    );

    // Event streams: two open, the third refused, counted; a closed one
    // frees its place.
    let open = |n: usize| {
        let node = &node;
        async move {
            let r = node
                .http()
                .get(node.url("/api/v1/events"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("stream {n}: {e}"));
            assert_eq!(r.status(), 200, "stream {n}");
            r
        }
    };
    let first = open(1).await;
    let _second = open(2).await;
    let refused = node.get_json("/api/v1/events").await;
    assert_eq!(
        (refused.status, refused.code()),
        (503, "too_many_streams"),
        "{refused:?}"
    );
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains('2') && message.contains("api.max_event_streams"),
        "{message}"
    );
    let after = metrics(&node).await;
    assert_eq!(
        sample(&after, "peerbook_api_event_streams_refused_total"),
        Some(1.0),
        "{after}"
    );
    drop(first);
    common::eventually(
        "a closed stream to free its place",
        || node.output(),
        || async {
            let r = node
                .http()
                .get(node.url("/api/v1/events"))
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;

    let book = node.get_json("/api/v1/book/BTC-USD").await;
    assert_eq!(book.body["orders"], 1, "{book:?}");
}

#[tokio::test]
async fn a_zero_limit_is_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (var, key) in [
        ("PEERBOOK_API_MAX_BODY_BYTES", "api.max_body_bytes"),
        ("PEERBOOK_API_MAX_EVENT_STREAMS", "api.max_event_streams"),
    ] {
        let opts = NodeOpts::new("zero", dir.path()).env(var, "0");
        let done = common::run_to_exit(opts.command());
        assert_eq!(done.status.code(), Some(2), "{}", done.stderr);
        assert!(
            done.stderr.contains(key) && done.stderr.contains(var),
            "{}",
            done.stderr
        );
    }
}
