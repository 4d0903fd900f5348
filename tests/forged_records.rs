//! Forged sync pages against real nodes.
//!
//! Two honest nodes A and B trade; a hostile libp2p peer H in the test
//! process (tests/common/hostile.rs) hears A's gossip, so it holds A's real
//! signed records, and answers every book sync request with a page it made
//! from them: an order "of A" A never placed (plant), A's real order at a
//! version A never signed (freeze), a fill emptying A's real order and a
//! trade that never was (erase, fake trade), an order whose proof leads
//! nowhere, and beside them two genuine records of A.
//!
//! A newcomer C whose only peer is H pulls its book from H: nothing forged
//! may reach its book, its trades, an order lookup or its event stream; the
//! genuine records count; H is counted (by reason) and banned (disconnected,
//! and refused when it dials again). C restarted with A as its bootstrap
//! ends with the honest nodes' book and trades whatever H serves it again.

mod common;
#[path = "common/hostile.rs"]
mod hostile;

use std::time::{Duration, Instant};

use common::{connected_pair, eventually, sample, Node, NodeOpts, DEADLINE};
use hostile::Hostile;
use libp2p::{Multiaddr, PeerId};
use peerbook::engine::{BookInfo, TradeInfo};
use peerbook::market::{Qty, Side};
use peerbook::wire::proof::{self, PageBatches, Proof, Proven, Stored};
use peerbook::wire::{
    decode, BookPage, FillMsg, Gossip, Item, OrderState, OwnerOrders, ProvenOrder, SyncRequest,
    SyncResponse, SyncWhat,
};
use serde_json::json;

fn encode<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    peerbook::wire::encode(msg).expect("a wire message encodes")
}

fn seq_of(order_id: &str) -> u64 {
    order_id.rsplit('/').next().unwrap().parse().unwrap()
}

async fn book(n: &Node) -> BookInfo {
    let a = n.get_json("/api/v1/book/BTC-USD").await;
    assert_eq!(a.status, 200, "{a:?}");
    serde_json::from_value(a.body).unwrap()
}

async fn trades(n: &Node) -> Vec<TradeInfo> {
    let a = n.get_json("/api/v1/trades?limit=1000").await;
    assert_eq!(a.status, 200, "{a:?}");
    serde_json::from_value(a.body).unwrap()
}

/// Every record of `owner` H heard in gossip, with its stored proof.
fn heard_records(h: &Hostile, owner: &PeerId) -> Vec<(Item, Stored)> {
    let mut out = Vec::new();
    for data in h.gossip_of(owner) {
        let Ok(g) = decode::<Gossip>(&data, 1 << 20) else {
            continue;
        };
        if let Ok(stored) = proof::open_batch(owner, &g.market, g.sent_ms, &g.items, &g.sig) {
            out.extend(g.items.into_iter().zip(stored));
        }
    }
    out
}

fn latest_order(records: &[(Item, Stored)], seq: u64) -> Option<(OrderState, Stored)> {
    records
        .iter()
        .filter_map(|(i, p)| match i {
            Item::Order(o) if o.seq == seq => Some((o.clone(), p.clone())),
            _ => None,
        })
        .max_by_key(|(o, _)| o.ver)
}

