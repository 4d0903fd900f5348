//! The API's limits on a real node, set low through the environment: a body
//! over `api.max_body_bytes` (announced or chunked) gets 413 naming the
//! limit, one event stream more than `api.max_event_streams` gets 503, each
//! refusal is counted in `/metrics`, and nothing refused changes the book.
//! `/metrics` shows every engine counter, also those no test here bumps.

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::{sample, NodeOpts};
use serde_json::json;

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

    let before = node.metrics().await;
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

    // The rest of such a body is never read, so the connection is not
    // reused for the next request.
    let r = node
        .http()
        .post(node.url("/api/v1/orders"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.headers().get("connection").and_then(|v| v.to_str().ok()),
        Some("close")
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

    let after = node.metrics().await;
    assert_eq!(
        sample(&after, "peerbook_api_body_too_large_total"),
        Some(3.0),
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
    let after = node.metrics().await;
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
async fn connections_are_bounded_and_idle_ones_closed() {
    use std::io::Read;
    use std::net::TcpStream;

    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("connections", dir.path())
        .env("PEERBOOK_API_MAX_CONNECTIONS", "3")
        .env("PEERBOOK_API_IDLE_TIMEOUT_SECS", "3600")
        .start();
    node.ready().await;
    let addr = node.api_addr();

    // Three connections that say nothing hold every place; the next is
    // told why and closed.
    let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let refused = common::eventually(
        "a connection over the limit to be refused",
        || node.output(),
        || async {
            let r = raw::send(addr, "GET /api/v1/status HTTP/1.1", raw::Body::None).ok()?;
            (r.status == 503).then_some(r)
        },
    )
    .await;
    let e = refused.json().expect("a JSON error body");
    assert_eq!(e["error"]["code"], "too_many_connections", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api.max_connections"),
        "{e}"
    );
    drop(idle);
    let text = common::eventually(
        "the places to be free again",
        || node.output(),
        || async { Some(node.metrics().await) },
    )
    .await;
    assert!(
        sample(&text, "peerbook_api_connections_refused_total").is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // A connection nobody uses is closed once the idle time is up.
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("idle", dir.path())
        .env("PEERBOOK_API_IDLE_TIMEOUT_SECS", "1")
        .start();
    node.ready().await;
    let mut quiet = TcpStream::connect(node.api_addr()).unwrap();
    quiet.set_read_timeout(Some(common::DEADLINE)).unwrap();
    let mut buf = [0u8; 64];
    match quiet.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!(
            "the idle connection was not closed: {other:?}\n{}",
            node.output()
        ),
    }
    // Nor one that stops in the middle of its body: its request is not
    // being handled until the body is there.
    let mut stalled = TcpStream::connect(node.api_addr()).unwrap();
    stalled.set_read_timeout(Some(common::DEADLINE)).unwrap();
    std::io::Write::write_all(
        &mut stalled,
        b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"market\":",
    )
    .unwrap();
    let mut answer = Vec::new();
    match stalled.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the stalled connection was not closed: {e}\n{}",
            node.output()
        ),
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );

    // (A fresh connection each: pooled ones are closed when idle too.)
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let text = fresh
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        sample(&text, "peerbook_api_connections_timed_out_total").is_some_and(|n| n >= 2.0),
        "{text}"
    );

    // A quiet event stream outlives the idle time: its keep-alive comes
    // more often than that.
    let mut stream = fresh.get(node.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let mut keep_alives = 0;
    while keep_alives < 4 {
        let chunk = stream
            .chunk()
            .await
            .unwrap_or_else(|e| panic!("the stream broke: {e}\n{}", node.output()))
            .unwrap_or_else(|| panic!("the stream ended\n{}", node.output()));
        keep_alives += String::from_utf8_lossy(&chunk)
            .lines()
            .filter(|l| l.starts_with(':'))
            .count();
    }
}

#[tokio::test]
async fn a_zero_limit_is_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (var, key) in [
        ("PEERBOOK_API_MAX_BODY_BYTES", "api.max_body_bytes"),
        ("PEERBOOK_API_MAX_EVENT_STREAMS", "api.max_event_streams"),
        ("PEERBOOK_API_MAX_CONNECTIONS", "api.max_connections"),
        ("PEERBOOK_API_IDLE_TIMEOUT_SECS", "api.idle_timeout_secs"),
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
