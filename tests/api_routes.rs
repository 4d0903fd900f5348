//! Every route of the HTTP API against real nodes on loopback: orders
//! placed, read, listed and cancelled; books, trades, peers and status
//! after a trade between two nodes; every refusal a 4xx in the API's error
//! shape that changes nothing; idempotent placing with `client_id`; and the
//! bearer token on every route but the page and the metrics.

mod common;

use common::{connected_pair, eventually, Answer, NodeOpts};
use reqwest::Method;
use serde_json::{json, Value};

fn sell(price: &str, quantity: &str) -> Value {
    json!({"market": "BTC-USD", "side": "sell", "price": price, "quantity": quantity})
}

#[tokio::test]
async fn an_order_is_placed_read_listed_and_cancelled_with_decimals_as_strings() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("orders", dir.path()).start();
    let me = node.ready().await.peer_id;

    let placed = node
        .request(
            Method::POST,
            "/api/v1/orders",
            Some(&json!({
                "market": "BTC-USD", "side": "buy", "type": "limit",
                "price": "99.50", "quantity": "0.25", "time_in_force": "gtc"
            })),
            None,
        )
        .await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let o = &placed.body;
    let id = o["id"].as_str().unwrap().to_string();
    assert!(id.starts_with(&format!("{me}/")), "{id}");
    assert_eq!(o["status"], "open");
    assert_eq!(o["price"], "99.5", "normalised");
    assert_eq!(o["quantity"], "0.25");
    assert_eq!(o["filled"], "0");
    assert_eq!(o["type"], "limit");
    assert_eq!(o["time_in_force"], "gtc");
    assert_eq!(o["own"], true);

    let one = node.get_json(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["id"], id.as_str());
    assert_eq!(one.body["status"], "open");

    let second = node.place(sell("101", "1")).await;
    let list = node.get_json("/api/v1/orders").await;
    assert_eq!(list.status, 200);
    let ids: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [second["id"].as_str().unwrap(), id.as_str()],
        "newest first"
    );
    let filtered = node
        .get_json("/api/v1/orders?market=BTC-USD&status=open&limit=1")
        .await;
    assert_eq!(filtered.body.as_array().unwrap().len(), 1);
    let other_market = node.get_json("/api/v1/orders?market=ETH-USD").await;
    assert_eq!(other_market.body, json!([]));

    let book = node.get_json("/api/v1/book/BTC-USD?depth=5").await;
    assert_eq!(book.status, 200);
    assert_eq!(book.body["market"], "BTC-USD");
    assert_eq!(book.body["bids"], json!([["99.5", "0.25"]]));
    assert_eq!(book.body["asks"], json!([["101", "1"]]));
    assert_eq!(book.body["orders"], 2);
    assert!(book.body["digest"].as_str().is_some_and(|d| !d.is_empty()));

    let cancelled = node
        .request(Method::DELETE, &format!("/api/v1/orders/{id}"), None, None)
        .await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_eq!(cancelled.body["status"], "cancelled");
    let again = node
        .request(Method::DELETE, &format!("/api/v1/orders/{id}"), None, None)
        .await;
    assert_eq!(again.status, 409, "{again:?}");
    assert_eq!(again.code(), "conflict");
    let done = node.get_json("/api/v1/orders?status=cancelled").await;
    assert_eq!(done.body.as_array().unwrap().len(), 1);
    let book = node.get_json("/api/v1/book/BTC-USD").await;
    assert_eq!(book.body["bids"], json!([]));
}

#[tokio::test]
async fn a_repeated_client_id_places_one_order_and_returns_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("idempotent", dir.path()).start();
    node.ready().await;
    let mut body = sell("120", "0.5");
    body["client_id"] = json!("retry-me-1");
    let first = node.place(body.clone()).await;
    let second = node
        .request(Method::POST, "/api/v1/orders", Some(&body), None)
        .await;
    assert!(second.status == 200 || second.status == 201, "{second:?}");
    assert_eq!(second.body["id"], first["id"]);
    assert_eq!(second.body["client_id"], "retry-me-1");
    let list = node.get_json("/api/v1/orders").await;
    assert_eq!(list.body.as_array().unwrap().len(), 1, "{:?}", list.body);
    let book = node.get_json("/api/v1/book/BTC-USD").await;
    assert_eq!(book.body["asks"], json!([["120", "0.5"]]));

    // The same client_id for a different order is a conflict naming the
    // field; the first order stands alone.
    for (field, value) in [
        ("price", json!("121")),
        ("quantity", json!("0.6")),
        ("side", json!("buy")),
        ("market", json!("ETH-USD")),
    ] {
        let mut other = body.clone();
        other[field] = value;
        let refused = node
            .request(Method::POST, "/api/v1/orders", Some(&other), None)
            .await;
        assert_eq!(
            (refused.status, refused.code()),
            (409, "client_id_conflict"),
            "{field}: {refused:?}"
        );
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{field} ")) && message.contains("retry-me-1"),
            "{message}"
        );
    }
    // The same order spelt another way is the same order.
    let mut same = body.clone();
    same["price"] = json!("120.00");
    let again = node
        .request(Method::POST, "/api/v1/orders", Some(&same), None)
        .await;
    assert_eq!(again.body["id"], first["id"], "{again:?}");
    let list = node.get_json("/api/v1/orders").await;
    assert_eq!(list.body.as_array().unwrap().len(), 1, "{:?}", list.body);
}

