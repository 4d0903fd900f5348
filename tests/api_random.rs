//! Thousands of hostile HTTP requests against a real node, from a seeded
//! generator: broken and truncated JSON, wrong types, huge and negative
//! numbers, missing and extra fields, unknown markets, sides and times in
//! force, odd paths (dot segments, very long, percent-encoded, unicode),
//! every method on every route, odd headers and content types, huge bodies
//! with and without a length, and a missing or wrong token.
//!
//! No request is a valid change (every order body has at least one defect,
//! every cancel names an order that does not exist), so after all of them:
//! no answer was a 5xx, every 4xx had a JSON error body with a code and a
//! message, the node still answers, and its book and orders are exactly
//! what they were.
//!
//! `PEERBOOK_TEST_SEED=<n>` replays one run; `PEERBOOK_TEST_REQUESTS=<n>`
//! sends more (or fewer).

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::SocketAddr;

use common::NodeOpts;
use serde_json::{json, Map, Value};

const TOKEN: &str = "s3cret-token";
/// The node's body limit in this test (small, so huge bodies are cheap).
const MAX_BODY: usize = 64 * 1024;

/// SplitMix64: small, seedable, and good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

/// A valid order, which the generator always breaks before sending.
fn template() -> Map<String, Value> {
    let Value::Object(m) = json!({
        "market": "BTC-USD", "side": "buy", "type": "limit",
        "price": "50", "quantity": "1", "time_in_force": "gtc",
    }) else {
        unreachable!()
    };
    m
}

const HUGE_NUMBERS: &[&str] = &[
    "1e400",
    "-1e400",
    "340282366920938463463374607431768211456",
    "79228162514264337593543950336",
    "99999999999999999999999999999999999999999999999999999999999999999999999999",
    "0.000000000000000000000000000000000000000000000000000000000001",
    "1e-400",
];

/// One defect that makes an order invalid on its own.
fn break_order(rng: &mut Rng, order: &mut Map<String, Value>) {
    let field = rng.pick(&["market", "side", "price", "quantity"]);
    match rng.below(12) {
        // Wrong types.
        0 => {
            // (null is "not given" for an optional field, so only for
            // required ones.)
            let field = rng.pick(&[
                "market",
                "side",
                "price",
                "quantity",
                "type",
                "time_in_force",
            ]);
            let v = if ["market", "side", "quantity"].contains(&field) && rng.chance(20) {
                json!(null)
            } else {
                rng.pick(&[json!(true), json!([]), json!({}), json!(-7), json!([1, 2])])
            };
            order.insert(field.into(), v);
        }
        // Huge numbers, as JSON numbers or strings.
        1 => {
            let n = rng.pick(HUGE_NUMBERS);
            let field = rng.pick(&["price", "quantity"]);
            let v = if rng.chance(50) {
                serde_json::from_str::<Value>(n).unwrap_or_else(|_| Value::String(n.into()))
            } else {
                Value::String(n.into())
            };
            // 1e-400 as a JSON number is 0.0; a tiny string is below a tick.
            order.insert(field.into(), v);
        }
        // Zero and negative.
        2 => {
            let v = rng.pick(&["0", "-1", "-0.0001", "0.0", "-0", "-100"]);
            let field = rng.pick(&["price", "quantity"]);
            order.insert(field.into(), json!(v));
        }
        // Not numbers at all.
        3 => {
            let v = rng.pick(&[
                "NaN", "Infinity", "", " ", "1,5", "0x10", "1.2.3", "ten", "١٢",
            ]);
            let field = rng.pick(&["price", "quantity"]);
            order.insert(field.into(), json!(v));
        }
        // A required field missing.
        4 => {
            let field = rng.pick(&["market", "side", "quantity", "price"]);
            order.remove(field);
        }
        // An extra field.
        5 => {
            let field = rng.pick(&["amount", "Market", "id", "owner", "__proto__", "qty", ""]);
            order.insert(field.into(), json!("1"));
        }
        // Unknown names.
        6 => {
            let v = rng.pick(&["DOGE-EUR", "btc-usd", "BTC_USD", "", "BTC-USD ", "ΒΤC-USD"]);
            order.insert("market".into(), json!(v));
        }
        7 => {
            let v = rng.pick(&["hold", "", "BUYY", "long", "b"]);
            order.insert("side".into(), json!(v));
        }
        8 => {
            let v = rng.pick(&["gtd", "", "day", "fok ", "post_only_maybe"]);
            order.insert("time_in_force".into(), json!(v));
        }
        9 => {
            let v = rng.pick(&["stop", "", "LIMITED", "market-ish"]);
            order.insert("type".into(), json!(v));
        }
        // Off the tick or the lot.
        10 => {
            order.insert("price".into(), json!("50.001"));
        }
        // A client id too long, or with what it may not hold.
        _ => {
            let long = "x".repeat(65);
            let v = rng.pick(&[long.as_str(), "a\u{0}b", "line\nbreak", "tab\there", ""]);
            order.insert("client_id".into(), json!(v));
            let _ = field;
        }
    }
}

