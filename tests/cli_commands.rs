//! The CLI client commands and the demo trader, run as the real binary
//! against real nodes on loopback: aligned tables by default, the node's
//! JSON with `--json`, the node's own error messages, exit status 1 when
//! the node refuses or cannot be reached and 2 for a bad flag; the demo
//! places and cancels orders, stops after `--count` or on Ctrl-C, and
//! sums up.

mod common;

use std::time::{Duration, Instant};

use common::{connected_pair, eventually, run_to_exit, Finished, Node, NodeOpts, DEADLINE};
use peerbook::engine::{BookInfo, OrderInfo, TradeInfo};
use serde_json::Value;

/// `peerbook <args> --api <node>` to its end.
fn cli(node: &Node, args: &[&str]) -> Finished {
    let mut cmd = common::command();
    cmd.args(args).arg("--api").arg(node.api_base());
    run_to_exit(cmd)
}

fn ok(f: &Finished, what: &str) -> String {
    assert!(
        f.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        f.status,
        f.stdout,
        f.stderr
    );
    f.stdout.clone()
}

fn failed(f: &Finished, code: i32, what: &str) -> String {
    assert_eq!(
        f.status.code(),
        Some(code),
        "{what}\nstdout:\n{}\nstderr:\n{}",
        f.stdout,
        f.stderr
    );
    f.stderr.clone()
}

fn json<T: serde::de::DeserializeOwned>(f: &Finished, what: &str) -> T {
    serde_json::from_str(&ok(f, what))
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}):\n{}", f.stdout))
}

