//! `GET /api/v1/ws`: the WebSocket feed (docs/market-data.md).
//!
//! A client subscribes to channels: `book:<market>` (a snapshot with a
//! sequence number, then deltas of changed levels with consecutive numbers
//! and a checksum of the top of the book), `trades:<market>`,
//! `ticker:<market>`, and this node's `orders` and `fills`. One task per
//! connection reads the client's requests, the book deltas and the
//! engine's events. A client falls behind when more than
//! `api.ws_buffer_bytes` went out since it last answered a ping (the node
//! pings once half of that is out, and after every snapshot, which is not
//! counted: it must go out whatever its size), or when the task itself could not keep
//! up with the feed: then its book channels get no more deltas until it
//! answers, and then `resync` and a fresh snapshot each: never a silent gap.
//!
//! When the node has a token, the client gives it in the `Authorization`
//! header or in its first message (`{"op":"auth","token":...}`): browsers
//! cannot set headers on a WebSocket. At most `api.max_ws_clients`
//! connections at once; what the feed refused and resynced is counted.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::{ApiCounters, ApiError, ApiState};
use crate::driver::BookDelta;
use crate::engine::Event;

/// How often an idle connection is pinged (it keeps the idle timeout off).
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long a client with no token may take to send its `auth`.
const AUTH_WITHIN: Duration = Duration::from_secs(10);

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/api/v1/ws", get(upgrade))
}

async fn upgrade(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::bad_request(
                "not_a_websocket",
                format!("GET /api/v1/ws is a WebSocket: {}", e.body_text()),
            )
            .into_response()
        }
    };
    let limit = state.limits.max_ws_clients;
    let open = state.counters.ws_clients.fetch_add(1, Ordering::Relaxed);
    if open >= limit as u64 {
        state.counters.ws_clients.fetch_sub(1, Ordering::Relaxed);
        ApiCounters::bump(&state.counters.ws_refused);
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_ws_clients",
            format!("{limit} WebSocket clients are connected (api.max_ws_clients)"),
        )
        .into_response();
    }
    let authed = match &state.token {
        None => true,
        Some(token) => headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                super::auth::constant_time_eq(given.trim().as_bytes(), token.as_bytes())
            }),
    };
    ws.on_upgrade(move |socket| async move {
        Client::new(state.clone(), authed).run(socket).await;
        state.counters.ws_clients.fetch_sub(1, Ordering::Relaxed);
    })
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Auth { token: String },
    Subscribe { channel: String },
    Unsubscribe { channel: String },
}

/// What a client follows.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Channel {
    Book(String),
    Trades(String),
    Ticker(String),
    Orders,
    Fills,
}

impl Channel {
    fn parse(s: &str, markets: &[String]) -> Result<Channel, String> {
        let market = |m: &str| {
            if markets.iter().any(|k| k == m) {
                Ok(m.to_string())
            } else {
                Err(format!("unknown market {m:?}"))
            }
        };
        match s.split_once(':') {
            Some(("book", m)) => Ok(Channel::Book(market(m)?)),
            Some(("trades", m)) => Ok(Channel::Trades(market(m)?)),
            Some(("ticker", m)) => Ok(Channel::Ticker(market(m)?)),
            None if s == "orders" => Ok(Channel::Orders),
            None if s == "fills" => Ok(Channel::Fills),
            _ => Err(format!(
                "unknown channel {s:?} (book:<market>, trades:<market>, ticker:<market>, orders, fills)"
            )),
        }
    }

    fn name(&self) -> String {
        match self {
            Channel::Book(m) => format!("book:{m}"),
            Channel::Trades(m) => format!("trades:{m}"),
            Channel::Ticker(m) => format!("ticker:{m}"),
            Channel::Orders => "orders".into(),
            Channel::Fills => "fills".into(),
        }
    }
}

struct Client {
    state: Arc<ApiState>,
    authed: bool,
    /// Bytes sent since the client last answered a ping.
    unanswered: usize,
    /// The payload of the ping whose pong resets `unanswered`, while one
    /// is out.
    pinged: Option<u64>,
    /// Pings sent, numbering their payloads.
    pings: u64,
    /// A snapshot went out in the last batch: count from its end.
    fresh: bool,
    /// The client is too far behind: its books wait for a resync.
    behind: bool,
    subs: BTreeSet<Channel>,
    /// Per followed book: the sequence number the next delta must have.
    next_seq: HashMap<String, u64>,
    me: String,
}