/// A body: always an invalid order, sometimes not even JSON.
fn body(rng: &mut Rng) -> Vec<u8> {
    let mut order = template();
    for _ in 0..1 + rng.below(3) {
        break_order(rng, &mut order);
    }
    let text = Value::Object(order).to_string();
    match rng.below(10) {
        // Truncated: never valid JSON (the closing brace is always cut).
        0 | 1 => text.as_bytes()[..rng.below(text.len())].to_vec(),
        // Garbage.
        2 => {
            let g = rng.pick(&[
                "{",
                "}",
                "[]",
                "null",
                "\"order\"",
                "{\"market\":}",
                "{'market':'BTC-USD'}",
                "{\"market\":\"BTC-USD\",}",
                "\u{feff}{}",
                "{\"a\":\"\\ud800\"}",
                "1e400",
            ]);
            g.as_bytes().to_vec()
        }
        3 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
        // Deeply nested.
        4 => {
            let n = 1 + rng.below(5000);
            format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()
        }
        // Duplicate keys.
        5 => format!(
            "{{\"market\":\"BTC-USD\",\"market\":\"ETH-USD\",{}",
            &text[1..]
        )
        .into_bytes(),
        _ => text.into_bytes(),
    }
}

fn any_path(rng: &mut Rng, me: &str) -> String {
    let fake_order = format!("{me}/{}", 1_000_000_000 + rng.below(1_000_000));
    let fake_other = "12D3KooWQca55TwA3CLoRcAYxNVhbLLXuuqE2fihR86BS2yVX8wH/1";
    let long = "a".repeat(1 + rng.below(6000));
    let base = [
        "/api/v1/orders".to_string(),
        format!("/api/v1/orders/{fake_order}"),
        format!("/api/v1/orders/{fake_other}"),
        "/api/v1/orders/not-an-id".to_string(),
        "/api/v1/orders/%FF%FE".to_string(),
        "/api/v1/book/BTC-USD".to_string(),
        "/api/v1/book/DOGE-EUR".to_string(),
        "/api/v1/book/BTC-USD?depth=99999999999999999999999".to_string(),
        "/api/v1/book/BTC-USD?depth=-1".to_string(),
        "/api/v1/book/BTC-USD?depth=1&depth=2".to_string(),
        "/api/v1/trades?limit=1e9".to_string(),
        "/api/v1/trades?market=%00".to_string(),
        "/api/v1/orders?status=open&status=filled".to_string(),
        "/api/v1/orders?limit=18446744073709551616".to_string(),
        "/api/v1/peers".to_string(),
        "/api/v1/status".to_string(),
        "/api/v1/events?last_event_id=%F0%9F%92%A9".to_string(),
        "/metrics".to_string(),
        "/".to_string(),
        "/assets/app.js".to_string(),
        "/api/v1/../api/v1/status".to_string(),
        "/api/v1/./orders".to_string(),
        "//api/v1/orders".to_string(),
        "/api/v1/orders/".to_string(),
        "/api/v1/orders/%2e%2e/%2e%2e/status".to_string(),
        "/api/v1/book/%E2%82%BF-USD".to_string(),
        "/api/v1/book/BTC-USD%00".to_string(),
        "/api/v1/book/₿-USD".to_string(),
        "/api/v1/orders/日本/1".to_string(),
        "/api/v1/book/%".to_string(),
        "/api/v1/book/BTC-USD/../ETH-USD".to_string(),
        "/api/v2/orders".to_string(),
        format!("/api/v1/{long}"),
        format!("/api/v1/orders/{long}"),
        format!("/api/v1/book/{long}"),
        format!("/api/v1/orders?market={long}"),
        "/api/v1/orders?%zz=1".to_string(),
        "*".to_string(),
    ];
    let mut p = base[rng.below(base.len())].clone();
    // (A request target `*#frag` is not HTTP at all: the HTTP library
    // refuses it before the API sees it, without a body.)
    if rng.chance(5) && p.starts_with('/') {
        p.push('#');
        p.push_str("frag");
    }
    p
}