#[tokio::test]
async fn order_commands_print_tables_or_json_and_the_nodes_errors_with_exit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("cli", dir.path()).start();
    let me = node.ready().await.peer_id;

    let out = ok(
        &cli(
            &node,
            &[
                "order",
                "place",
                "--market",
                "BTC-USD",
                "--side",
                "buy",
                "--price",
                "99.5",
                "--quantity",
                "0.25",
            ],
        ),
        "place",
    );
    assert!(out.contains("status     open"), "{out}");
    assert!(out.contains("side       buy limit (gtc)"), "{out}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("order"))
        .map(|s| s.trim().to_string())
        .expect("the order id");
    assert!(id.starts_with(&me), "{id}");

    let place_c1 = [
        "order",
        "place",
        "--json",
        "--market",
        "BTC-USD",
        "--side",
        "sell",
        "--price",
        "101",
        "--quantity",
        "1",
        "--tif",
        "post-only",
        "--client-id",
        "c-1",
    ];
    let placed: OrderInfo = json(&cli(&node, &place_c1), "place --json");
    assert_eq!(placed.client_id.as_deref(), Some("c-1"));
    let again: OrderInfo = json(&cli(&node, &place_c1), "the same client id");
    assert_eq!(
        again.id, placed.id,
        "a repeated client id placed a second order"
    );

    let got: OrderInfo = json(&cli(&node, &["order", "get", &id, "--json"]), "get --json");
    assert_eq!(got.id, id);
    let shown = ok(&cli(&node, &["order", "get", &id]), "get");
    assert!(
        shown.contains(&id) && shown.contains("remaining  0.25"),
        "{shown}"
    );

    let table = ok(&cli(&node, &["order", "list"]), "list");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATUS"),
        "{table}"
    );
    // Columns line up: every row's market starts where the header's does.
    let col = lines[0].find("MARKET").unwrap();
    assert!(
        lines[1..].iter().all(|l| l[col..].starts_with("BTC-USD")),
        "{table}"
    );
    let listed: Vec<OrderInfo> = json(
        &cli(
            &node,
            &[
                "order", "list", "--json", "--status", "open", "--market", "BTC-USD",
            ],
        ),
        "list --json",
    );
    assert_eq!(listed.len(), 2);
    assert_eq!(
        ok(
            &cli(&node, &["order", "list", "--market", "ETH-USD"]),
            "empty list"
        )
        .trim(),
        "no orders"
    );

    let book: BookInfo = json(&cli(&node, &["book", "BTC-USD", "--json"]), "book --json");
    assert_eq!(book.orders, 2);
    let ladder = ok(&cli(&node, &["book", "BTC-USD", "--depth", "5"]), "book");
    assert!(ladder.contains("spread 1.5"), "{ladder}");
    let ask = ladder.lines().position(|l| l.starts_with("ask")).unwrap();
    let bid = ladder.lines().position(|l| l.starts_with("bid")).unwrap();
    assert!(ask < bid, "asks above bids:\n{ladder}");

    let cancelled = ok(&cli(&node, &["order", "cancel", &id]), "cancel");
    assert!(cancelled.contains("status     cancelled"), "{cancelled}");

    // The node's refusals: its message, exit status 1.
    let err = failed(&cli(&node, &["order", "cancel", &id]), 1, "cancel twice");
    assert!(
        err.contains("409") && err.contains("already cancelled"),
        "{err}"
    );
    let err = failed(
        &cli(&node, &["order", "get", &format!("{me}/424242")]),
        1,
        "unknown order",
    );
    assert!(err.contains("404") && err.contains("not found"), "{err}");
    let err = failed(
        &cli(
            &node,
            &[
                "order",
                "place",
                "--market",
                "BTC-USD",
                "--side",
                "buy",
                "--price",
                "-2",
                "--quantity",
                "1",
            ],
        ),
        1,
        "negative price",
    );
    assert!(err.contains("price must be greater than zero"), "{err}");
    let err = failed(&cli(&node, &["book", "NOPE-USD"]), 1, "unknown market");
    assert!(err.contains("unknown market"), "{err}");

    // Bad flags never reach the node: exit status 2.
    for args in [
        &[
            "order",
            "place",
            "--market",
            "BTC-USD",
            "--side",
            "up",
            "--price",
            "1",
            "--quantity",
            "1",
        ][..],
        &[
            "order",
            "place",
            "--market",
            "BTC-USD",
            "--side",
            "buy",
            "--price",
            "one",
            "--quantity",
            "1",
        ],
        &[
            "order",
            "place",
            "--market",
            "BTC-USD",
            "--side",
            "buy",
            "--quantity",
            "1",
            "--tif",
            "gtd",
        ],
        &["order", "list", "--status", "sleeping"],
        &["order", "frobnicate"],
        &["trades", "--limit", "many"],
    ] {
        failed(&cli(&node, args), 2, &format!("{args:?}"));
    }
    let listed: Vec<OrderInfo> = json(
        &cli(&node, &["order", "list", "--json"]),
        "list after refusals",
    );
    assert_eq!(listed.len(), 2, "a refused command placed an order");
}

