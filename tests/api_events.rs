//! The event stream (`GET /api/v1/events`) and the metrics (`GET
//! /metrics`) of real nodes: events arrive as things happen, a client that
//! reconnects with `Last-Event-ID` gets exactly what it missed (or a
//! `reset` when it cannot), peers coming and going are events, streams are
//! bounded and end when the node stops, and the node's counters are in the
//! metrics and move.

mod common;

use std::time::Instant;

use common::{sample, Node, NodeOpts, DEADLINE};
use serde_json::{json, Value};

/// One server-sent event.
#[derive(Debug, Clone)]
struct Sse {
    id: Option<String>,
    event: String,
    data: Value,
}

/// A client of a node's event stream.
struct Stream {
    response: reqwest::Response,
    buf: String,
    context: String,
}

impl Stream {
    async fn open(node: &Node, last_id: Option<&str>) -> Stream {
        let mut req = node.http().get(node.url("/api/v1/events"));
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        let response = req.send().await.expect("GET /api/v1/events");
        assert_eq!(response.status(), 200, "{}", node.output());
        let ct = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Stream {
            response,
            buf: String::new(),
            context: node.opts.name.clone(),
        }
    }

    /// The next event (keep-alive comments skipped), failing the test
    /// after the deadline; `None` when the stream ended.
    async fn next(&mut self) -> Option<Sse> {
        let started = Instant::now();
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Sse {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a comment
                }
                ev.data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(ev);
            }
            let left = DEADLINE.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => return None,
                Err(_) => panic!(
                    "no event from {} in time; got so far {:?}",
                    self.context, self.buf
                ),
            }
        }
    }

    /// Events until one matches `want` (returned with everything before it).
    async fn until(&mut self, what: &str, want: impl Fn(&Sse) -> bool) -> Vec<Sse> {
        let mut seen = Vec::new();
        loop {
            match self.next().await {
                Some(ev) => {
                    let done = want(&ev);
                    seen.push(ev);
                    if done {
                        return seen;
                    }
                }
                None => panic!("the stream ended before {what}; saw {seen:#?}"),
            }
        }
    }
}

fn order(side: &str, price: &str) -> Value {
    json!({"market": "BTC-USD", "side": side, "price": price, "quantity": "1"})
}

fn is(kind: &'static str, id: String) -> impl Fn(&Sse) -> bool {
    move |e: &Sse| e.event == kind && e.data["id"] == id.as_str()
}

