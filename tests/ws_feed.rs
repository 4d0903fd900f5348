//! The WebSocket feed against real nodes: a client rebuilds the book from
//! a snapshot and deltas while two nodes trade and cancel at random, checks
//! every message's sequence number and checksum, and at every quiet moment
//! holds exactly the node's book; a client that stops reading is resynced,
//! never left with a gap; the trades channel carries the trades.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{connected_pair, eventually, sample, Node, NodeOpts};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(node: &Node) -> Ws {
    let url = format!("ws://127.0.0.1:{}/api/v1/ws", node.opts.api_port);
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string()))
        .await
        .expect("ws send");
}

/// The next JSON message, within `wait`.
/// Bids then asks, each level `(price, quantity)`, best first.
type Sides = (Vec<(Decimal, Decimal)>, Vec<(Decimal, Decimal)>);

async fn next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

fn dec(v: &Value) -> Decimal {
    v.as_str()
        .expect("a decimal string")
        .parse()
        .expect("a decimal")
}

/// A client's copy of one book.
#[derive(Default)]
struct Copy {
    seq: u64,
    bids: BTreeMap<Decimal, Decimal>,
    asks: BTreeMap<Decimal, Decimal>,
    deltas: u64,
    resyncs: u64,
}

impl Copy {
    fn checksum(&self) -> u32 {
        let side = |it: Vec<(&Decimal, &Decimal)>| {
            it.into_iter()
                .take(25)
                .map(|(p, q)| format!("{}:{}", p.normalize(), q.normalize()))
                .collect::<Vec<_>>()
                .join(",")
        };
        let text = format!(
            "{}|{}",
            side(self.bids.iter().rev().collect()),
            side(self.asks.iter().collect())
        );
        crc32fast::hash(text.as_bytes())
    }

    /// Apply one message of the book channel; an error if it breaks the
    /// contract.
    fn apply(&mut self, m: &Value) -> Result<(), String> {
        match m["type"].as_str() {
            Some("snapshot") => {
                self.bids.clear();
                self.asks.clear();
                for (side, key) in [(&mut self.bids, "bids"), (&mut self.asks, "asks")] {
                    for l in m[key].as_array().unwrap() {
                        side.insert(dec(&l[0]), dec(&l[1]));
                    }
                }
                self.seq = m["seq"].as_u64().unwrap();
            }
            Some("delta") => {
                let seq = m["seq"].as_u64().unwrap();
                if seq != self.seq + 1 {
                    return Err(format!("delta {seq} after {}", self.seq));
                }
                self.seq = seq;
                self.deltas += 1;
                for c in m["changes"].as_array().unwrap() {
                    let side = if c[0] == "buy" {
                        &mut self.bids
                    } else {
                        &mut self.asks
                    };
                    let (p, q) = (dec(&c[1]), dec(&c[2]));
                    if q.is_zero() {
                        side.remove(&p);
                    } else {
                        side.insert(p, q);
                    }
                }
            }
            Some("resync") => {
                self.resyncs += 1;
                return Ok(());
            }
            _ => return Ok(()),
        }
        let want = m["checksum"].as_u64().unwrap() as u32;
        if self.checksum() != want {
            return Err(format!(
                "checksum {} != {want} at seq {}",
                self.checksum(),
                self.seq
            ));
        }
        Ok(())
    }

    fn levels(&self) -> Sides {
        (
            self.bids.iter().rev().map(|(p, q)| (*p, *q)).collect(),
            self.asks.iter().map(|(p, q)| (*p, *q)).collect(),
        )
    }
}

async fn node_book(n: &Node) -> Sides {
    let b = n.get_json("/api/v1/book/BTC-USD?depth=100000").await;
    let side = |k: &str| {
        b.body[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (dec(&l[0]), dec(&l[1])))
            .collect()
    };
    (side("bids"), side("asks"))
}

/// Random orders and cancels on both nodes for `secs`.
async fn trade(a: &Node, b: &Node, secs: u64, seed: u64) {
    let mut x = seed;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let until = Instant::now() + Duration::from_secs(secs);
    let mut open: Vec<(usize, String)> = Vec::new();
    while Instant::now() < until {
        let nodes = [a, b];
        let i = rnd(2) as usize;
        let side = if rnd(2) == 0 { "buy" } else { "sell" };
        let price = 95 + rnd(10);
        let mut o = json!({"market":"BTC-USD","side":side,"price":price.to_string(),
                           "quantity":format!("0.{}", 1 + rnd(9))});
        if rnd(4) == 0 {
            o["time_in_force"] = json!("ioc");
        }
        let placed = nodes[i]
            .request(Method::POST, "/api/v1/orders", Some(&o), None)
            .await;
        if let Some(id) = placed.body["id"].as_str() {
            if placed.body["status"] == "open" {
                open.push((i, id.to_string()));
            }
        }
        if rnd(3) == 0 && !open.is_empty() {
            let (j, id) = open.swap_remove(rnd(open.len() as u64) as usize);
            let _ = nodes[j]
                .request(Method::DELETE, &format!("/api/v1/orders/{id}"), None, None)
                .await;
        }
    }
}

