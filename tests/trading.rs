//! Trading across real nodes on loopback: orders placed on different
//! processes trade with each other, and no order is ever filled twice, also
//! when takers race, when crossing makers publish at once, and when the
//! maker is killed with SIGKILL in the middle of a load.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use common::{eventually, Node, NodeOpts};
use peerbook::engine::{BookInfo, OrderInfo, OrderStatus, TradeInfo};
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Start `n` nodes: the first alone, the others bootstrapping to it; wait
/// until every node is connected to every other one.
async fn cluster(dirs: &[tempfile::TempDir], extra: &[(&str, &str)]) -> Vec<Node> {
    let mut opts = NodeOpts::new("A", dirs[0].path());
    for (k, v) in extra {
        opts = opts.env(k, v);
    }
    let a = opts.start();
    let a_status = a.ready().await;
    let mut nodes = vec![a];
    for (i, dir) in dirs.iter().enumerate().skip(1) {
        let name = ["A", "B", "C", "D"][i.min(3)];
        let mut opts = NodeOpts::new(name, dir.path()).bootstrap(format!(
            "{}/p2p/{}",
            nodes[0].addr(),
            a_status.peer_id
        ));
        for (k, v) in extra {
            opts = opts.env(k, v);
        }
        let n = opts.start();
        n.ready().await;
        nodes.push(n);
    }
    let ids: Vec<String> = futures_ids(&nodes).await;
    for (i, n) in nodes.iter().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            if i != j {
                n.connected_to(id).await;
            }
        }
    }
    nodes
}

async fn futures_ids(nodes: &[Node]) -> Vec<String> {
    let mut ids = Vec::new();
    for n in nodes {
        ids.push(n.ready().await.peer_id);
    }
    ids
}

async fn place(node: &Node, body: Value) -> OrderInfo {
    let r = node
        .http()
        .post(node.url("/api/v1/orders"))
        .json(&body)
        .send()
        .await
        .expect("POST /api/v1/orders");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(
        status.as_u16(),
        201,
        "placing {body} on {}: {text}",
        node.opts.name
    );
    serde_json::from_str(&text).expect("an order")
}

async fn try_place(node: &Node, body: Value) -> Option<OrderInfo> {
    let r = node
        .http()
        .post(node.url("/api/v1/orders"))
        .json(&body)
        .send()
        .await
        .ok()?;
    if r.status().as_u16() != 201 {
        return None;
    }
    r.json().await.ok()
}