struct Sent {
    what: String,
    response: raw::RawResponse,
}

fn send_one(rng: &mut Rng, addr: SocketAddr, me: &str) -> Sent {
    let method = rng.pick(&[
        "GET", "GET", "POST", "POST", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "HEAD",
        "PROPFIND", "FOO",
    ]);
    let path = if method == "POST" && rng.chance(60) {
        "/api/v1/orders".to_string()
    } else {
        any_path(rng, me)
    };
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    match rng.below(10) {
        0 => {}
        1 => head.push_str("Authorization: Bearer wrong-token\r\n"),
        2 => head.push_str(&format!("Authorization: bearer {TOKEN}\r\n")),
        3 => head.push_str(&format!("Authorization: Basic {TOKEN}\r\n")),
        _ => head.push_str(&format!("Authorization: Bearer {TOKEN}\r\n")),
    }
    let content_type = rng.pick(&[
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "",
    ]);
    if !content_type.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    if rng.chance(10) {
        head.push_str("Content-Type: text/plain\r\n");
    }
    if rng.chance(10) {
        for i in 0..rng.below(40) {
            head.push_str(&format!("X-Junk-{i}: {}\r\n", "j".repeat(rng.below(200))));
        }
    }
    if rng.chance(5) {
        head.push_str(&format!("X-Big: {}\r\n", "b".repeat(8000)));
    }
    if rng.chance(5) {
        head.push_str("Accept: text/event-stream\r\nLast-Event-ID: 99999999999999999999999\r\n");
    }
    if rng.chance(5) {
        head.push_str("Expect: 100-continue\r\n");
    }
    let huge;
    let normal;
    let body = match rng.below(20) {
        0 => {
            huge = vec![b' '; MAX_BODY + 1 + rng.below(MAX_BODY)];
            if rng.chance(50) {
                raw::Body::Sized(&huge)
            } else {
                raw::Body::Chunked(&huge, 4096)
            }
        }
        1..=3 => raw::Body::None,
        _ if method == "GET" && rng.chance(70) => raw::Body::None,
        _ => {
            normal = body(rng);
            if rng.chance(20) {
                raw::Body::Chunked(&normal, 1 + rng.below(64))
            } else {
                raw::Body::Sized(&normal)
            }
        }
    };
    let what = match &body {
        raw::Body::None => format!("{head}(no body)"),
        raw::Body::Sized(b) | raw::Body::Chunked(b, _) if b.len() > 2000 => {
            format!("{head}({} bytes)", b.len())
        }
        raw::Body::Sized(b) | raw::Body::Chunked(b, _) => {
            format!("{head}\n{}", String::from_utf8_lossy(b))
        }
    };
    let response =
        raw::send(addr, &head, body).unwrap_or_else(|e| panic!("no answer to\n{what}\n: {e}"));
    Sent { what, response }
}