/// (method, path, content type, body, status, error code)
type Case = (
    Method,
    &'static str,
    Option<&'static str>,
    String,
    u16,
    &'static str,
);

#[tokio::test]
async fn every_refused_request_is_a_4xx_in_the_error_shape_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("refusals", dir.path()).start();
    let me = node.ready().await.peer_id;
    let before = node.get_json("/api/v1/status").await.body;

    let json_ct = Some("application/json");
    let good = r#"{"market":"BTC-USD","side":"sell","price":"100","quantity":"1"}"#;
    let unknown_own = Box::leak(format!("/api/v1/orders/{me}/999999").into_boxed_str());
    let huge = format!(
        r#"{{"market":"BTC-USD","side":"sell","price":"100","quantity":"1","client_id":"{}"}}"#,
        "x".repeat(1100 * 1024)
    );
    let post = |body: &str, status, code| -> Case {
        (
            Method::POST,
            "/api/v1/orders",
            json_ct,
            body.to_string(),
            status,
            code,
        )
    };
    let get =
        |path, status, code| -> Case { (Method::GET, path, None, String::new(), status, code) };
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/api/v1/orders",
            None,
            good.into(),
            415,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/api/v1/orders",
            Some("text/plain"),
            good.into(),
            415,
            "unsupported_media_type",
        ),
        post("{\"market\":", 400, "bad_body"),
        post("[1,2]", 400, "bad_body"),
        post(
            r#"{"market":"BTC-USD","side":"sell","price":"100"}"#,
            400,
            "bad_body",
        ),
        post(
            r#"{"market":"BTC-USD","side":"sell","price":"100","quantity":"1","colour":"red"}"#,
            400,
            "bad_body",
        ),
        post(
            r#"{"market":"BTC-USD","side":"up","price":"100","quantity":"1"}"#,
            400,
            "bad_value",
        ),
        post(
            r#"{"market":"BTC-USD","side":"sell","price":"ten","quantity":"1"}"#,
            400,
            "bad_value",
        ),
        post(
            r#"{"market":"BTC-USD","side":"sell","price":"-1","quantity":"1"}"#,
            400,
            "bad_value",
        ),
        post(
            r#"{"market":"BTC-USD","side":"sell","price":"100.001","quantity":"1"}"#,
            400,
            "bad_value",
        ),
        post(
            r#"{"market":"BTC-USD","side":"sell","price":"100","quantity":"0"}"#,
            400,
            "bad_value",
        ),
        post(
            r#"{"market":"BTC-USD","side":"sell","type":"stop","price":"100","quantity":"1"}"#,
            400,
            "bad_value",
        ),
        post(
            r#"{"market":"BTC-USD","side":"sell","price":"100","quantity":"1","time_in_force":"gtd"}"#,
            400,
            "bad_value",
        ),
        post(
            r#"{"market":"DOGE-EUR","side":"sell","price":"100","quantity":"1"}"#,
            404,
            "unknown_market",
        ),
        post(
            r#"{"market":"BTC-USD","side":"sell","price":100.5,"quantity":"1"}"#,
            400,
            "bad_value",
        ),
        post(
            r#"{"market":"BTC-USD","side":"sell","price":"100","quantity":1}"#,
            400,
            "bad_value",
        ),
        post(&huge, 413, "body_too_large"),
        get("/api/v1/book/DOGE-EUR", 404, "unknown_market"),
        get("/api/v1/book/BTC-USD?depth=many", 400, "bad_query"),
        get("/api/v1/book/BTC-USD?levels=3", 400, "bad_query"),
        get("/api/v1/orders?status=sleeping", 400, "bad_query"),
        get("/api/v1/orders?limit=-1", 400, "bad_query"),
        get("/api/v1/orders?market=DOGE-EUR", 404, "unknown_market"),
        get("/api/v1/orders/not-an-id", 400, "bad_value"),
        get("/api/v1/orders/%FF%FE", 400, "bad_path"),
        get(unknown_own, 404, "not_found"),
        (
            Method::DELETE,
            unknown_own,
            None,
            String::new(),
            404,
            "not_found",
        ),
        (
            Method::DELETE,
            "/api/v1/orders/not-an-id",
            None,
            String::new(),
            400,
            "bad_value",
        ),
        get("/api/v1/trades?limit=lots", 400, "bad_query"),
        get("/api/v1/trades?market=DOGE-EUR", 404, "unknown_market"),
        get("/api/v1/events?token=abc", 400, "bad_query"),
        get("/api/v2/orders", 404, "not_found"),
        (
            Method::PUT,
            "/api/v1/orders",
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            Method::DELETE,
            "/api/v1/book/BTC-USD",
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, ct, body, status, code) in cases {
        let mut req = node.http().request(method.clone(), node.url(path));
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        if !body.is_empty() {
            req = req.body(body.clone());
        }
        let a: Answer = common::answer(req.send().await.expect("send")).await;
        let shown = if body.len() > 200 {
            "<large body>"
        } else {
            body.as_str()
        };
        assert_eq!(
            (a.status, a.code()),
            (status, code),
            "{method} {path} {shown}: {a:?}"
        );
        assert!(
            a.content_type.starts_with("application/json"),
            "{method} {path}: {}",
            a.content_type
        );
        let message = a.body["error"]["message"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "{method} {path}: no message in {a:?}");
        for framework in ["Failed to", "axum", "deserialize the JSON body"] {
            assert!(
                !message.contains(framework),
                "{method} {path} {shown}: the framework's wording in {message:?}"
            );
        }
        if body.contains(":100.5") || body.contains(":1}") {
            assert!(
                message.contains("JSON string") && message.contains("precision"),
                "{message}"
            );
        }
    }

    let orders = node.get_json("/api/v1/orders").await;
    assert_eq!(orders.body, json!([]), "a refused request placed an order");
    let after = node.get_json("/api/v1/status").await.body;
    assert_eq!(
        after["books"], before["books"],
        "a refused request changed a book"
    );
    let metrics = node.http().get(node.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(text.contains("peerbook_orders_placed_total 0"), "{text}");
}

