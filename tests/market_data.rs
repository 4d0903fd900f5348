//! Market data as a trading program reads it (docs/market-data.md): the
//! markets, tickers and candles of real nodes that trade, candles that
//! equal candles recomputed from `/trades` and survive a restart, and
//! orders that expire.

mod common;

use std::collections::BTreeMap;

use common::*;
use peerbook::clock::now_ms;
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn dec(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("a decimal string, not {v}"))
        .parse()
        .unwrap()
}

/// Candles recomputed from a node's `/trades`, as a client would.
fn recompute(trades: &[Value], step: u64) -> Vec<Value> {
    let mut sorted: Vec<&Value> = trades.iter().collect();
    sorted.sort_by(|a, b| {
        (a["ts_ms"].as_u64(), a["id"].as_str()).cmp(&(b["ts_ms"].as_u64(), b["id"].as_str()))
    });
    let mut out: BTreeMap<u64, (Decimal, Decimal, Decimal, Decimal, Decimal, u64)> =
        BTreeMap::new();
    for t in sorted {
        let ts = t["ts_ms"].as_u64().unwrap();
        let (p, q) = (dec(&t["price"]), dec(&t["quantity"]));
        let c = out
            .entry(ts - ts % step)
            .or_insert((p, p, p, p, Decimal::ZERO, 0));
        c.1 = c.1.max(p);
        c.2 = c.2.min(p);
        c.3 = p;
        c.4 += q;
        c.5 += 1;
    }
    out.into_iter()
        .map(|(t, (o, h, l, c, v, n))| {
            json!({"t": t, "open": o.to_string(), "high": h.to_string(), "low": l.to_string(),
                   "close": c.to_string(), "volume": v.to_string(), "trades": n})
        })
        .collect()
}

/// The node's candles, with decimals normalized so "1.50" equals "1.5".
async fn candles(n: &Node, interval: &str) -> Vec<Value> {
    let a = n
        .get_json(&format!("/api/v1/candles/BTC-USD?interval={interval}"))
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["interval"], interval);
    a.body["candles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let d = |k: &str| dec(&c[k]).normalize().to_string();
            json!({"t": c["t"], "open": d("open"), "high": d("high"), "low": d("low"),
                   "close": d("close"), "volume": d("volume"), "trades": c["trades"]})
        })
        .collect()
}

fn normalized(v: Vec<Value>) -> Vec<Value> {
    v.into_iter()
        .map(|mut c| {
            for k in ["open", "high", "low", "close", "volume"] {
                c[k] = json!(dec(&c[k]).normalize().to_string());
            }
            c
        })
        .collect()
}

async fn all_trades(n: &Node) -> Vec<Value> {
    let a = n
        .get_json("/api/v1/trades?market=BTC-USD&limit=10000")
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body.as_array().unwrap().clone()
}