async fn snapshot(node: &common::Node) -> (Value, Value, Value) {
    let get = |path: &'static str| async move {
        let a = node
            .request(reqwest::Method::GET, path, None, Some(TOKEN))
            .await;
        assert_eq!(a.status, 200, "{path}: {a:?}");
        a.body
    };
    let btc = get("/api/v1/book/BTC-USD?depth=1000").await;
    let eth = get("/api/v1/book/ETH-USD?depth=1000").await;
    let orders = get("/api/v1/orders?limit=10000").await;
    (btc, eth, orders)
}

#[tokio::test]
async fn hostile_requests_get_4xx_with_json_errors_and_change_nothing() {
    let seed = std::env::var("PEERBOOK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_u64);
    let count: usize = std::env::var("PEERBOOK_TEST_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("random", dir.path())
        .env("PEERBOOK_API_TOKEN", TOKEN)
        .env("PEERBOOK_API_MAX_BODY_BYTES", &MAX_BODY.to_string())
        .env("PEERBOOK_API_MAX_EVENT_STREAMS", "100000")
        .start();
    let me = common::eventually(
        "the node to be up",
        || node.output(),
        || async {
            let r = node
                .http()
                .get(node.url("/api/v1/status"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .ok()?;
            let status: peerbook::api::status::Status = r.json().await.ok()?;
            (!status.listen_addrs.is_empty()).then_some(status.peer_id)
        },
    )
    .await;
    for (side, price) in [
        ("buy", "99"),
        ("buy", "98.5"),
        ("sell", "101"),
        ("sell", "103"),
    ] {
        let a = node
            .request(
                reqwest::Method::POST,
                "/api/v1/orders",
                Some(
                    &json!({"market": "BTC-USD", "side": side, "price": price, "quantity": "0.5"}),
                ),
                Some(TOKEN),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
    }
    let before = snapshot(&node).await;
    let addr = node.api_addr();

    let mut rng = Rng(seed);
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..count {
        let Sent { what, response } = send_one(&mut rng, addr, &me);
        let r = &response;
        *by_status.entry(r.status).or_default() += 1;
        let context = || {
            format!(
                "request {i} (seed {seed}):\n{what}\nanswer: {} {:?} {}",
                r.status,
                r.headers,
                String::from_utf8_lossy(&r.body)
            )
        };
        assert!(r.status < 500, "a 5xx: {}", context());
        if (400..500).contains(&r.status) && !what.starts_with("HEAD ") {
            let e = r
                .json()
                .unwrap_or_else(|| panic!("not JSON: {}", context()));
            let code = e["error"]["code"].as_str().unwrap_or("");
            let message = e["error"]["message"].as_str().unwrap_or("");
            assert!(
                !code.is_empty() && !message.is_empty(),
                "no code or message: {}",
                context()
            );
            *codes.entry(code.to_string()).or_default() += 1;
            let names = match code {
                "body_too_large" => Some(MAX_BODY.to_string()),
                "method_not_allowed" => what.split(' ').next().map(str::to_string),
                "unsupported_media_type" => Some("Content-Type".to_string()),
                "unauthorized" => Some("Authorization".to_string()),
                _ => None,
            };
            if let Some(name) = names {
                assert!(message.contains(&name), "{name:?} not named: {}", context());
            }
        }
        assert!(
            r.status != 201 && r.status != 202,
            "a change was accepted: {}",
            context()
        );
    }
    println!("seed {seed}, {count} requests: statuses {by_status:?}, codes {codes:?}");

    let after = snapshot(&node).await;
    assert_eq!(before, after, "the book or the orders changed");
    // Refusals of every kind were seen, not just one.
    for code in [
        "unauthorized",
        "bad_body",
        "bad_value",
        "not_found",
        "method_not_allowed",
        "body_too_large",
        "unsupported_media_type",
    ] {
        assert!(codes.contains_key(code), "no {code} among {codes:?}");
    }
}