fn carried(item: OrderState, p: &Stored, page: &mut PageBatches) -> ProvenOrder {
    ProvenOrder {
        order: Proven {
            item,
            proof: page.proof(p),
        },
        fill: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_pages_reach_no_book_trade_or_event_and_their_server_is_banned() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b) = connected_pair(dirs[0].path(), dirs[1].path()).await;
    let a_status = a.ready().await;
    let a_id: PeerId = a_status.peer_id.parse().unwrap();
    let topic = a_status
        .books
        .iter()
        .find(|m| m.name == "BTC-USD")
        .map(|m| m.topic.clone())
        .expect("A trades BTC-USD");
    let output = || format!("{}{}", a.output(), b.output());

    // ---- H joins A's gossip before A places anything, to hear it all.
    let h = Hostile::start(std::slice::from_ref(&topic));
    let h_id = h.id();
    h.dial(format!("{}/p2p/{a_id}", a.addr()).parse().unwrap())
        .await
        .expect("dial A");
    eventually("H to hear A subscribe", output, || async {
        h.peer_subscribed(&a_id, &topic).then_some(())
    })
    .await;
    // gossipsub grafts H into A's mesh at its next heartbeat.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // ---- A's real orders, and a real trade with B.
    let s1 = a
        .place(json!({"market":"BTC-USD","side":"sell","price":"100","quantity":"0.5"}))
        .await;
    let s2 = a
        .place(json!({"market":"BTC-USD","side":"sell","price":"101","quantity":"0.3"}))
        .await;
    eventually("B to hold A's two sells", output, || async {
        (book(&b).await.asks.len() == 2).then_some(())
    })
    .await;
    let buy = b
        .place(json!({"market":"BTC-USD","side":"buy","price":"100","quantity":"0.1","time_in_force":"ioc"}))
        .await;
    assert_eq!(buy["filled"], "0.1", "{buy}");
    let (s1, s2) = (
        seq_of(s1["id"].as_str().unwrap()),
        seq_of(s2["id"].as_str().unwrap()),
    );
    let records = eventually("H to hold A's signed orders and fill", output, || async {
        let r = heard_records(&h, &a_id);
        let filled = r
            .iter()
            .any(|(i, _)| matches!(i, Item::Fill(f) if f.maker_seq == s1));
        (latest_order(&r, s1).is_some() && latest_order(&r, s2).is_some() && filled).then_some(r)
    })
    .await;
    let (o1, p1) = latest_order(&records, s1).unwrap();
    let (o2, p2) = latest_order(&records, s2).unwrap();
    let (real_fill, real_fill_proof) = records
        .iter()
        .find_map(|(i, p)| match i {
            Item::Fill(f) if f.maker_seq == s1 => Some((f.clone(), p.clone())),
            _ => None,
        })
        .unwrap();
    let truth = book(&a).await;

    // ---- H's page: forgeries around A's genuine records.
    let now = o2.created_ms;
    let planted = OrderState {
        seq: 999_999,
        side: Side::Sell,
        price: o1.price,
        qty: Qty(1_000_000),
        remaining: Qty(1_000_000),
        ver: 0,
        created_ms: now,
        expires_ms: None,
    };
    let mut frozen = o2.clone();
    frozen.ver = u64::MAX;
    frozen.remaining = Qty(1);
    let erase = FillMsg {
        maker_seq: s1,
        fill_seq: 77,
        mseq: 77,
        maker_side: Side::Sell,
        price: o1.price,
        qty: o1.remaining,
        maker_remaining: Qty(0),
        maker_ver: o1.ver + 50,
        taker: h_id,
        taker_seq: 5,
        take_n: 0,
        ts_ms: now,
    };
    let fake_trade_id = format!("{a_id}/{s1}/77");
    let (_, signed_by_h) = Gossip::signed(
        h.key(),
        "BTC-USD",
        now,
        vec![Item::Order(planted.clone()), Item::Fill(erase.clone())],
    );
    let mut page = PageBatches::default();
    let orders = vec![
        carried(planted, &signed_by_h[0], &mut page),
        carried(frozen, &p2, &mut page),
        ProvenOrder {
            order: Proven {
                item: OrderState {
                    seq: 999_998,
                    ..o1.clone()
                },
                proof: Proof {
                    batch: 0,
                    index: 0,
                    // Not even a whole node: it can lead to no root.
                    path: vec![3; 5],
                },
            },
            fill: None,
        },
        carried(o1.clone(), &p1, &mut page),
        carried(o2.clone(), &p2, &mut page),
    ];
    let fills = vec![
        (
            a_id,
            Proven {
                item: erase,
                proof: page.proof(&signed_by_h[1]),
            },
        ),
        (
            a_id,
            Proven {
                item: real_fill.clone(),
                proof: page.proof(&real_fill_proof),
            },
        ),
    ];
    let forged = encode(&SyncResponse::Book(BookPage {
        batches: page.into_list(),
        owners: vec![OwnerOrders {
            owner: a_id,
            orders,
        }],
        fills,
        next: None,
    }));
    h.answer_sync(move |req| match decode::<SyncRequest>(req, 1 << 20) {
        Ok(SyncRequest {
            market,
            what: SyncWhat::Book { .. },
            ..
        }) if market == "BTC-USD" => Some(forged.clone()),
        _ => None,
    });

    // ---- C, alone, with H its only peer: H dials it.
    let c = NodeOpts::new("C", dirs[2].path()).start();
    let c_id: PeerId = c.ready().await.peer_id.parse().unwrap();
    let mut events = c
        .http()
        .get(c.url("/api/v1/events"))
        .send()
        .await
        .expect("GET /api/v1/events");
    let c_addr: Multiaddr = format!("{}/p2p/{c_id}", c.addr()).parse().unwrap();
    h.dial(c_addr.clone()).await.expect("dial C");
    eventually(
        "C to refuse H's page and ban H",
        || c.output(),
        || async {
            let m = c.metrics().await;
            (sample(&m, "peerbook_peers_banned_total") == Some(1.0)).then_some(())
        },
    )
    .await;
    let m = c.metrics().await;
    let refused = |reason: &str| {
        sample(
            &m,
            &format!("peerbook_records_refused_total{{reason=\"{reason}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let counts: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("peerbook_records_refused_total"))
        .collect();
    assert_eq!(
        refused("bad_signature"),
        3.0,
        "plant, freeze, erase: {counts:?}"
    );
    assert_eq!(
        refused("bad_proof"),
        1.0,
        "a proof that leads nowhere: {counts:?}"
    );
    assert!(h.sync_requests_from(&c_id) >= 1);

    // Only A's genuine records count; nothing forged is anywhere.
    let c_book = book(&c).await;
    assert_eq!(c_book.asks, truth.asks, "C shows A's real orders, whole");
    assert_eq!(c_book.digest, truth.digest);
    let planted_id = format!("{a_id}/999999");
    assert_eq!(
        c.get_json(&format!("/api/v1/orders/{planted_id}"))
            .await
            .status,
        404
    );
    let c_trades: Vec<String> = trades(&c).await.into_iter().map(|t| t.id).collect();
    assert_eq!(
        c_trades,
        vec![format!("{a_id}/{s1}/1")],
        "the real trade only"
    );
    // The event stream carried the real trade and never the fake one.
    let mut seen = String::new();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_millis(300), events.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(_) => break,
            Err(_) => {}
        }
    }
    assert!(seen.contains(&format!("{a_id}/{s1}/1")), "{seen}");
    assert!(!seen.contains(&fake_trade_id), "{seen}");
    assert!(!seen.contains(&planted_id), "{seen}");

    // H is dropped and refused when it comes back.
    eventually(
        "C to drop H",
        || c.output(),
        || async { (!h.is_connected(&c_id)).then_some(()) },
    )
    .await;
    let _ = h.dial(c_addr).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!h.is_connected(&c_id), "a banned peer is refused");

    // ---- C restarted, with A and H to bootstrap from: the truth wins.
    drop(events);
    let mut c = c;
    c.stop();
    let c = NodeOpts::new("C", dirs[2].path())
        .bootstrap(format!("{}/p2p/{a_id}", a.addr()))
        .start();
    c.ready().await;
    let _ = h
        .dial(format!("{}/p2p/{c_id}", c.addr()).parse().unwrap())
        .await;
    let started = Instant::now();
    loop {
        let (bc, ba, bb) = (book(&c).await, book(&a).await, book(&b).await);
        let ids = |t: Vec<TradeInfo>| t.into_iter().map(|t| t.id).collect::<Vec<_>>();
        let (tc, ta) = (ids(trades(&c).await), ids(trades(&a).await));
        if bc.digest == ba.digest && ba.digest == bb.digest && tc == ta {
            assert_eq!(bc.asks, ba.asks);
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "C never matched A and B: C {bc:?} {tc:?}, A {ba:?} {ta:?}\n{}",
            c.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        c.get_json(&format!("/api/v1/orders/{planted_id}"))
            .await
            .status,
        404
    );
}