async fn get<T: serde::de::DeserializeOwned>(node: &Node, path: &str) -> Option<T> {
    let r = node.http().get(node.url(path)).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

async fn book(node: &Node, market: &str) -> Option<BookInfo> {
    get(node, &format!("/api/v1/book/{market}?depth=1000")).await
}

async fn trades(node: &Node) -> Option<Vec<TradeInfo>> {
    get(node, "/api/v1/trades?limit=10000").await
}

fn outputs(nodes: &[Node]) -> String {
    nodes.iter().map(|n| n.output()).collect()
}

/// Wait until every node shows the same digest and the same trades on
/// `market`, and return those trades.
async fn converged(nodes: &[Node], market: &str) -> Vec<TradeInfo> {
    eventually(
        "all nodes to hold one digest and one fill log",
        || outputs(nodes),
        || async {
            let mut digests = BTreeSet::new();
            let mut logs = BTreeSet::new();
            let mut last = Vec::new();
            for n in nodes {
                let b = book(n, market).await?;
                // Equal books that are still crossed are not done yet: the
                // owner of the newer order has still to take.
                if let (Some(bid), Some(ask)) = (b.bids.first(), b.asks.first()) {
                    if bid.0 >= ask.0 {
                        return None;
                    }
                }
                digests.insert(b.digest);
                let mut t: Vec<TradeInfo> = trades(n)
                    .await?
                    .into_iter()
                    .filter(|t| t.market == market)
                    .collect();
                t.sort_by(|a, b| a.id.cmp(&b.id));
                logs.insert(
                    t.iter()
                        .map(|t| format!("{}:{}", t.id, t.quantity))
                        .collect::<Vec<_>>(),
                );
                last = t;
            }
            (digests.len() == 1 && logs.len() == 1).then_some(last)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_takers_race_for_one_maker_order_and_exactly_one_unit_fills() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = cluster(&dirs, &[]).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let sell = place(
        a,
        json!({"market":"BTC-USD","side":"sell","price":"100","quantity":"1"}),
    )
    .await;
    assert_eq!(sell.status, OrderStatus::Open);
    for n in [b, c] {
        eventually(
            "the ask to reach the takers",
            || outputs(&nodes),
            || async { book(n, "BTC-USD").await.filter(|b| !b.asks.is_empty()) },
        )
        .await;
    }
    let buy =
        json!({"market":"BTC-USD","side":"buy","price":"100","quantity":"1","time_in_force":"ioc"});
    let (x, y) = tokio::join!(place(b, buy.clone()), place(c, buy));
    assert_eq!(
        x.filled + y.filled,
        d("1"),
        "exactly one unit fills: {x:?} {y:?}"
    );
    let log = converged(&nodes, "BTC-USD").await;
    let total: Decimal = log.iter().map(|t| t.quantity).sum();
    assert_eq!(total, d("1"), "one unit traded, everywhere: {log:?}");
    for n in &nodes {
        let bk = book(n, "BTC-USD").await.unwrap();
        assert!(bk.asks.is_empty(), "{} still shows the ask", n.opts.name);
    }
    let maker: OrderInfo = get(a, &format!("/api/v1/orders/{}", sell.id))
        .await
        .unwrap();
    assert_eq!((maker.status, maker.filled), (OrderStatus::Filled, d("1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_makers_at_the_same_moment_make_exactly_one_trade() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = cluster(&dirs, &[]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (s, t) = tokio::join!(
        place(
            a,
            json!({"market":"ETH-USD","side":"sell","price":"2000","quantity":"2"})
        ),
        place(
            b,
            json!({"market":"ETH-USD","side":"buy","price":"2001","quantity":"2"})
        ),
    );
    assert!(s.filled + t.filled <= d("2"));
    let log = converged(&nodes, "ETH-USD").await;
    assert_eq!(log.len(), 1, "exactly one trade: {log:?}");
    assert_eq!(log[0].quantity, d("2"));
    // The owner of the newer order took: the trade is at the older order's price.
    let (older, newer) = if (s.created_ms, &s.id) < (t.created_ms, &t.id) {
        (&s, &t)
    } else {
        (&t, &s)
    };
    if s.created_ms != t.created_ms {
        assert_eq!(
            log[0].maker_order_id, older.id,
            "the older order is the maker: {s:?} {t:?}"
        );
        assert_eq!(log[0].taker_order_id, newer.id);
    }
    let maker = if log[0].maker_order_id == s.id {
        &s
    } else {
        &t
    };
    assert_eq!(
        Some(log[0].price),
        maker.price,
        "the trade is at the maker's price"
    );
    for n in &nodes {
        let bk = book(n, "ETH-USD").await.unwrap();
        assert!(
            bk.bids.is_empty() && bk.asks.is_empty(),
            "{}: the book ends uncrossed and empty: {bk:?}",
            n.opts.name
        );
    }
}

/// A tiny portable generator for the load (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn random_order(r: &mut Rng) -> Value {
    let side = if r.next().is_multiple_of(2) {
        "buy"
    } else {
        "sell"
    };
    let price = 990 + (r.next() % 21) as i64;
    let qty = 1 + r.next() % 5;
    let tif = if r.next().is_multiple_of(5) {
        "ioc"
    } else {
        "gtc"
    };
    json!({"market":"ETH-USD","side":side,"price":price.to_string(),"quantity":qty.to_string(),"time_in_force":tif})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_killed_mid_load_loses_nothing_it_acknowledged_and_nothing_fills_twice() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = cluster(&dirs, &[]).await;
    // A rests many orders first: it is the maker of most of the load.
    let mut acked: BTreeMap<String, OrderInfo> = BTreeMap::new();
    let mut r = Rng(0x5eed);
    for _ in 0..40 {
        let o = place(&nodes[0], random_order(&mut r)).await;
        acked.insert(o.id.clone(), o);
    }
    // Then all three place at once, and A is killed in the middle of it.
    let mut takers = Vec::new();
    for (i, seed) in [(1usize, 11u64), (2, 22)] {
        let url = nodes[i].url("/api/v1/orders");
        let http = nodes[i].http().clone();
        takers.push(tokio::spawn(async move {
            let mut r = Rng(seed);
            let mut got = Vec::new();
            for _ in 0..60 {
                if let Ok(resp) = http.post(&url).json(&random_order(&mut r)).send().await {
                    if resp.status().as_u16() == 201 {
                        if let Ok(o) = resp.json::<OrderInfo>().await {
                            got.push(o);
                        }
                    }
                }
            }
            got
        }));
    }
    for _ in 0..30 {
        if let Some(o) = try_place(&nodes[0], random_order(&mut r)).await {
            acked.insert(o.id.clone(), o);
        }
    }
    nodes[0].stop_with(libc::SIGKILL);
    let mut others = Vec::new();
    for t in takers {
        others.extend(t.await.unwrap());
    }
    // Restart A on the same data dir and ports.
    let opts = nodes[0].opts.clone();
    nodes[0] = opts.start();
    nodes[0].ready().await;

    // Nothing A acknowledged is lost: every order is there, with at least
    // the fills it had when acknowledged.
    for (id, before) in &acked {
        let now: OrderInfo = eventually(
            "A's order after restart",
            || outputs(&nodes),
            || async { get(&nodes[0], &format!("/api/v1/orders/{id}")).await },
        )
        .await;
        assert!(
            now.filled >= before.filled,
            "{id} lost fills: {before:?} -> {now:?}"
        );
        assert!(now.filled <= now.quantity, "{id} overfilled: {now:?}");
    }
    let log = converged(&nodes, "ETH-USD").await;
    // Nothing filled twice: per order, the trades never pass its quantity,
    // and every order's own record agrees with the trades naming it.
    let mut all: Vec<OrderInfo> = Vec::new();
    for n in &nodes {
        let mine: Vec<OrderInfo> = get(n, "/api/v1/orders?limit=10000").await.unwrap();
        all.extend(mine);
    }
    let mut traded: BTreeMap<String, Decimal> = BTreeMap::new();
    for t in &log {
        *traded.entry(t.maker_order_id.clone()).or_default() += t.quantity;
        *traded.entry(t.taker_order_id.clone()).or_default() += t.quantity;
    }
    for o in &all {
        assert!(o.filled <= o.quantity, "overfilled: {o:?}");
        let by_trades = traded.get(&o.id).copied().unwrap_or_default();
        assert!(
            by_trades <= o.quantity,
            "{} traded {by_trades} of {}",
            o.id,
            o.quantity
        );
        if o.pending.is_zero() {
            assert_eq!(
                by_trades, o.filled,
                "{} fills disagree with the trade log: {o:?}",
                o.id
            );
        }
    }
    // Every fill a taker was told about is in the common log.
    let ids: BTreeSet<&str> = log.iter().map(|t| t.id.as_str()).collect();
    for o in others.iter().chain(acked.values()) {
        for f in &o.fills {
            assert!(
                ids.contains(f.id.as_str()),
                "acknowledged fill {} is lost",
                f.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reached_only_through_another_gets_every_order() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = NodeOpts::new("A", dirs[0].path()).start();
    let a_id = a.ready().await.peer_id;
    let b = NodeOpts::new("B", dirs[1].path())
        .bootstrap(format!("{}/p2p/{a_id}", a.addr()))
        .start();
    let b_id = b.ready().await.peer_id;
    // C may hold one connection only: to B (no overflow for newcomers).
    let c = NodeOpts::new("C", dirs[2].path())
        .bootstrap(format!("{}/p2p/{b_id}", b.addr()))
        .env("PEERBOOK_NET_MAX_ESTABLISHED_TOTAL", "1")
        .env("PEERBOOK_NET_OVERFLOW_CONNECTIONS", "0")
        .env("PEERBOOK_NET_OUTBOUND_EXTRA_CONNECTIONS", "0")
        .start();
    c.ready().await;
    c.connected_to(&b_id).await;
    a.connected_to(&b_id).await;
    let nodes = vec![a, b, c];
    let mut sent = 0;
    for i in 0..200 {
        let price = 1000 + i;
        place(
            &nodes[0],
            json!({"market":"BTC-USD","side":"sell","price":price.to_string(),"quantity":"0.5"}),
        )
        .await;
        sent += 1;
    }
    converged(&nodes, "BTC-USD").await;
    let bk = book(&nodes[2], "BTC-USD").await.unwrap();
    assert_eq!(bk.orders, sent, "C holds every order of A");
    let peers = nodes[2].peers().await.unwrap();
    assert!(
        !peers.iter().any(|p| p.peer_id == a_id && p.connected),
        "C must not be connected to A for this test to mean anything"
    );
}