/// A rests sells, B takes them: `count` trades at rising prices.
async fn trade_some(a: &Node, b: &Node, count: usize) {
    for i in 0..count {
        let price = format!("{}.{:02}", 100 + i, i * 7 % 100);
        let sell = a
            .place(json!({"market":"BTC-USD","side":"sell","price":price,"quantity":"0.5"}))
            .await;
        let id = sell["id"].as_str().unwrap().to_string();
        eventually(
            "B sees A's sell",
            || b.output(),
            || async {
                let book = b.get_json("/api/v1/book/BTC-USD").await;
                (book.body["asks"].as_array().is_some_and(|a| !a.is_empty())).then_some(())
            },
        )
        .await;
        b.place(
            json!({"market":"BTC-USD","side":"buy","price":price,"quantity":"0.3",
                       "time_in_force":"ioc"}),
        )
        .await;
        eventually(
            "the take fills",
            || a.output(),
            || async {
                let o = a.get_json(&format!("/api/v1/orders/{id}")).await;
                (dec(&o.body["filled"]) > Decimal::ZERO).then_some(())
            },
        )
        .await;
        // Leave no ask behind for the next round's check.
        let r = a
            .request(
                reqwest::Method::DELETE,
                &format!("/api/v1/orders/{id}"),
                None,
                None,
            )
            .await;
        assert!(r.status == 200 || r.status == 409, "{r:?}");
        eventually(
            "B sees the ask gone",
            || b.output(),
            || async {
                let book = b.get_json("/api/v1/book/BTC-USD").await;
                (book.body["asks"].as_array().is_some_and(|a| a.is_empty())).then_some(())
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candles_and_tickers_match_the_trades_on_both_nodes_and_survive_a_restart() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut a, b) = connected_pair(dirs[0].path(), dirs[1].path()).await;

    let markets = a.get_json("/api/v1/markets").await;
    assert_eq!(markets.status, 200);
    let btc = markets
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "BTC-USD")
        .expect("BTC-USD is listed")
        .clone();
    assert!(dec(&btc["tick"]) > Decimal::ZERO && dec(&btc["lot"]) > Decimal::ZERO);

    trade_some(&a, &b, 4).await;
    // Both nodes know all four trades.
    for n in [&a, &b] {
        eventually(
            "every trade is known",
            || n.output(),
            || async { (all_trades(n).await.len() == 4).then_some(()) },
        )
        .await;
    }
    for n in [&a, &b] {
        let trades = all_trades(n).await;
        for (interval, step) in [("1m", 60_000), ("5m", 300_000), ("1h", 3_600_000)] {
            assert_eq!(
                candles(n, interval).await,
                normalized(recompute(&trades, step)),
                "{interval} candles are the trades'"
            );
        }
        let t = n.get_json("/api/v1/ticker?market=BTC-USD").await;
        assert_eq!(t.status, 200, "{t:?}");
        let newest = trades
            .iter()
            .max_by_key(|t| (t["ts_ms"].as_u64(), t["id"].as_str().map(String::from)))
            .unwrap();
        assert_eq!(dec(&t.body["last"]), dec(&newest["price"]));
        assert_eq!(t.body["trades_24h"], 4);
        assert_eq!(dec(&t.body["volume_24h"]), "1.2".parse().unwrap());
        assert_eq!(dec(&t.body["high_24h"]), "103.21".parse().unwrap());
        assert_eq!(dec(&t.body["low_24h"]), "100".parse().unwrap());
    }
    let before = candles(&a, "1m").await;

    a.stop();
    let a = NodeOpts::new("A", dirs[0].path()).start();
    a.ready().await;
    assert_eq!(
        candles(&a, "1m").await,
        before,
        "the candles come back from the durable tape"
    );
    let t = a.get_json("/api/v1/ticker?market=BTC-USD").await;
    assert_eq!(t.body["trades_24h"], 4, "{t:?}");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candle_queries_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let a = NodeOpts::new("A", dir.path()).start();
    a.ready().await;
    for (path, status, code) in [
        ("/api/v1/candles/NOPE-USD", 404, "unknown_market"),
        ("/api/v1/candles/BTC-USD?interval=2m", 400, "bad_interval"),
        ("/api/v1/candles/BTC-USD?limit=0", 400, "bad_limit"),
        ("/api/v1/candles/BTC-USD?limit=5001", 400, "bad_limit"),
        ("/api/v1/candles/BTC-USD?start=10&end=5", 400, "bad_range"),
        ("/api/v1/ticker?market=NOPE-USD", 404, "unknown_market"),
    ] {
        let r = a.get_json(path).await;
        assert_eq!(r.status, status, "{path}: {r:?}");
        assert_eq!(r.code(), code, "{path}: {r:?}");
    }
    let empty = a
        .get_json("/api/v1/candles/BTC-USD?interval=1d&limit=7")
        .await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["candles"], json!([]), "no trade, no candle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_expires_on_its_node_on_replicas_and_across_a_restart() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut a, b) = connected_pair(dirs[0].path(), dirs[1].path()).await;

    // Refusals name what is wrong.
    for (body, says) in [
        (
            json!({"market":"BTC-USD","side":"sell","price":"100","quantity":"1",
                   "time_in_force":"ioc","expires_at": now_ms() + 60_000}),
            "gtc or post-only",
        ),
        (
            json!({"market":"BTC-USD","side":"sell","price":"100","quantity":"1",
                   "expires_at": now_ms() - 1_000}),
            "not in the future",
        ),
        (
            json!({"market":"BTC-USD","side":"sell","price":"100","quantity":"1",
                   "expires_at": "soon"}),
            "expires_at",
        ),
    ] {
        let r = a
            .request(reqwest::Method::POST, "/api/v1/orders", Some(&body), None)
            .await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert!(r.body.to_string().contains(says), "{body}: {r:?}");
    }

    // A short one, seen expire on the node and on the replica.
    let at = now_ms() + 3_000;
    let short = a
        .place(
            json!({"market":"BTC-USD","side":"sell","price":"200","quantity":"1",
                      "expires_at": at}),
        )
        .await;
    assert_eq!(short["expires_at"], at);
    let short_id = short["id"].as_str().unwrap().to_string();
    // A long one that expires while the node is down.
    let later = now_ms() + 6_000;
    let long = a
        .place(
            json!({"market":"BTC-USD","side":"sell","price":"201","quantity":"1",
                      "time_in_force":"post-only","expires_at": later}),
        )
        .await;
    let long_id = long["id"].as_str().unwrap().to_string();
    eventually(
        "B sees both",
        || b.output(),
        || async {
            let o = b.get_json(&format!("/api/v1/orders/{long_id}")).await;
            let book = b.get_json("/api/v1/book/BTC-USD").await;
            (o.status == 200 && book.body["asks"].as_array().is_some_and(|a| a.len() == 2))
                .then_some(o)
        },
    )
    .await;
    let seen = b.get_json(&format!("/api/v1/orders/{short_id}")).await;
    assert_eq!(seen.body["expires_at"], at, "the expiry is in the record");

    let o = eventually(
        "the short one expires on its node",
        || a.output(),
        || async {
            let o = a.get_json(&format!("/api/v1/orders/{short_id}")).await;
            (o.body["status"] == "expired").then_some(o)
        },
    )
    .await;
    assert!(now_ms() >= at, "not before its time: {o:?}");
    // On the replica it is expired by its own clock, or gone once the
    // owner's tombstone came, whichever was first.
    let o = eventually(
        "the short one expires on the replica",
        || b.output(),
        || async {
            let o = b.get_json(&format!("/api/v1/orders/{short_id}")).await;
            (o.body["status"] == "expired" || o.status == 404).then_some(o)
        },
    )
    .await;
    assert!(now_ms() >= at, "not before its time: {o:?}");

    // The owner is stopped before the long one's time: the replica stops
    // counting it at its expiry all the same.
    a.stop();
    eventually(
        "B stops counting the long one",
        || b.output(),
        || async {
            let book = b.get_json("/api/v1/book/BTC-USD").await;
            book.body["asks"]
                .as_array()
                .is_some_and(|a| a.is_empty())
                .then_some(())
        },
    )
    .await;
    assert!(now_ms() >= later);
    let o = b.get_json(&format!("/api/v1/orders/{long_id}")).await;
    assert_eq!(o.body["status"], "expired", "{o:?}");

    // Back up, the owner ends it expired too.
    let a = NodeOpts::new("A", dirs[0].path()).start();
    a.ready().await;
    let o = eventually(
        "the owner ends it after the restart",
        || a.output(),
        || async {
            let o = a.get_json(&format!("/api/v1/orders/{long_id}")).await;
            (o.body["status"] == "expired").then_some(o)
        },
    )
    .await;
    assert_eq!(o.body["expires_at"], later);
    assert_eq!(o.body["filled"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_places_an_order_good_for_a_while_and_shows_its_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let a = NodeOpts::new("A", dir.path()).start();
    a.ready().await;
    let place = |extra: &[&str]| {
        let mut cmd = command();
        cmd.args([
            "order",
            "place",
            "--market",
            "BTC-USD",
            "--side",
            "buy",
            "--price",
            "90",
            "--quantity",
            "1",
        ])
        .args(extra)
        .arg("--api")
        .arg(a.api_base());
        run_to_exit(cmd)
    };
    let before = now_ms();
    let out = place(&["--expires-in", "2h", "--json"]);
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    let o: Value = serde_json::from_str(&out.stdout).unwrap();
    let at = o["expires_at"].as_u64().expect("an expiry");
    assert!(
        at >= before + 7_200_000 && at <= now_ms() + 7_200_000,
        "{o}"
    );
    let shown = place(&["--expires-at", &(now_ms() + 60_000).to_string()]);
    assert!(
        shown.stdout.contains("expires"),
        "{}{}",
        shown.stdout,
        shown.stderr
    );
    let bad = place(&["--expires-in", "5x"]);
    assert_eq!(bad.status.code(), Some(2), "{}{}", bad.stdout, bad.stderr);
    assert!(
        bad.stderr.contains("unit must be s, m, h or d"),
        "{}{}",
        bad.stdout,
        bad.stderr
    );
    let ioc = place(&["--expires-in", "1m", "--tif", "ioc"]);
    assert_eq!(ioc.status.code(), Some(1), "{}{}", ioc.stdout, ioc.stderr);
    assert!(
        ioc.stderr.contains("gtc or post-only"),
        "{}{}",
        ioc.stdout,
        ioc.stderr
    );
}
