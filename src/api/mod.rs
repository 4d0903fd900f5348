//! The HTTP API (axum): JSON under `/api/v1`, Server-Sent Events at
//! `/api/v1/events`, OpenMetrics text at `/metrics`, the web page at `/`.
//!
//! One file per concern, each exporting `routes()`: add a route family by
//! writing `api/<name>.rs` and merging its routes in [`router`], inside the
//! protected group unless it must be public. Every error is an [`ApiError`],
//! which renders as `{"error":{"code":..,"message":..}}` — also axum's own
//! refusals (bad JSON, wrong content type, body too large, bad path or
//! query), which every handler takes as a `Result` and converts.
//!
//! What a client can make the API do is bounded ([`ApiLimits`], the `[api]`
//! section): open connections and how long one may sit idle
//! ([`BoundedListener`]), the size of a request body, the number of open
//! event streams. Each refusal is counted ([`ApiCounters`]) and shown in
//! `/metrics`.

mod auth;
pub mod book;
pub mod candles;
mod conn;
mod engine_error;
pub mod error;
pub mod events;
mod index;
mod metrics;
pub mod oplog;
pub mod orders;
pub mod peers;
pub mod status;
pub mod ticker;
pub mod trades;
mod ws;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use prometheus_client::registry::Registry;
use tower_http::trace::TraceLayer;

use crate::driver::EngineHandle;
use crate::net::NetHandle;
use crate::shutdown::Shutdown;

pub use conn::BoundedListener;
pub use error::ApiError;

/// What a client may make the API hold at once (`[api]` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// The largest request body read; a larger one gets 413 before it is
    /// read whole.
    pub max_body_bytes: usize,
    /// Most event streams open at once; one more gets 503.
    pub max_event_streams: usize,
    /// Most HTTP connections open at once; one more gets 503 and is closed.
    pub max_connections: usize,
    /// A connection on which nothing moves for this long is closed.
    pub idle_timeout: std::time::Duration,
    /// Most WebSocket clients at once; one more gets 503.
    pub max_ws_clients: usize,
    /// How far a WebSocket client may fall behind, in bytes.
    pub ws_buffer_bytes: usize,
}

impl From<&crate::config::ApiConfig> for ApiLimits {
    fn from(c: &crate::config::ApiConfig) -> Self {
        ApiLimits {
            max_body_bytes: c.max_body_bytes,
            max_event_streams: c.max_event_streams,
            max_connections: c.max_connections,
            idle_timeout: std::time::Duration::from_secs(c.idle_timeout_secs),
            max_ws_clients: c.max_ws_clients,
            ws_buffer_bytes: c.ws_buffer_bytes,
        }
    }
}

/// What the API refused because a limit bit, for `/metrics`.
#[derive(Debug, Default)]
pub struct ApiCounters {
    /// Requests refused with 413: the body was over `max_body_bytes`.
    pub body_too_large: AtomicU64,
    /// Event streams refused with 503: `max_event_streams` were open.
    pub event_streams_refused: AtomicU64,
    /// HTTP connections open now.
    pub connections: AtomicU64,
    /// Connections refused with 503: `max_connections` were open.
    pub connections_refused: AtomicU64,
    /// Connections closed because nothing moved for `idle_timeout`.
    pub connections_timed_out: AtomicU64,
    /// WebSocket clients connected now.
    pub ws_clients: AtomicU64,
    /// WebSocket clients refused with 503: `max_ws_clients` were connected.
    pub ws_refused: AtomicU64,
    /// Book channels resynced because a client fell behind.
    pub ws_resyncs: AtomicU64,
}

impl ApiCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the handlers share.
pub struct ApiState {
    pub net: NetHandle,
    pub engine: EngineHandle,
    /// When the node started, for `uptime_secs`.
    pub started: Instant,
    /// Names of the enabled markets.
    pub markets: Vec<String>,
    /// The registry every component recorded its metrics into.
    pub registry: Arc<Registry>,
    /// Bearer token required on every route but `/` and `/metrics`, if set.
    pub token: Option<String>,
    pub limits: ApiLimits,
    /// Shared with the event hub, which counts the streams it refuses.
    pub counters: Arc<ApiCounters>,
    /// Every market's last 24 hours, for tickers.
    pub tickers: ticker::Tickers,
}

/// The whole API. Starts the event hub, which records events from now on.
pub fn router(state: Arc<ApiState>) -> Router {
    let hub = events::Hub::start(state.clone());
    ticker::start(state.clone());
    let protected = Router::new()
        .merge(events::routes())
        .merge(status::routes())
        .merge(peers::routes())
        .merge(orders::routes())
        .merge(book::routes())
        .merge(trades::routes())
        .merge(ticker::routes())
        .merge(candles::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    // The WebSocket checks the token itself: a browser can only give it in
    // a message.
    let public = Router::new()
        .merge(ws::routes())
        .merge(index::routes())
        .merge(metrics::routes());
    Router::new()
        .merge(protected)
        .merge(public)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(Extension(hub))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            conn::mark_busy,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_body,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The 413 for a body over `limit` bytes.
fn body_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "the body is larger than the {limit} bytes this node accepts \
             (api.max_body_bytes)"
        ),
    )
}

/// Middleware: refuse a body announced larger than the limit before
/// reading any of it, and name the limit (and count) when a body without a
/// length turned out too large while it was read. The rest of the body is
/// never read, so the answer closes the connection (a client must not send
/// its next request on it).
async fn limit_body(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let limit = state.limits.max_body_bytes;
    let announced = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let refuse = || {
        ApiCounters::bump(&state.counters.body_too_large);
        let mut response = body_too_large(limit).into_response();
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        response
    };
    if announced.is_some_and(|n| n > limit as u64) {
        return refuse();
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return refuse();
    }
    response
}

/// Serve `router` on `listener` until `shutdown` fires, then finish the
/// requests in flight. Event streams see the same signal and end, or the
/// server would wait for them forever.
pub async fn serve(
    listener: BoundedListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let router = router.layer(Extension(shutdown.clone()));
    let app = router.into_make_service_with_connect_info::<conn::ConnBusy>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