#[tokio::test]
async fn book_trades_and_peers_show_a_trade_between_two_nodes() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (a, b) = connected_pair(dir_a.path(), dir_b.path()).await;
    let b_id = b.ready().await.peer_id;

    ok(
        &cli(
            &b,
            &[
                "order",
                "place",
                "--market",
                "BTC-USD",
                "--side",
                "sell",
                "--price",
                "100.5",
                "--quantity",
                "2",
            ],
        ),
        "B sells",
    );
    eventually(
        "B's order in A's book",
        || a.output(),
        || async {
            let book = a.get_json("/api/v1/book/BTC-USD").await;
            (book.body["orders"] == 1).then_some(())
        },
    )
    .await;
    let taker: OrderInfo = json(
        &cli(
            &a,
            &[
                "order",
                "place",
                "--json",
                "--market",
                "BTC-USD",
                "--side",
                "buy",
                "--price",
                "101",
                "--quantity",
                "0.5",
                "--tif",
                "ioc",
            ],
        ),
        "A takes",
    );
    assert_eq!(taker.fills.len(), 1, "{taker:?}");

    let table = ok(&cli(&a, &["trades", "--market", "BTC-USD"]), "trades");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("PRICE"),
        "{table}"
    );
    assert!(
        lines[1].contains("100.5") && lines[1].contains("0.5") && lines[1].contains("buy"),
        "{table}"
    );
    assert!(lines[1].contains(" UTC "), "times say their zone: {table}");
    let local = ok(
        &cli(&a, &["trades", "--market", "BTC-USD", "--local-time"]),
        "trades --local-time",
    );
    let row = local.lines().nth(1).unwrap_or_default();
    assert!(
        !row.contains("UTC") && (row.contains(" +") || row.contains(" -")),
        "local times carry their offset: {local}"
    );
    let trades: Vec<TradeInfo> = json(
        &cli(&a, &["trades", "--json", "--limit", "5"]),
        "trades --json",
    );
    assert_eq!(trades.len(), 1);

    let ladder = ok(&cli(&a, &["book", "BTC-USD"]), "book");
    assert!(
        ladder
            .lines()
            .any(|l| l.starts_with("ask") && l.contains("100.5") && l.contains("1.5")),
        "{ladder}"
    );

    let peers = ok(&cli(&a, &["peers"]), "peers");
    assert!(
        peers
            .lines()
            .any(|l| l.starts_with(&b_id) && l.contains("yes")),
        "{peers}"
    );
    let listed: Vec<Value> = json(&cli(&a, &["peers", "--json"]), "peers --json");
    assert!(listed.iter().any(|p| p["peer_id"] == b_id.as_str()));
    let status = ok(&cli(&a, &["status"]), "status");
    assert!(status.contains("peers:    1 connected"), "{status}");
}

