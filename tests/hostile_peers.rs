//! A node on the open internet meets broken and malicious peers. Two honest
//! `peerbook node` processes trade with each other on loopback while a
//! hostile libp2p peer in the test process (tests/common/hostile.rs), with
//! its own key, connects to both and:
//!
//! - speaks for orders it does not own (cancels and fills naming the honest
//!   nodes' order numbers), and replays an order it cancelled;
//! - sends gossip that is late, stamped far in the past or future, for a
//!   market that does not exist or does not match the topic, undecodable,
//!   oversized, or on a topic the nodes do not have;
//! - takes an honest order for ten times its quantity, takes it again once
//!   it is filled, takes orders and markets that do not exist, sends
//!   undecodable take and sync requests, and floods both.
//!
//! The honest nodes must refuse all of it (counted in /metrics), penalise the
//! hostile peer through gossipsub scoring until it is graylisted (its valid
//! gossip is then ignored too), keep trading with each other all along, and
//! end with equal digests and no order filled past its quantity.

mod common;
#[path = "common/hostile.rs"]
mod hostile;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{eventually, Node, NodeOpts, DEADLINE};
use hostile::{Hostile, Proto};
use libp2p::{Multiaddr, PeerId};
use peerbook::engine::{BookInfo, OrderInfo, OrderStatus, TradeInfo};
use peerbook::market::{Price, Qty, Side};
use peerbook::wire::{
    decode, FillMsg, Gossip, Item, OrderState, Refusal, SyncRefusal, SyncRequest, SyncResponse,
    SyncWhat, TakeKind, TakeRequest, TakeResponse, WIRE_VERSION,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// A wire message's bytes (the project's own messages always encode).
fn encode<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    peerbook::wire::encode(msg).expect("a wire message encodes")
}

/// Take requests a node serves per peer and second in this test: low, so
/// the flood bites within a few hundred requests.
const TAKES_PER_SEC: &str = "20";