#[tokio::test]
async fn two_nodes_trade_and_every_read_route_shows_it() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (a, b) = connected_pair(dir_a.path(), dir_b.path()).await;
    let a_id = a.ready().await.peer_id;
    let b_id = b.ready().await.peer_id;
    let context = || format!("{}\n{}", a.output(), b.output());

    let maker = b.place(sell("100.25", "2")).await;
    let maker_id = maker["id"].as_str().unwrap().to_string();
    eventually("B's order in A's book", context, || async {
        let book = a.get_json("/api/v1/book/BTC-USD").await;
        (book.body["asks"] == json!([["100.25", "2"]])).then_some(())
    })
    .await;

    // A sees B's order, but may not cancel it.
    let seen = a.get_json(&format!("/api/v1/orders/{maker_id}")).await;
    assert_eq!(seen.status, 200, "{seen:?}");
    assert_eq!(seen.body["own"], false);
    let refused = a
        .request(
            Method::DELETE,
            &format!("/api/v1/orders/{maker_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "forbidden"),
        "{refused:?}"
    );
    assert_eq!(
        b.get_json(&format!("/api/v1/orders/{maker_id}")).await.body["status"],
        "open"
    );

    let taker = a
        .place(json!({"market": "BTC-USD", "side": "buy", "price": "101", "quantity": "0.5"}))
        .await;
    assert_eq!(taker["status"], "filled", "{taker}");
    assert_eq!(taker["filled"], "0.5");
    let fill = &taker["fills"][0];
    assert_eq!(fill["price"], "100.25");
    assert_eq!(fill["maker_order_id"], maker_id.as_str());
    // The taker's node shows the maker's order with the fill it knows of.
    let seen = eventually("the fill in A's view of B's order", context, || async {
        let o = a.get_json(&format!("/api/v1/orders/{maker_id}")).await.body;
        (o["filled"] == "0.5").then_some(o)
    })
    .await;
    assert_eq!(seen["fills"].as_array().map(Vec::len), Some(1), "{seen}");
    assert_eq!(seen["fills"][0]["id"], fill["id"], "{seen}");
    assert_eq!(seen["updated_ms"], fill["ts_ms"], "{seen}");

    for node in [&a, &b] {
        let trades = eventually("the trade in both nodes' trades", context, || async {
            let t = node
                .get_json("/api/v1/trades?market=BTC-USD&limit=10")
                .await;
            (t.body.as_array().is_some_and(|v| v.len() == 1)).then_some(t.body)
        })
        .await;
        assert_eq!(trades[0]["quantity"], "0.5");
        assert_eq!(trades[0]["side"], "buy");
    }
    let all = a.get_json("/api/v1/trades").await;
    assert_eq!(all.body.as_array().unwrap().len(), 1);
    let none = a.get_json("/api/v1/trades?market=ETH-USD").await;
    assert_eq!(none.body, json!([]));

    let peers = a.get_json("/api/v1/peers").await;
    let b_entry = peers
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == b_id.as_str())
        .cloned()
        .expect("B among A's peers");
    assert_eq!(b_entry["connected"], true);
    assert!(b_entry["addresses"]
        .as_array()
        .is_some_and(|v| !v.is_empty()));

    // Both hold the same book: equal digests in their status.
    eventually("equal digests", context, || async {
        let sa = a.get_json("/api/v1/status").await.body;
        let sb = b.get_json("/api/v1/status").await.body;
        let digest = |s: &Value| {
            s["books"]
                .as_array()
                .map(|v| v.iter().map(|m| m["digest"].clone()).collect::<Vec<_>>())
        };
        (digest(&sa) == digest(&sb)).then_some(())
    })
    .await;
    let status = a.get_json("/api/v1/status").await.body;
    assert_eq!(status["peer_id"], a_id.as_str());
    assert_eq!(status["peer_count"], 1);
    assert!(status["owners"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["peer_id"] == b_id.as_str()));
}