#[tokio::test]
async fn an_unreachable_node_a_bad_address_and_a_missing_token_fail_clearly() {
    let port = common::free_port();
    let mut cmd = common::command();
    cmd.args(["order", "list", "--api", &format!("127.0.0.1:{port}")]);
    let f = run_to_exit(cmd);
    let err = failed(&f, 1, "unreachable node");
    assert!(err.contains("cannot reach the node"), "{err}");

    let mut cmd = common::command();
    cmd.args(["peers", "--api", "http://exa mple:80"]);
    let err = failed(&run_to_exit(cmd), 2, "bad address");
    assert!(err.contains("not a valid API address"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOpts::new("guarded", dir.path()).env("PEERBOOK_API_TOKEN", "cli-t0ken");
    opts.api_host = "0.0.0.0".into();
    let node = opts.start();
    let with_token = |args: &[&str]| {
        let mut cmd = common::command();
        cmd.args(args)
            .env("PEERBOOK_API", node.api_addr().to_string())
            .env("PEERBOOK_API_TOKEN", "cli-t0ken");
        run_to_exit(cmd)
    };
    let started = Instant::now();
    while !with_token(&["status"]).status.success() {
        assert!(
            started.elapsed() < DEADLINE,
            "the node never answered\n{}",
            node.output()
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    let err = failed(&cli(&node, &["order", "list"]), 1, "no token");
    assert!(err.contains("401") && err.contains("Bearer"), "{err}");
    ok(
        &with_token(&["order", "list"]),
        "token from the environment",
    );
    let mut cmd = common::command();
    cmd.args([
        "order",
        "list",
        "--api",
        &node.api_base(),
        "--token",
        "cli-t0ken",
    ]);
    ok(&run_to_exit(cmd), "token from the flag");
}

#[tokio::test]
async fn the_demo_places_and_cancels_count_actions_and_sums_up() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("demo", dir.path()).start();
    node.ready().await;
    let args = [
        "demo", "--market", "ETH-USD", "--count", "15", "--rate", "50", "--seed", "7", "--mid",
        "2000",
    ];
    let out = ok(&cli(&node, &args), "demo");
    let actions: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(actions.len(), 15, "{out}");
    assert!(actions.iter().any(|l| l.contains("place")), "{out}");
    let summary = out.lines().last().unwrap();
    assert!(summary.starts_with("demo: 15 actions"), "{out}");
    assert!(summary.contains("seed 7"), "{summary}");
    assert!(summary.contains("left open"), "{summary}");
    // It cancelled its resting orders when it stopped.
    let open = node.get_json("/api/v1/orders?status=open").await;
    assert_eq!(open.body, serde_json::json!([]), "{out}");

    let orders: Vec<OrderInfo> = node
        .get_json("/api/v1/orders?market=ETH-USD")
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    let placed = actions
        .iter()
        .filter(|l| l.contains("place") && !l.contains("refused"))
        .count();
    assert_eq!(orders.len(), placed, "{out}");
    for o in &orders {
        let p = o.price.unwrap();
        assert!(
            p > rust_decimal::Decimal::from(1900) && p < rust_decimal::Decimal::from(2100),
            "{p} is far from the mid"
        );
    }

    // The same seed makes the same choices.
    let dir2 = tempfile::tempdir().unwrap();
    let other = NodeOpts::new("demo2", dir2.path()).start();
    other.ready().await;
    let again = ok(&cli(&other, &args), "demo again");
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with('#'))
            .map(|l| {
                // Order ids name the node; keep only their sequence.
                let what = l.split("->").next().unwrap_or("");
                what.split_whitespace()
                    .map(|w| match w.strip_prefix('…') {
                        Some(id) => id.split('/').next_back().unwrap_or("").to_string(),
                        None => w.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    assert_eq!(strip(&again), strip(&out));

    // --json: one object per action, then the summary.
    let json_out = ok(
        &cli(&node, &["demo", "--json", "--count", "3", "--rate", "50"]),
        "demo --json",
    );
    let lines: Vec<Value> = json_out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 4, "{json_out}");
    let s = &lines[3]["summary"];
    assert_eq!(s["actions"], 3);
    let sum = ["placed", "refused", "cancelled", "cancels_too_late"]
        .iter()
        .map(|k| s[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(sum, 3, "every action is counted once: {s}");

    // --keep leaves the resting orders in the book.
    let kept = ok(
        &cli(
            &node,
            &[
                "demo", "--json", "--count", "4", "--rate", "50", "--seed", "3", "--keep",
            ],
        ),
        "demo --keep",
    );
    let s: Value = serde_json::from_str(kept.lines().last().unwrap()).unwrap();
    let left = s["summary"]["open_orders"].as_u64().unwrap();
    let open = node.get_json("/api/v1/orders?status=open").await;
    assert_eq!(open.body.as_array().unwrap().len() as u64, left, "{kept}");

    let err = failed(
        &cli(&node, &["demo", "--market", "DOGE-EUR", "--count", "1"]),
        2,
        "unknown market",
    );
    assert!(err.contains("does not trade DOGE-EUR"), "{err}");
}

#[tokio::test]
async fn the_demo_stops_cleanly_on_ctrl_c_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("demo-int", dir.path()).start();
    node.ready().await;
    let mut cmd = common::command();
    cmd.args(["demo", "--rate", "20", "--api", &node.api_base()]);
    let (mut child, stdout, stderr) = common::spawn_captured(cmd);
    eventually(
        "the demo to act",
        || stdout.text(),
        || async {
            (stdout.text().lines().filter(|l| l.starts_with('#')).count() >= 3).then_some(())
        },
    )
    .await;
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < DEADLINE, "the demo did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}\n{}", stderr.text());
    let text = eventually(
        "the summary",
        || stdout.text(),
        || async {
            let t = stdout.text();
            t.lines().any(|l| l.starts_with("demo: ")).then_some(t)
        },
    )
    .await;
    assert!(text.lines().last().unwrap().starts_with("demo: "), "{text}");
}

#[tokio::test]
async fn at_the_default_level_the_log_tells_the_operator_what_the_node_traded() {
    // A logs text at the default level, B logs JSON at the default level.
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = NodeOpts::new("A", dir_a.path()).env("RUST_LOG", "").start();
    let a_id = a.ready().await.peer_id;
    let b = NodeOpts::new("B", dir_b.path())
        .bootstrap(format!("{}/p2p/{a_id}", a.addr()))
        .env("RUST_LOG", "")
        .arg("--log-format")
        .arg("json")
        .start();
    let b_id = b.ready().await.peer_id;
    b.connected_to(&a_id).await;
    a.connected_to(&b_id).await;

    let sell = b
        .place(serde_json::json!({"market": "BTC-USD", "side": "sell", "price": "100", "quantity": "2"}))
        .await;
    let sell_id = sell["id"].as_str().unwrap().to_string();
    eventually(
        "B's order in A's book",
        || a.output(),
        || async {
            let book = a.get_json("/api/v1/book/BTC-USD").await;
            (book.body["orders"] == 1).then_some(())
        },
    )
    .await;
    let buy = a
        .place(serde_json::json!({"market": "BTC-USD", "side": "buy", "price": "100", "quantity": "0.5", "time_in_force": "ioc"}))
        .await;
    let buy_id = buy["id"].as_str().unwrap().to_string();
    assert_eq!(buy["status"], "filled", "{buy}");
    let cancelled = b
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/orders/{sell_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(cancelled.status, 200);

    let has = |log: &str, words: &[&str]| log.lines().any(|l| words.iter().all(|w| l.contains(w)));
    eventually(
        "both logs to tell the trade",
        || format!("{}\n{}", a.output(), b.output()),
        || async {
            let (la, lb) = (a.stderr(), b.stderr());
            (has(&la, &["order placed", &buy_id])
                && has(&la, &["fill as taker", &buy_id, "100"])
                && has(&la, &["order filled", &buy_id])
                && has(&la, &["peer connected", &b_id])
                && has(&lb, &["order placed", &sell_id])
                && has(&lb, &["fill as maker", &sell_id, "0.5"])
                && has(&lb, &["order cancelled", &sell_id]))
            .then_some(())
        },
    )
    .await;
    let la = a.stderr();
    assert!(
        !la.lines()
            .any(|l| l.contains(" libp2p_") && !l.contains("WARN") && !l.contains("ERROR")),
        "libp2p stays at warn by default:\n{la}"
    );
    for line in b.stderr().lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("--log-format json wrote a line that is not JSON ({e}): {line}")
        });
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}

#[tokio::test]
async fn the_ladder_marks_own_and_stale_orders_and_zero_depth_or_limit_is_refused() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = NodeOpts::new("A", dir_a.path())
        .env("PEERBOOK_ENGINE_STALE_AFTER_MS", "2000")
        .start();
    let a_id = a.ready().await.peer_id;
    let mut b = NodeOpts::new("B", dir_b.path())
        .bootstrap(format!("{}/p2p/{a_id}", a.addr()))
        .start();
    let b_id = b.ready().await.peer_id;
    a.connected_to(&b_id).await;
    a.place(
        serde_json::json!({"market": "BTC-USD", "side": "buy", "price": "99", "quantity": "1"}),
    )
    .await;
    b.place(
        serde_json::json!({"market": "BTC-USD", "side": "sell", "price": "105", "quantity": "0.7"}),
    )
    .await;
    eventually(
        "B's order in A's book",
        || a.output(),
        || async {
            let book = a.get_json("/api/v1/book/BTC-USD").await;
            (book.body["orders"] == 2).then_some(())
        },
    )
    .await;
    let ladder = ok(&cli(&a, &["book", "BTC-USD"]), "book");
    let row = |side: &str, price: &str| {
        ladder
            .lines()
            .find(|l| l.starts_with(side) && l.contains(price))
            .unwrap_or_else(|| panic!("no {side} {price}:\n{ladder}"))
            .to_string()
    };
    assert!(row("bid", "99").contains("mine 1"), "{ladder}");
    assert!(!row("ask", "105").contains("mine"), "{ladder}");
    assert!(!row("ask", "105").contains("stale"), "{ladder}");

    b.stop();
    let book: BookInfo = eventually(
        "B's order to be stale in A's book",
        || a.output(),
        || async {
            let book: BookInfo =
                serde_json::from_value(a.get_json("/api/v1/book/BTC-USD").await.body).ok()?;
            (book.stale_orders == 1).then_some(book)
        },
    )
    .await;
    assert_eq!(book.stale_asks.len(), 1, "{book:?}");
    assert_eq!(book.own_bids.len(), 1, "{book:?}");
    let ladder = ok(&cli(&a, &["book", "BTC-USD"]), "book");
    assert!(ladder.contains("1 of them stale"), "{ladder}");
    assert!(
        ladder
            .lines()
            .any(|l| l.starts_with("ask") && l.contains("105") && l.contains("stale 0.7")),
        "{ladder}"
    );

    let err = failed(&cli(&a, &["book", "BTC-USD", "--depth", "0"]), 2, "depth 0");
    assert!(err.contains("--depth"), "{err}");
    let err = failed(&cli(&a, &["trades", "--limit", "0"]), 2, "limit 0");
    assert!(err.contains("--limit"), "{err}");
    for path in [
        "/api/v1/trades?limit=0",
        "/api/v1/orders?limit=0",
        "/api/v1/book/BTC-USD?depth=0",
    ] {
        let got = a.get_json(path).await;
        assert_eq!(got.status, 400, "{path}: {:?}", got.body);
        assert!(
            got.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("at least 1"),
            "{path}: {:?}",
            got.body
        );
    }
}

#[tokio::test]
async fn the_demo_counts_its_fills_as_maker_and_prices_its_fills() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (a, b) = connected_pair(dir_a.path(), dir_b.path()).await;
    // The bot on B rests orders; A then takes from them with IOC orders.
    let mut cmd = common::command();
    cmd.args([
        "demo", "--json", "--rate", "20", "--seed", "11", "--market", "ETH-USD", "--mid", "2000",
        "--api",
    ])
    .arg(b.api_base());
    let (mut child, stdout, stderr) = common::spawn_captured(cmd);
    let resting = |side: &'static str| {
        let a = &a;
        async move {
            let book = a.get_json("/api/v1/book/ETH-USD").await.body;
            book[side].as_array().is_some_and(|v| !v.is_empty())
        }
    };
    eventually(
        "the bot's orders on both sides of A's book",
        || format!("{}\n{}", stdout.text(), stderr.text()),
        || async { (resting("asks").await && resting("bids").await).then_some(()) },
    )
    .await;
    let mut taken = 0;
    for (side, price) in [("buy", "3000"), ("sell", "1000")] {
        let o = a
            .place(serde_json::json!({"market": "ETH-USD", "side": side, "price": price, "quantity": "50", "time_in_force": "ioc"}))
            .await;
        taken += o["fills"].as_array().map_or(0, Vec::len);
    }
    assert!(taken > 0, "A took nothing");
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < DEADLINE, "the demo did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}\n{}", stderr.text());
    let text = eventually(
        "the summary",
        || stdout.text(),
        || async {
            let t = stdout.text();
            t.lines().any(|l| l.contains("\"summary\"")).then_some(t)
        },
    )
    .await;
    let s: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let s = &s["summary"];
    assert_eq!(
        s["fills_maker"].as_u64(),
        Some(taken as u64),
        "every fill A took from the bot is the bot's as maker: {s}"
    );
    assert_eq!(
        s["fills"].as_u64(),
        Some(s["fills_maker"].as_u64().unwrap() + s["fills_taker"].as_u64().unwrap())
    );
    let actions: u64 = ["placed", "refused", "cancelled", "cancels_too_late"]
        .iter()
        .map(|k| s[k].as_u64().unwrap())
        .sum();
    assert_eq!(Some(actions), s["actions"].as_u64(), "{s}");
    assert_eq!(s["open_orders"], 0, "{s}");
    let open = b.get_json("/api/v1/orders?status=open").await;
    assert_eq!(
        open.body,
        serde_json::json!([]),
        "it cancelled its resting orders on Ctrl-C"
    );
}