/// The graylist threshold of `peerbook::net::gossip::thresholds()`.
const GRAYLIST: f64 = -80.0;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What the honest-traffic task needs of a node: its API, cloneable.
#[derive(Clone)]
struct Api {
    name: String,
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn of(n: &Node) -> Api {
        Api {
            name: n.opts.name.clone(),
            base: n.url(""),
            http: n.http().clone(),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Option<T> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    async fn place(&self, body: Value) -> Result<OrderInfo, String> {
        let r = self
            .http
            .post(format!("{}/api/v1/orders", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("{}: POST {body}: {e}", self.name))?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        if status != 201 {
            return Err(format!("{}: POST {body}: {status} {text}", self.name));
        }
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}: {text}", self.name))
    }

    async fn order(&self, id: &str) -> Option<OrderInfo> {
        self.get(&format!("/api/v1/orders/{id}")).await
    }

    async fn book(&self, market: &str) -> Option<BookInfo> {
        self.get(&format!("/api/v1/book/{market}?depth=1000")).await
    }

    async fn own_orders(&self) -> Option<Vec<OrderInfo>> {
        self.get("/api/v1/orders?limit=10000").await
    }

    async fn trades(&self) -> Option<Vec<TradeInfo>> {
        self.get("/api/v1/trades?limit=10000").await
    }

    /// A metric's value from /metrics, if the node exports it.
    async fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    async fn counter(&self, name: &str) -> f64 {
        let full = format!("peerbook_{name}_total");
        self.metric(&full)
            .await
            .unwrap_or_else(|| panic!("{} exports no {full} in /metrics", self.name))
    }

    /// The node's view of `peer`: (connected, gossipsub score).
    async fn peer(&self, peer: &PeerId) -> Option<(bool, Option<f64>)> {
        let peers: Vec<peerbook::api::peers::Peer> = self.get("/api/v1/peers").await?;
        let id = peer.to_string();
        Some(
            peers
                .iter()
                .find(|p| p.peer_id == id)
                .map_or((false, None), |p| (p.connected, p.score)),
        )
    }
}

/// Poll `check` until it holds (a deadline guards against hangs only).
async fn until<F, Fut>(what: &str, ctx: &dyn Fn() -> String, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for {what}\n{}",
            ctx()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One round of honest trading: A rests a sell, B sees it and crosses it
/// with an IOC buy that fills whole, and A sees its order filled.
async fn honest_round(a: &Api, b: &Api, i: u64) -> Result<(), String> {
    let price = (2000 + i).to_string();
    let sell = a
        .place(json!({"market":"ETH-USD","side":"sell","price":price,"quantity":"1"}))
        .await?;
    let started = Instant::now();
    while b.order(&sell.id).await.is_none() {
        if started.elapsed() > DEADLINE {
            return Err(format!("round {i}: {} never reached B", sell.id));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let buy = b
        .place(json!({"market":"ETH-USD","side":"buy","price":price,"quantity":"1","time_in_force":"ioc"}))
        .await?;
    if buy.filled != d("1") {
        return Err(format!("round {i}: the crossing buy did not fill: {buy:?}"));
    }
    loop {
        match a.order(&sell.id).await {
            Some(o) if o.status == OrderStatus::Filled && o.filled == d("1") => return Ok(()),
            Some(o) if o.filled > o.quantity => return Err(format!("overfilled: {o:?}")),
            _ => {}
        }
        if started.elapsed() > DEADLINE {
            return Err(format!("round {i}: {} never filled on A", sell.id));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A hostile order state: a resting order of `seq`, created `created_ms`.
fn own_order(seq: u64, price: u64, qty: u64, created_ms: u64) -> OrderState {
    OrderState {
        seq,
        side: Side::Sell,
        price: Price(price),
        qty: Qty(qty),
        remaining: Qty(qty),
        ver: 0,
        created_ms,
        expires_ms: None,
    }
}

/// A batch signed by the hostile peer itself (its own records, which it
/// may make say anything).
fn gossip(h: &Hostile, market: &str, sent_ms: u64, items: Vec<Item>) -> Vec<u8> {
    encode(&Gossip::signed(h.key(), market, sent_ms, items).0)
}

fn take(market: &str, maker_seq: u64, n: u32, kind: TakeKind) -> Vec<u8> {
    encode(&TakeRequest {
        v: WIRE_VERSION,
        market: market.into(),
        maker_seq,
        taker_seq: 1_000 + u64::from(n),
        take_n: n,
        kind,
        deadline_ms: None,
    })
}

fn buy(limit: u64, qty: u64) -> TakeKind {
    TakeKind::Fill {
        side: Side::Buy,
        limit: Some(Price(limit)),
        qty: Qty(qty),
    }
}

fn seq_of(order_id: &str) -> u64 {
    order_id
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no sequence number in {order_id}"))
}

async fn take_answer(h: &Hostile, to: PeerId, data: Vec<u8>) -> TakeResponse {
    let bytes = h
        .request(to, Proto::Take, data)
        .await
        .unwrap_or_else(|e| panic!("take request to {to} failed: {e}"));
    decode(&bytes, 1 << 20).expect("a take response")
}

async fn sync_answer(h: &Hostile, to: PeerId, data: Vec<u8>) -> SyncResponse {
    let bytes = h
        .request(to, Proto::Sync, data)
        .await
        .unwrap_or_else(|e| panic!("sync request to {to} failed: {e}"));
    decode(&bytes, 8 << 20).expect("a sync response")
}

/// Both nodes hold `id` (an order of the hostile peer).
async fn both_hold(nodes: &[&Api], id: &str, ctx: &dyn Fn() -> String) {
    for n in nodes {
        until(&format!("{} to hold {id}", n.name), ctx, || async {
            n.order(id).await.is_some()
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_is_refused_and_graylisted_while_honest_trading_goes_on() {
    // ---- two honest nodes, connected
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a_node = NodeOpts::new("A", dirs[0].path())
        .env("PEERBOOK_ENGINE_MAX_TAKES_PER_PEER_PER_SEC", TAKES_PER_SEC)
        .start();
    let a_status = a_node.ready().await;
    let b_node = NodeOpts::new("B", dirs[1].path())
        .env("PEERBOOK_ENGINE_MAX_TAKES_PER_PEER_PER_SEC", TAKES_PER_SEC)
        .bootstrap(format!("{}/p2p/{}", a_node.addr(), a_status.peer_id))
        .start();
    let b_status = b_node.ready().await;
    b_node.connected_to(&a_status.peer_id).await;
    a_node.connected_to(&b_status.peer_id).await;
    let nodes = [&a_node, &b_node];
    let output = || nodes.iter().map(|n| n.output()).collect::<String>();
    let (a, b) = (Api::of(&a_node), Api::of(&b_node));
    let a_id: PeerId = a_status.peer_id.parse().unwrap();
    let b_id: PeerId = b_status.peer_id.parse().unwrap();
    let topic = |name: &str| {
        a_status
            .books
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.topic.clone())
            .unwrap_or_else(|| panic!("A has no market {name}"))
    };
    let btc = topic("BTC-USD");
    let unknown_topic = "peerbook/1/market/NOPE-USD/000000000000".to_string();

    // ---- the hostile peer connects to both
    let h = Hostile::start(&[btc.clone(), topic("ETH-USD"), unknown_topic.clone()]);
    let h_id = h.id();
    for (n, id) in [(&a_node, a_id), (&b_node, b_id)] {
        let addr: Multiaddr = format!("{}/p2p/{id}", n.addr()).parse().unwrap();
        h.dial(addr).await.expect("dial");
    }
    eventually(
        "the hostile peer to be connected, and to hear both nodes subscribe",
        output,
        || async {
            [a_id, b_id]
                .iter()
                .all(|p| h.is_connected(p) && h.peer_subscribed(p, &btc))
                .then_some(())
        },
    )
    .await;
    a_node.connected_to(&h_id.to_string()).await;
    b_node.connected_to(&h_id.to_string()).await;

    // ---- honest orders the hostile peer will go after
    let victim = a
        .place(json!({"market":"BTC-USD","side":"buy","price":"100","quantity":"0.5"}))
        .await
        .unwrap();
    let target = a
        .place(json!({"market":"BTC-USD","side":"sell","price":"60000","quantity":"0.5"}))
        .await
        .unwrap();
    both_hold(&[&b], &victim.id, &output).await;
    both_hold(&[&b], &target.id, &output).await;

    // ---- honest trading all along the attack
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
        tokio::spawn(async move {
            let mut rounds = 0u64;
            while rounds < 3 || !stop.load(Ordering::Relaxed) {
                honest_round(&a, &b, rounds).await?;
                rounds += 1;
            }
            Ok::<u64, String>(rounds)
        })
    };

    // Its order numbers start far from A's, so that the cancels it sends
    // "of A's orders" do not hit orders of its own.
    let hostile_order = |seq: u64| format!("{h_id}/{seq}");
    let far = 9_000_000; // 90,000.00: far above every honest bid
    let lot = 10_000; // 1 BTC

    // 1. Its own valid order is taken in, by both nodes: the nodes listen to
    // it until it misbehaves.
    let created_1 = now_ms();
    let h1 = own_order(101, far, lot, created_1);
    h.publish(
        &btc,
        gossip(&h, "BTC-USD", now_ms(), vec![Item::Order(h1.clone())]),
    )
    .await
    .expect("publish");
    both_hold(&[&a, &b], &hostile_order(101), &output).await;

    // 2. Cancels and fills "of" the honest orders: items never name their
    // owner, so these speak of the hostile peer's own order numbers and
    // cannot touch A's orders.
    let forged_fill = FillMsg {
        maker_seq: seq_of(&victim.id),
        fill_seq: 1,
        mseq: 1,
        maker_side: Side::Buy,
        price: Price(10_000),
        qty: Qty(5_000),
        maker_remaining: Qty(0),
        maker_ver: 1,
        taker: a_id,
        taker_seq: seq_of(&target.id),
        take_n: 0,
        ts_ms: now_ms(),
    };
    h.publish(
        &btc,
        gossip(
            &h,
            "BTC-USD",
            now_ms(),
            vec![
                Item::Cancel {
                    seq: seq_of(&victim.id),
                },
                Item::Cancel {
                    seq: seq_of(&target.id),
                },
                Item::Fill(forged_fill),
                Item::Order(own_order(102, far + 1, lot, now_ms())),
            ],
        ),
    )
    .await
    .expect("publish");
    both_hold(&[&a, &b], &hostile_order(102), &output).await;
    for n in [&a, &b] {
        for o in [&victim, &target] {
            let now = n.order(&o.id).await;
            let now = now.unwrap_or_else(|| panic!("{} lost {}", n.name, o.id));
            assert_eq!(
                (now.status, now.remaining),
                (OrderStatus::Open, d("0.5")),
                "{}: forged cancels and fills changed {}",
                n.name,
                o.id
            );
        }
    }

    // 3. A replay of its own cancelled order does not bring it back (the
    // cancel is a tombstone); the new order in the same message is taken.
    h.publish(
        &btc,
        gossip(&h, "BTC-USD", now_ms(), vec![Item::Cancel { seq: 101 }]),
    )
    .await
    .expect("publish");
    for n in [&a, &b] {
        until(
            &format!("{} to drop the cancelled order", n.name),
            &output,
            || async { n.order(&hostile_order(101)).await.is_none() },
        )
        .await;
    }
    h.publish(
        &btc,
        gossip(
            &h,
            "BTC-USD",
            now_ms(),
            vec![
                Item::Order(h1.clone()),
                Item::Order(own_order(103, far + 2, lot, now_ms())),
            ],
        ),
    )
    .await
    .expect("publish");
    both_hold(&[&a, &b], &hostile_order(103), &output).await;
    for n in [&a, &b] {
        assert!(
            n.order(&hostile_order(101)).await.is_none(),
            "{}: a replayed order came back after its cancel",
            n.name
        );
    }

    // 4. Gossip two minutes late (older than the clock-skew allowance, not
    // old enough to be a replay) is ignored, not applied, not penalised.
    let late_before = [
        a.counter("gossip_late").await,
        b.counter("gossip_late").await,
    ];
    let late = now_ms() - 120_000;
    h.publish(
        &btc,
        gossip(
            &h,
            "BTC-USD",
            late,
            vec![Item::Order(own_order(104, far + 3, lot, late))],
        ),
    )
    .await
    .expect("publish");
    h.publish(
        &btc,
        gossip(
            &h,
            "BTC-USD",
            now_ms(),
            vec![Item::Order(own_order(105, far + 4, lot, now_ms()))],
        ),
    )
    .await
    .expect("publish");
    both_hold(&[&a, &b], &hostile_order(105), &output).await;
    // The later message can reach a node first, relayed by the other one;
    // once the late one is counted, it has been dealt with.
    for (n, before) in [&a, &b].into_iter().zip(late_before) {
        until(
            &format!("{} to count the late gossip (ignored)", n.name),
            &output,
            || async { n.counter("gossip_late").await > before },
        )
        .await;
        assert!(
            n.order(&hostile_order(104)).await.is_none(),
            "{}: late gossip was applied",
            n.name
        );
    }

    // 5. Takes. Ten times the quantity of A's order fills what it has, once.
    let tgt = seq_of(&target.id);
    match take_answer(&h, a_id, take("BTC-USD", tgt, 0, buy(6_000_000, 50_000))).await {
        TakeResponse::Filled(f) => assert_eq!(f.qty, Qty(5_000), "filled past the order: {f:?}"),
        other => panic!("the first take was not filled: {other:?}\n{}", output()),
    }
    for (what, data, expected) in [
        (
            "a take of a filled order",
            take("BTC-USD", tgt, 1, buy(6_000_000, 1)),
            [Refusal::Done, Refusal::NoQuantity].as_slice(),
        ),
        (
            "a take of an order that does not exist",
            take("BTC-USD", 999_999, 2, buy(6_000_000, 1)),
            &[Refusal::UnknownOrder],
        ),
        (
            "a take on a market that does not exist",
            take("DOGE-USD", tgt, 3, buy(6_000_000, 1)),
            &[Refusal::UnknownMarket],
        ),
        (
            "an undecodable take request",
            vec![0xff, 0x00, 0x13, 0x37],
            &[Refusal::BadRequest],
        ),
        (
            "a take of nothing",
            take(
                "BTC-USD",
                seq_of(&victim.id),
                4,
                TakeKind::Fill {
                    side: Side::Sell,
                    limit: None,
                    qty: Qty(0),
                },
            ),
            &[Refusal::BadRequest],
        ),
    ] {
        match take_answer(&h, a_id, data).await {
            TakeResponse::Refused(r) if expected.contains(&r) => {}
            other => panic!("{what}: {other:?}, expected one of {expected:?}"),
        }
    }
    // A flood of takes: refused as busy once over the per-peer rate.
    let refused_before = a.counter("takes_refused_as_maker").await;
    let mut busy = 0;
    let mut sent = 0;
    while busy == 0 {
        assert!(sent < 5_000, "5,000 takes and none refused as busy");
        let wave: Vec<_> = (0..100u32)
            .map(|i| {
                let data = take("BTC-USD", 999_999, 10 + sent + i, buy(6_000_000, 1));
                h.request(a_id, Proto::Take, data)
            })
            .collect();
        for answer in futures::future::join_all(wave).await {
            let bytes = answer.unwrap_or_else(|e| panic!("a flooded take failed: {e}"));
            match decode::<TakeResponse>(&bytes, 1 << 20) {
                Ok(TakeResponse::Refused(Refusal::Busy)) => busy += 1,
                Ok(TakeResponse::Refused(Refusal::UnknownOrder)) => {}
                other => panic!("a flooded take: {other:?}"),
            }
        }
        sent += 100;
    }
    assert!(
        a.counter("takes_refused_as_maker").await >= refused_before + f64::from(sent),
        "A did not count the refused takes"
    );
    let limited = a.counter("takes_rate_limited").await;
    assert!(
        limited >= f64::from(busy),
        "takes_rate_limited {limited} < {busy}"
    );
    // Sync requests: undecodable and unknown-market ones refused, a flood
    // refused as busy beyond the per-peer rate.
    match sync_answer(&h, a_id, vec![0xff, 0x00, 0x13]).await {
        SyncResponse::Refused(SyncRefusal::BadRequest) => {}
        other => panic!("an undecodable sync request: {other:?}"),
    }
    let book_of = |market: &str| {
        encode(&SyncRequest {
            v: WIRE_VERSION,
            market: market.into(),
            what: SyncWhat::Book { after: None },
        })
    };
    match sync_answer(&h, a_id, book_of("DOGE-USD")).await {
        SyncResponse::Refused(SyncRefusal::UnknownMarket) => {}
        other => panic!("a sync of a market that does not exist: {other:?}"),
    }
    let mut sync_busy = 0;
    let mut syncs = 0;
    while sync_busy == 0 {
        assert!(
            syncs < 5_000,
            "5,000 sync requests and none refused as busy"
        );
        let wave: Vec<_> = (0..100)
            .map(|_| sync_answer(&h, a_id, book_of("BTC-USD")))
            .collect();
        for answer in futures::future::join_all(wave).await {
            match answer {
                SyncResponse::Refused(SyncRefusal::Busy) => sync_busy += 1,
                SyncResponse::Book(_) => {}
                other => panic!("a flooded sync request: {other:?}"),
            }
        }
        syncs += 100;
    }
    let limited = a.counter("syncs_rate_limited").await;
    assert!(
        limited >= f64::from(sync_busy),
        "syncs_rate_limited {limited} < {sync_busy}"
    );

    let filled = a.order(&target.id).await.expect("A's target order");
    assert_eq!(
        (filled.status, filled.filled),
        (OrderStatus::Filled, d("0.5")),
        "the hostile take filled A's order exactly: {filled:?}"
    );

    // 6. Invalid gossip: rejected, and the sender penalised until graylisted.
    let rejected_before = [
        a.counter("gossip_rejected").await,
        b.counter("gossip_rejected").await,
    ];
    let now = now_ms();
    let hour = 3_600_000;
    let mut bad_order = own_order(106, far, lot, now);
    bad_order.price = Price(0);
    let invalid: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", vec![0xff, 0x00, 0x13, 0x37, 0x42]),
        (
            "an unknown market",
            gossip(
                &h,
                "NOPE-USD",
                now,
                vec![Item::Order(own_order(106, far, lot, now))],
            ),
        ),
        (
            "another market than the topic's",
            gossip(
                &h,
                "ETH-USD",
                now,
                vec![Item::Order(own_order(106, far, lot, now))],
            ),
        ),
        (
            "sent an hour ahead",
            gossip(
                &h,
                "BTC-USD",
                now + hour,
                vec![Item::Order(own_order(106, far, lot, now))],
            ),
        ),
        (
            "sent ten minutes ago (a replay)",
            gossip(
                &h,
                "BTC-USD",
                now - 600_000,
                vec![Item::Order(own_order(106, far, lot, now - 600_000))],
            ),
        ),
        (
            "an order created an hour ahead",
            gossip(
                &h,
                "BTC-USD",
                now,
                vec![Item::Order(own_order(106, far, lot, now + hour))],
            ),
        ),
        (
            "a new order created ten minutes ago",
            gossip(
                &h,
                "BTC-USD",
                now,
                vec![Item::Order(own_order(106, far, lot, now - 600_000))],
            ),
        ),
        (
            "a zero price",
            gossip(&h, "BTC-USD", now, vec![Item::Order(bad_order)]),
        ),
        ("no items", gossip(&h, "BTC-USD", now, vec![])),
    ];
    for (what, data) in invalid {
        h.publish(&btc, data)
            .await
            .unwrap_or_else(|e| panic!("publishing {what}: {e}"));
    }
    // Oversized: dropped by gossipsub before the engine sees it.
    let _ = h.publish(&btc, vec![0xa5; 2 << 20]).await;
    // A topic the nodes do not have: they never subscribed to it, so it
    // cannot even be sent to them.
    assert!(
        h.publish(&unknown_topic, gossip(&h, "NOPE-USD", now, vec![]))
            .await
            .is_err(),
        "a node subscribed to a topic it does not have"
    );
    for (n, before) in [(&a, rejected_before[0]), (&b, rejected_before[1])] {
        until(
            &format!("{} to graylist or drop the hostile peer", n.name),
            &output,
            || async {
                match n.peer(&h_id).await {
                    Some((false, _)) => true,
                    Some((true, Some(score))) => score <= GRAYLIST,
                    _ => false,
                }
            },
        )
        .await;
        let rejected = n.counter("gossip_rejected").await;
        assert!(
            rejected >= before + 3.0,
            "{}: only {} gossip messages rejected",
            n.name,
            rejected - before
        );
    }
    for n in [&a, &b] {
        eprintln!(
            "{}: the hostile peer (connected, score): {:?}; rejected {}",
            n.name,
            n.peer(&h_id).await,
            n.counter("gossip_rejected").await
        );
    }
    // Graylisted: even its valid gossip is ignored now. The marker, placed
    // after that gossip was sent and seen by B, orders the check.
    h.publish(
        &btc,
        gossip(
            &h,
            "BTC-USD",
            now_ms(),
            vec![Item::Order(own_order(107, far + 5, lot, now_ms()))],
        ),
    )
    .await
    .ok();
    for id in [a_id, b_id] {
        if h.is_connected(&id) {
            // A round trip on the same connection, after the gossip.
            let _ = h
                .request(id, Proto::Take, take("BTC-USD", 999_999, 9_999, buy(1, 1)))
                .await;
        }
    }
    let marker = a
        .place(json!({"market":"BTC-USD","side":"sell","price":"70000","quantity":"0.1"}))
        .await
        .unwrap();
    both_hold(&[&b], &marker.id, &output).await;
    for n in [&a, &b] {
        assert!(
            n.order(&hostile_order(107)).await.is_none(),
            "{}: took in gossip from a graylisted peer",
            n.name
        );
    }

    // ---- honest trading went on all along
    stop.store(true, Ordering::Relaxed);
    let rounds = traffic
        .await
        .expect("the traffic task")
        .unwrap_or_else(|e| panic!("honest trading failed: {e}\n{}", output()));
    assert!(rounds >= 3);
    eprintln!(
        "{rounds} honest rounds during the attack; busy: {busy} of {sent} flooded takes, \
         {sync_busy} of {syncs} flooded sync requests"
    );

    // ---- equal books and no overfill
    for market in ["BTC-USD", "ETH-USD"] {
        eventually(
            &format!("A and B to hold one digest of {market}"),
            output,
            || async {
                let (x, y) = (a.book(market).await?, b.book(market).await?);
                (x.digest == y.digest && x.orders == y.orders).then_some(())
            },
        )
        .await;
    }
    let honest = [a_id.to_string(), b_id.to_string()];
    let is_honest = |order_id: &str| honest.iter().any(|p| order_id.starts_with(p.as_str()));
    let mut quantity: BTreeMap<String, Decimal> = BTreeMap::new();
    for n in [&a, &b] {
        for o in n.own_orders().await.expect("own orders") {
            assert!(o.filled <= o.quantity, "{}: overfilled {o:?}", n.name);
            quantity.insert(o.id.clone(), o.quantity);
        }
    }
    for n in [&a, &b] {
        let mut traded: BTreeMap<String, Decimal> = BTreeMap::new();
        for t in n.trades().await.expect("trades") {
            if !is_honest(&t.maker_order_id) {
                // The hostile peer's word about its own orders. A third party
                // cannot tell a forged fill from a real one, but the node it
                // names as taker can, and does not record it.
                assert!(t.maker_order_id.starts_with(&h_id.to_string()));
                assert!(
                    n.name != "A" || !t.taker_order_id.starts_with(&a_id.to_string()),
                    "A recorded a fill naming its order as taker that it never took: {t:?}"
                );
                continue;
            }
            *traded.entry(t.maker_order_id.clone()).or_default() += t.quantity;
            *traded.entry(t.taker_order_id.clone()).or_default() += t.quantity;
        }
        for (id, sum) in &traded {
            if let Some(q) = quantity.get(id) {
                assert!(sum <= q, "{}: {id} traded {sum} of {q}", n.name);
            }
        }
    }
    let target_after = a.order(&target.id).await.unwrap();
    assert_eq!(target_after.filled, d("0.5"), "{target_after:?}");
    eventually("A and B to show the same honest trades", output, || async {
        let mut again = Vec::new();
        for n in [&a, &b] {
            let mut log: Vec<String> = n
                .trades()
                .await?
                .into_iter()
                .filter(|t| is_honest(&t.maker_order_id))
                .map(|t| format!("{}:{}", t.id, t.quantity))
                .collect();
            log.sort();
            again.push(log);
        }
        (again[0] == again[1]).then_some(())
    })
    .await;
}