impl Client {
    fn new(state: Arc<ApiState>, authed: bool) -> Client {
        let me = state.engine.me().to_string();
        Client {
            state,
            authed,
            unanswered: 0,
            pinged: None,
            pings: 0,
            fresh: false,
            behind: false,
            subs: BTreeSet::new(),
            next_seq: HashMap::new(),
            me,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        // Subscribe before any snapshot, so no delta falls between.
        let mut levels = self.state.engine.subscribe_levels();
        let mut events = self.state.engine.subscribe();
        let mut tickers = self.state.tickers.subscribe();
        let mut ping = tokio::time::interval(PING_EVERY);
        let auth_deadline = tokio::time::sleep(AUTH_WITHIN);
        tokio::pin!(auth_deadline);
        loop {
            let sent = tokio::select! {
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Text(t))) => self.on_request(&t).await,
                    Some(Ok(Message::Pong(p))) => self.on_pong(&p).await,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => Vec::new(),
                },
                d = levels.recv() => match d {
                    Ok(d) => self.on_delta(d).await,
                    Err(RecvError::Lagged(_)) => self.resync_all("the client fell behind the feed").await,
                    Err(RecvError::Closed) => return,
                },
                t = tickers.recv() => match t {
                    // Made after the trade was counted: it shows it.
                    Ok(t) if self.subs.contains(&Channel::Ticker(t.market.clone())) => vec![ticker_message(&t)],
                    Ok(_) => Vec::new(),
                    Err(RecvError::Lagged(_)) => self.all_tickers().await,
                    Err(RecvError::Closed) => return,
                },
                e = events.recv() => match e {
                    Ok(e) => self.on_event(e).await,
                    Err(RecvError::Lagged(_)) => self.resync_all("the client fell behind the events").await,
                    Err(RecvError::Closed) => return,
                },
                _ = ping.tick() => vec![Message::Ping(Default::default())],
                _ = &mut auth_deadline, if !self.authed => {
                    let _ = socket.send(text(json!({"type":"error","code":"no_token","message":"no token given in time; closing"}))).await;
                    return;
                }
            };
            for m in sent {
                if let Message::Text(t) = &m {
                    self.unanswered += t.len();
                }
                if socket.send(m).await.is_err() {
                    return;
                }
            }
            let budget = self.state.limits.ws_buffer_bytes;
            // A snapshot must go out whatever its size; the budget bounds
            // what follows it, so count from its end, and ask at once.
            let fresh = std::mem::take(&mut self.fresh);
            if fresh {
                self.unanswered = 0;
            }
            if fresh || (self.unanswered > budget / 2 && self.pinged.is_none()) {
                self.pings += 1;
                self.pinged = Some(self.pings);
                let payload = self.pings.to_be_bytes().to_vec();
                if socket.send(Message::Ping(payload.into())).await.is_err() {
                    return;
                }
            }
            if self.unanswered > budget && !self.behind && !self.next_seq.is_empty() {
                // No more deltas until it answers: then it starts afresh.
                self.behind = true;
            }
        }
    }

    async fn on_request(&mut self, raw: &str) -> Vec<Message> {
        let req: Request = match serde_json::from_str(raw) {
            Ok(r) => r,
            Err(e) => {
                return vec![text(
                    json!({"type":"error","code":"bad_request","message":format!(
                        "cannot read the request ({e}): send {{\"op\":\"subscribe\",\"channel\":...}}, \
                         unsubscribe or auth"
                    )}),
                )]
            }
        };
        match req {
            Request::Auth { token } => {
                let ok =
                    self.state.token.as_ref().is_none_or(|t| {
                        super::auth::constant_time_eq(token.as_bytes(), t.as_bytes())
                    });
                if ok {
                    self.authed = true;
                    vec![text(json!({"type":"authenticated"}))]
                } else {
                    vec![text(
                        json!({"type":"error","code":"wrong_token","message":"wrong token"}),
                    )]
                }
            }
            Request::Subscribe { channel } => {
                if !self.authed {
                    return vec![text(
                        json!({"type":"error","code":"no_token","channel":channel,
                        "message":"this node needs a token: send {\"op\":\"auth\",\"token\":...} first"}),
                    )];
                }
                let c = match Channel::parse(&channel, &self.state.markets) {
                    Ok(c) => c,
                    Err(m) => {
                        return vec![text(
                            json!({"type":"error","code":"unknown_channel","channel":channel,"message":m}),
                        )]
                    }
                };
                let mut out = vec![text(json!({"type":"subscribed","channel":c.name()}))];
                match &c {
                    Channel::Book(m) => out.extend(self.snapshot(m).await),
                    Channel::Ticker(m) => out.extend(self.ticker(m).await),
                    _ => {}
                }
                self.subs.insert(c);
                out
            }
            Request::Unsubscribe { channel } => {
                let Ok(c) = Channel::parse(&channel, &self.state.markets) else {
                    return vec![text(
                        json!({"type":"error","code":"unknown_channel","channel":channel,"message":"unknown channel"}),
                    )];
                };
                if let Channel::Book(m) = &c {
                    self.next_seq.remove(m);
                }
                self.subs.remove(&c);
                vec![text(json!({"type":"unsubscribed","channel":c.name()}))]
            }
        }
    }

    async fn snapshot(&mut self, market: &str) -> Vec<Message> {
        match self.state.engine.book_snapshot(market.to_string()).await {
            Ok(Ok(s)) => {
                self.next_seq.insert(market.to_string(), s.seq + 1);
                self.fresh = true;
                vec![text(json!({
                    "type": "snapshot",
                    "channel": format!("book:{market}"),
                    "seq": s.seq,
                    "bids": s.bids,
                    "asks": s.asks,
                    "checksum": s.checksum,
                }))]
            }
            Ok(Err(e)) => vec![text(
                json!({"type":"error","code":"unavailable","message":e.to_string()}),
            )],
            Err(e) => vec![text(
                json!({"type":"error","code":"unavailable","message":e.to_string()}),
            )],
        }
    }

    /// The client answered a ping: what went out before it has arrived.
    /// Only the pong of the latest ping counts (an older one says less).
    async fn on_pong(&mut self, payload: &[u8]) -> Vec<Message> {
        let Some(waiting) = self.pinged else {
            return Vec::new();
        };
        if payload != waiting.to_be_bytes() {
            return Vec::new();
        }
        self.unanswered = 0;
        self.pinged = None;
        if std::mem::take(&mut self.behind) {
            return self
                .resync_all("the client fell behind (api.ws_buffer_bytes)")
                .await;
        }
        Vec::new()
    }

    async fn on_delta(&mut self, d: Arc<BookDelta>) -> Vec<Message> {
        if self.behind {
            return Vec::new();
        }
        let Some(next) = self.next_seq.get(&d.market).copied() else {
            return Vec::new();
        };
        if d.seq < next {
            // Already in the snapshot.
            return Vec::new();
        }
        if d.seq > next {
            return self.resync(&d.market.clone(), "a delta was missed").await;
        }
        self.next_seq.insert(d.market.clone(), next + 1);
        let changes: Vec<Value> = d
            .changes
            .iter()
            .map(|(side, p, q)| json!([side, p, q]))
            .collect();
        vec![text(json!({
            "type": "delta",
            "channel": format!("book:{}", d.market),
            "seq": d.seq,
            "changes": changes,
            "checksum": d.checksum,
            "ts_ms": d.ts_ms,
        }))]
    }

    async fn resync(&mut self, market: &str, reason: &str) -> Vec<Message> {
        ApiCounters::bump(&self.state.counters.ws_resyncs);
        let mut out = vec![text(
            json!({"type":"resync","channel":format!("book:{market}"),"reason":reason}),
        )];
        out.extend(self.snapshot(market).await);
        out
    }

    async fn resync_all(&mut self, reason: &str) -> Vec<Message> {
        let books: Vec<String> = self.next_seq.keys().cloned().collect();
        let mut out = Vec::new();
        for m in books {
            out.extend(self.resync(&m, reason).await);
        }
        out
    }

    /// Every followed ticker (after missing which changed).
    async fn all_tickers(&self) -> Vec<Message> {
        let markets: Vec<String> = self
            .subs
            .iter()
            .filter_map(|c| match c {
                Channel::Ticker(m) => Some(m.clone()),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for m in markets {
            out.extend(self.ticker(&m).await);
        }
        out
    }

    async fn ticker(&self, market: &str) -> Vec<Message> {
        match super::ticker::ticker_of(&self.state, market).await {
            Ok(t) => vec![ticker_message(&t)],
            Err(e) => vec![text(
                json!({"type":"error","code":"unavailable","message":e.message}),
            )],
        }
    }

    async fn on_event(&mut self, e: Event) -> Vec<Message> {
        let mut out = Vec::new();
        match e {
            Event::Trade(t) => {
                if self.subs.contains(&Channel::Trades(t.market.clone())) {
                    out.push(text(
                        json!({"type":"trade","channel":format!("trades:{}", t.market),"data":t}),
                    ));
                }
                let ours = t.maker_order_id.starts_with(&self.me)
                    || t.taker_order_id.starts_with(&self.me);
                if ours && self.subs.contains(&Channel::Fills) {
                    out.push(text(json!({"type":"fill","channel":"fills","data":t})));
                }
            }
            Event::Order(o) if self.subs.contains(&Channel::Orders) => {
                out.push(text(json!({"type":"order","channel":"orders","data":o})));
            }
            _ => {}
        }
        out
    }
}

/// A ticker as its channel carries it.
fn ticker_message(t: &super::ticker::Ticker) -> Message {
    text(json!({"type":"ticker","channel":format!("ticker:{}", t.market),"data":t}))
}

fn text(v: Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}