/// Read the book channel until it is quiet for a while.
async fn drain_quiet(ws: &mut Ws, copy: &mut Copy, trades: &mut Vec<String>) {
    while let Some(m) = next(ws, Duration::from_millis(700)).await {
        if m["type"] == "trade" {
            trades.push(m["data"]["id"].as_str().unwrap().to_string());
        }
        copy.apply(&m).unwrap_or_else(|e| panic!("{e}: {m}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_rebuilds_the_book_from_snapshot_and_deltas_while_two_nodes_trade() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b) = connected_pair(dirs[0].path(), dirs[1].path()).await;
    let mut ws = connect(&a).await;
    send(&mut ws, json!({"op":"subscribe","channel":"book:BTC-USD"})).await;
    send(
        &mut ws,
        json!({"op":"subscribe","channel":"trades:BTC-USD"}),
    )
    .await;
    send(&mut ws, json!({"op":"subscribe","channel":"nope:x"})).await;
    let mut copy = Copy::default();
    let mut trades = Vec::new();
    let mut errors = 0;
    for _ in 0..4 {
        let m = next(&mut ws, Duration::from_secs(5))
            .await
            .expect("an answer");
        if m["type"] == "error" {
            errors += 1;
        }
        copy.apply(&m).unwrap();
    }
    assert_eq!(errors, 1, "the unknown channel is refused");
    for round in 0..3 {
        let traffic = trade(&a, &b, 2, 7 + round);
        tokio::pin!(traffic);
        loop {
            tokio::select! {
                _ = &mut traffic => break,
                m = next(&mut ws, Duration::from_secs(10)) => {
                    let m = m.expect("the feed goes on");
                    if m["type"] == "trade" {
                        trades.push(m["data"]["id"].as_str().unwrap().to_string());
                    }
                    copy.apply(&m).unwrap_or_else(|e| panic!("{e}: {m}"));
                }
            }
        }
        drain_quiet(&mut ws, &mut copy, &mut trades).await;
        assert_eq!(
            copy.levels(),
            node_book(&a).await,
            "round {round}: the copy is the book"
        );
    }
    assert!(copy.deltas > 20, "{} deltas", copy.deltas);
    let node_trades = a.get_json("/api/v1/trades?limit=10000").await;
    let known: Vec<&str> = node_trades
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(!trades.is_empty(), "crossing orders traded");
    for t in &trades {
        assert!(
            known.contains(&t.as_str()),
            "{t} came on the feed but is not a trade"
        );
    }
}

/// A client with a small receive buffer: one that stops reading makes the
/// node's sends wait within a few hundred kilobytes.
async fn connect_slow(node: &Node) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let stream = socket.connect(node.api_addr()).await.unwrap();
    let url = format!("ws://127.0.0.1:{}/api/v1/ws", node.opts.api_port);
    let (ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .expect("ws handshake");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_resynced_never_left_with_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let a = NodeOpts::new("lag", dir.path())
        .env("PEERBOOK_API_WS_BUFFER_BYTES", "8000")
        .start();
    a.ready().await;
    let mut ws = connect_slow(&a).await;
    send(&mut ws, json!({"op":"subscribe","channel":"book:BTC-USD"})).await;
    let mut copy = Copy::default();
    for _ in 0..2 {
        let m = next(&mut ws, Duration::from_secs(5)).await.unwrap();
        copy.apply(&m).unwrap();
    }
    // Many changed levels while the client reads nothing: batches of 100
    // orders at 100 new prices each, 800 levels (GET /book shows at most
    // 1,000), some 20 kB of deltas against a budget of 8 kB.
    for batch in 0..8u64 {
        let place: Vec<Value> = (0..100u64)
            .map(|i| {
                let cents = 1_000 + batch * 100 + i;
                json!({"market":"BTC-USD","side":"buy",
                       "price":format!("{}.{:02}", cents / 100, cents % 100),"quantity":"0.1"})
            })
            .collect();
        let r = a
            .request(
                Method::POST,
                "/api/v1/orders/batch",
                Some(&json!({"place": place, "cancel": []})),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let mut trades = Vec::new();
    drain_quiet(&mut ws, &mut copy, &mut trades).await;
    assert!(
        copy.resyncs >= 1,
        "the lag was said ({} deltas seen)",
        copy.deltas
    );
    assert_eq!(copy.levels(), node_book(&a).await);
    let m = a.metrics().await;
    assert!(
        sample(&m, "peerbook_api_ws_resyncs_total") >= Some(1.0),
        "{m}"
    );
}

/// Messages of `ws` until one satisfies `want` (within 10 s each).
async fn until(ws: &mut Ws, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    loop {
        let m = next(ws, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no message: {what}"));
        if want(&m) {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_channels_carry_this_nodes_orders_and_fills_and_the_ticker_follows_trades() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b) = connected_pair(dirs[0].path(), dirs[1].path()).await;
    let mut ws = connect(&a).await;
    for c in ["orders", "fills", "ticker:BTC-USD"] {
        send(&mut ws, json!({"op":"subscribe","channel":c})).await;
        until(&mut ws, c, |m| {
            m["type"] == "subscribed" && m["channel"] == c
        })
        .await;
    }
    let sell = a
        .place(json!({"market":"BTC-USD","side":"sell","price":"105","quantity":"1"}))
        .await;
    let id = sell["id"].as_str().unwrap().to_string();
    let o = until(&mut ws, "our order", |m| m["type"] == "order").await;
    assert_eq!(o["data"]["id"], id.as_str());
    assert_eq!(o["channel"], "orders");
    eventually(
        "B sees the sell",
        || b.output(),
        || async {
            let book = b.get_json("/api/v1/book/BTC-USD").await;
            book.body["asks"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
                .then_some(())
        },
    )
    .await;
    b.place(
        json!({"market":"BTC-USD","side":"buy","price":"105","quantity":"0.4",
                   "time_in_force":"ioc"}),
    )
    .await;
    // The fill, the order's update and the ticker that counts the trade
    // come in whatever order the node's tasks send them.
    let (mut fill, mut ticker, mut order) = (None, None, None);
    while fill.is_none() || ticker.is_none() || order.is_none() {
        let m = next(&mut ws, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| {
                panic!("no more messages: fill {fill:?}, ticker {ticker:?}, order {order:?}")
            });
        match m["type"].as_str() {
            Some("fill") => fill = Some(m),
            Some("ticker") if m["data"]["last"].is_string() => ticker = Some(m),
            Some("order") if m["data"]["filled"] == "0.4" => order = Some(m),
            _ => {}
        }
    }
    let (f, t, o) = (fill.unwrap(), ticker.unwrap(), order.unwrap());
    assert_eq!(f["data"]["maker_order_id"], id.as_str());
    assert_eq!(dec(&f["data"]["quantity"]), "0.4".parse().unwrap());
    assert_eq!(dec(&t["data"]["last"]), "105".parse().unwrap());
    assert_eq!(t["channel"], "ticker:BTC-USD");
    assert_eq!(o["data"]["status"], "open");
    assert_eq!(o["data"]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_token_takes_it_in_the_first_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOpts::new("token", dir.path()).env("PEERBOOK_API_TOKEN", "t0ken");
    opts.api_host = "0.0.0.0".into();
    let node = opts.start();
    node.ready_with_token("t0ken").await;
    let mut ws = connect(&node).await;
    send(&mut ws, json!({"op":"subscribe","channel":"book:BTC-USD"})).await;
    let m = until(&mut ws, "a refusal", |m| m["type"] == "error").await;
    assert_eq!(m["code"], "no_token", "{m}");
    assert!(m["message"].as_str().unwrap().contains("token"), "{m}");
    send(&mut ws, json!({"op":"auth","token":"wrong"})).await;
    let m = until(&mut ws, "wrong token", |m| m["type"] == "error").await;
    assert_eq!(m["code"], "wrong_token", "{m}");
    assert!(
        m["message"].as_str().unwrap().contains("wrong token"),
        "{m}"
    );
    send(&mut ws, json!({"op":"auth","token":"t0ken"})).await;
    until(&mut ws, "authenticated", |m| m["type"] == "authenticated").await;
    send(&mut ws, json!({"op":"subscribe","channel":"book:BTC-USD"})).await;
    let s = until(&mut ws, "a snapshot", |m| m["type"] == "snapshot").await;
    assert!(s["seq"].is_u64() && s["checksum"].is_u64(), "{s}");
}