#[tokio::test]
async fn with_a_token_every_api_route_needs_it_but_the_page_its_assets_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOpts::new("token", dir.path()).env("PEERBOOK_API_TOKEN", "t0ken");
    opts.api_host = "0.0.0.0".into();
    let node = opts.start();
    node.ready_with_token("t0ken").await;
    let me = node
        .request(Method::GET, "/api/v1/status", None, Some("t0ken"))
        .await
        .body["peer_id"]
        .as_str()
        .unwrap()
        .to_string();

    let order = json!({"market": "BTC-USD", "side": "sell", "price": "100", "quantity": "1"});
    let own = format!("/api/v1/orders/{me}/1");
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/v1/status".into(), None),
        (Method::GET, "/api/v1/peers".into(), None),
        (Method::GET, "/api/v1/orders".into(), None),
        (Method::GET, "/api/v1/book/BTC-USD".into(), None),
        (Method::GET, "/api/v1/trades".into(), None),
        (Method::POST, "/api/v1/orders".into(), Some(order.clone())),
        (Method::GET, own.clone(), None),
        (Method::DELETE, own.clone(), None),
    ];
    for (method, path, body) in &routes {
        for token in [None, Some("wrong"), Some("t0ken2")] {
            let a = node
                .request(method.clone(), path, body.as_ref(), token)
                .await;
            assert_eq!(
                (a.status, a.code()),
                (401, "unauthorized"),
                "{method} {path} with {token:?}"
            );
        }
    }
    assert!(node.get_json("/api/v1/orders").await.status == 401);
    let listed = node
        .request(Method::GET, "/api/v1/orders", None, Some("t0ken"))
        .await;
    assert_eq!(
        listed.body,
        json!([]),
        "a request without the token placed an order"
    );

    // With the token: every route works.
    let placed = node
        .request(Method::POST, "/api/v1/orders", Some(&order), Some("t0ken"))
        .await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let id = placed.body["id"].as_str().unwrap().to_string();
    for (method, path) in [
        (Method::GET, "/api/v1/status".to_string()),
        (Method::GET, "/api/v1/peers".into()),
        (Method::GET, "/api/v1/orders".into()),
        (Method::GET, "/api/v1/book/BTC-USD".into()),
        (Method::GET, "/api/v1/trades".into()),
        (Method::GET, format!("/api/v1/orders/{id}")),
        (Method::DELETE, format!("/api/v1/orders/{id}")),
    ] {
        let a = node
            .request(method.clone(), &path, None, Some("t0ken"))
            .await;
        assert_eq!(a.status, 200, "{method} {path}: {a:?}");
    }

    // The event stream too, with the header (no token in URLs).
    let events = node
        .http()
        .get(node.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 401);
    let events = node
        .http()
        .get(node.url("/api/v1/events"))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert!(events.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(events);

    // The page, its assets and the metrics are open.
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/metrics", "application/openmetrics-text"),
    ] {
        let r = node.http().get(node.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(kind), "{path}: {ct}");
    }
}