#[tokio::test]
async fn events_arrive_and_a_reconnect_with_last_event_id_replays_what_was_missed() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeOpts::new("events", dir.path()).start();
    node.ready().await;

    let mut stream = Stream::open(&node, None).await;
    let hello = stream.next().await.expect("hello");
    assert_eq!(hello.event, "hello");
    assert!(hello.id.is_none(), "hello carries no id");
    assert_eq!(hello.data["ring"], 1024);

    let first = node.place(order("sell", "150")).await;
    let first_id = first["id"].as_str().unwrap().to_string();
    let seen = stream
        .until("the order event", is("order", first_id.clone()))
        .await;
    let ev = seen.last().unwrap();
    assert_eq!(ev.data["status"], "open");
    assert_eq!(ev.data["price"], "150");
    let last_seen = ev.id.clone().expect("events have ids");
    let book = stream.until("a book event", |e| e.event == "book").await;
    assert_eq!(book.last().unwrap().data, json!({"market": "BTC-USD"}));
    let last_seen_now = book.last().unwrap().id.clone().unwrap();
    drop(stream);

    // While nobody listens: a new order, and the first one cancelled.
    let second = node.place(order("sell", "151")).await;
    let second_id = second["id"].as_str().unwrap().to_string();
    let cancel = node
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/orders/{first_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(cancel.status, 200);

    // Reconnecting after the order event: everything after it, in order,
    // including what happened while disconnected.
    let mut again = Stream::open(&node, Some(&last_seen)).await;
    assert_eq!(again.next().await.unwrap().event, "hello");
    let replayed = again
        .until("the replayed cancel", is("cancel", first_id.clone()))
        .await;
    let ids: Vec<u64> = replayed
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect();
    let first_replayed = ids[0];
    assert_eq!(
        first_replayed,
        last_seen.parse::<u64>().unwrap() + 1,
        "{replayed:#?}"
    );
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "gap or repeat: {ids:?}"
    );
    assert!(replayed.iter().any(|e| e.event == "book"));
    assert!(replayed.iter().any(|e| is("order", second_id.clone())(e)));
    assert_eq!(replayed.last().unwrap().data["status"], "cancelled");
    assert!(
        replayed
            .iter()
            .all(|e| e.id.as_deref() != Some(last_seen.as_str())),
        "replayed what the client had"
    );
    drop(again);

    // From the later id, the earlier events are not repeated.
    let mut later = Stream::open(&node, Some(&last_seen_now)).await;
    later.next().await.unwrap();
    let next = later.next().await.unwrap();
    assert!(next.id.unwrap().parse::<u64>().unwrap() > last_seen_now.parse::<u64>().unwrap());
    drop(later);

    // An id the node cannot replay from (an earlier run, or nonsense):
    // a reset, then live events.
    for stale in ["1", "not-a-number"] {
        let mut s = Stream::open(&node, Some(stale)).await;
        assert_eq!(s.next().await.unwrap().event, "hello");
        let reset = s.next().await.unwrap();
        assert_eq!(reset.event, "reset", "{reset:?}");
        assert!(reset.data["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }

    // An open stream does not hold the node up when it stops.
    let mut open = Stream::open(&node, None).await;
    open.next().await.unwrap();
    let status = node.stop();
    assert!(status.success(), "{status}\n{}", node.output());
    while open.next().await.is_some() {}
}

#[tokio::test]
async fn peers_coming_and_going_and_fills_are_events() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = NodeOpts::new("A", dir_a.path()).start();
    let a_id = a.ready().await.peer_id;
    let mut stream = Stream::open(&a, None).await;
    stream.next().await.unwrap();

    let mut b = NodeOpts::new("B", dir_b.path())
        .bootstrap(format!("{}/p2p/{a_id}", a.addr()))
        .start();
    let b_id = b.ready().await.peer_id;
    stream
        .until("B's connection", |e| {
            e.event == "peer"
                && e.data["peer_id"] == b_id.as_str()
                && e.data["change"] == "connected"
        })
        .await;
    stream
        .until("a status event with one peer", |e| {
            e.event == "status" && e.data["peer_count"] == 1
        })
        .await;
    b.connected_to(&a_id).await;

    let maker = b.place(order("sell", "99")).await;
    let maker_id = maker["id"].as_str().unwrap().to_string();
    common::eventually(
        "B's order in A's book",
        || a.output(),
        || async {
            let book = a.get_json("/api/v1/book/BTC-USD").await;
            (book.body["asks"] == json!([["99", "1"]])).then_some(())
        },
    )
    .await;
    let taker = a.place(order("buy", "99")).await;
    assert_eq!(taker["status"], "filled", "{taker}");
    let seen = stream
        .until("the fill", |e| {
            e.event == "fill" && e.data["maker_order_id"] == maker_id.as_str()
        })
        .await;
    let fill = seen.last().unwrap();
    assert_eq!(fill.data["price"], "99");
    assert_eq!(fill.data["quantity"], "1");
    stream
        .until("the taker's order event", |e| {
            e.event == "order" && e.data["id"] == taker["id"] && e.data["status"] == "filled"
        })
        .await;

    let status = b.stop();
    assert!(status.success());
    common::eventually(
        "A to see B gone",
        || a.output(),
        || async {
            let peers = a.peers().await?;
            (!peers.iter().any(|p| p.connected)).then_some(())
        },
    )
    .await;
    stream
        .until("B's disconnection", |e| {
            e.event == "peer"
                && e.data["peer_id"] == b_id.as_str()
                && e.data["change"] == "disconnected"
        })
        .await;
    stream
        .until("a status event with no peers", |e| {
            e.event == "status" && e.data["peer_count"] == 0
        })
        .await;
}

#[tokio::test]
async fn metrics_count_orders_books_and_event_streams_and_streams_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("metrics", dir.path()).start();
    node.ready().await;

    let before = node.metrics().await;
    for (name, kind) in [
        ("peerbook_orders_placed", "counter"),
        ("peerbook_fills", "counter"),
        ("peerbook_takes_sent", "counter"),
        ("peerbook_takes_in_doubt", "counter"),
        ("peerbook_gossip_rejected", "counter"),
        ("peerbook_sync_requests", "counter"),
        ("peerbook_owner_syncs", "counter"),
        ("peerbook_owner_limit_hits", "counter"),
        ("peerbook_book_orders", "gauge"),
        ("peerbook_own_open_orders", "gauge"),
        ("peerbook_sse_clients", "gauge"),
    ] {
        assert!(
            before.contains(&format!("# TYPE {name} {kind}")),
            "no {name} {kind}:\n{before}"
        );
        assert!(
            before.contains(&format!("# HELP {name} ")),
            "no help for {name}"
        );
    }
    assert!(
        before.contains("libp2p_swarm_"),
        "libp2p's metrics are gone"
    );
    assert_eq!(before.matches("# EOF").count(), 1);
    assert!(before.trim_end().ends_with("# EOF"));
    assert_eq!(sample(&before, "peerbook_orders_placed_total"), Some(0.0));

    node.place(order("buy", "90")).await;
    node.place(order("buy", "91")).await;
    let bad = node
        .request(
            reqwest::Method::POST,
            "/api/v1/orders",
            Some(&order("buy", "-1")),
            None,
        )
        .await;
    assert_eq!(bad.status, 400);
    let after = node.metrics().await;
    assert_eq!(
        sample(&after, "peerbook_orders_placed_total"),
        Some(2.0),
        "{after}"
    );
    assert_eq!(sample(&after, "peerbook_orders_refused_total"), Some(1.0));
    assert_eq!(
        sample(&after, "peerbook_book_orders{market=\"BTC-USD\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&after, "peerbook_own_open_orders{market=\"BTC-USD\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&after, "peerbook_own_open_orders{market=\"ETH-USD\"}"),
        Some(0.0)
    );

    // Event streams: counted, bounded, and freed when clients go.
    let mut streams = Vec::new();
    for _ in 0..64 {
        streams.push(Stream::open(&node, None).await);
    }
    assert_eq!(
        sample(&node.metrics().await, "peerbook_sse_clients"),
        Some(64.0)
    );
    let refused = node.get_json("/api/v1/events").await;
    assert_eq!(
        (refused.status, refused.code()),
        (503, "too_many_streams"),
        "{refused:?}"
    );
    drop(streams);
    common::eventually(
        "closed streams to be freed",
        || node.output(),
        || async {
            (sample(&node.metrics().await, "peerbook_sse_clients") == Some(0.0)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn metrics_are_strict_openmetrics_on_trading_nodes_with_fills_by_market() {
    common::openmetrics::self_test();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (a, b) = common::connected_pair(dir_a.path(), dir_b.path()).await;
    b.place(json!({"market": "ETH-USD", "side": "sell", "price": "100", "quantity": "1"}))
        .await;
    common::eventually(
        "B's order in A's book",
        || a.output(),
        || async {
            let book = a.get_json("/api/v1/book/ETH-USD").await;
            (book.body["orders"] == 1).then_some(())
        },
    )
    .await;
    let taken = a
        .place(json!({"market": "ETH-USD", "side": "buy", "price": "100", "quantity": "1", "time_in_force": "ioc"}))
        .await;
    assert_eq!(taken["status"], "filled", "{taken}");
    common::eventually(
        "B to count its fill as maker",
        || b.output(),
        || async {
            let m = b.metrics().await;
            (sample(
                &m,
                "peerbook_fills_total{market=\"ETH-USD\",role=\"maker\"}",
            ) == Some(1.0))
            .then_some(())
        },
    )
    .await;
    // Gossipsub scores its mesh peers on its heartbeat (each second): wait
    // for three heartbeats with a peer in the mesh, so every libp2p family
    // has samples to check (the score histogram among them).
    let heartbeats = |m: &str| sample(m, "gossipsub_heartbeat_duration_count").unwrap_or(0.0);
    let meshed = common::eventually(
        "A's mesh to have a peer",
        || a.output(),
        || async {
            let m = a.metrics().await;
            m.lines()
                .any(|l| l.starts_with("gossipsub_mesh_peer_counts{") && !l.ends_with(" 0"))
                .then(|| heartbeats(&m))
        },
    )
    .await;
    common::eventually(
        "three more heartbeats of A",
        || a.output(),
        || async { (heartbeats(&a.metrics().await) >= meshed + 3.0).then_some(()) },
    )
    .await;
    let ma = a.metrics().await;
    assert_eq!(
        sample(
            &ma,
            "peerbook_fills_total{market=\"ETH-USD\",role=\"taker\"}"
        ),
        Some(1.0),
        "{ma}"
    );
    assert_eq!(
        sample(
            &ma,
            "peerbook_fills_total{market=\"BTC-USD\",role=\"taker\"}"
        ),
        Some(0.0)
    );
    for (who, text) in [("A", ma), ("B", b.metrics().await)] {
        if let Err(e) = common::openmetrics::check(&text) {
            panic!("{who}'s /metrics is not valid OpenMetrics: {e}\n{text}");
        }
    }
}
