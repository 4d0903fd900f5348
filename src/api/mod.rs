//! The HTTP API (axum): JSON under `/api/v1`, Server-Sent Events at
//! `/api/v1/events`, Prometheus text at `/metrics`, the web page at `/`.
//!
//! One file per concern, each exporting `routes()`: add a route family by
//! writing `api/<name>.rs` and merging its routes in [`router`], inside the
//! protected group unless it must be public. Every error is an [`ApiError`],
//! which renders as `{"error":{"code":..,"message":..}}` — also axum's own
//! refusals (bad JSON, wrong content type, body too large, bad path or
//! query), which every handler takes as a `Result` and converts.

mod auth;
pub mod book;
mod engine_error;
pub mod error;
pub mod events;
mod index;
mod metrics;
pub mod orders;
pub mod peers;
pub mod status;
pub mod trades;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::driver::EngineHandle;
use crate::net::NetHandle;
use crate::shutdown::Shutdown;

pub use error::ApiError;

/// The largest request body the API reads (an order is a few hundred
/// bytes); a larger one is refused with 413 before it is read whole.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

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
}

/// The whole API. Starts the event hub, which records events from now on.
pub fn router(state: Arc<ApiState>) -> Router {
    let hub = events::Hub::start(state.clone());
    let protected = Router::new()
        .merge(events::routes())
        .merge(status::routes())
        .merge(peers::routes())
        .merge(orders::routes())
        .merge(book::routes())
        .merge(trades::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let public = Router::new()
        .merge(index::routes())
        .merge(metrics::routes());
    Router::new()
        .merge(protected)
        .merge(public)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(Extension(hub))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serve `router` on `listener` until `shutdown` fires, then finish the
/// requests in flight. Event streams see the same signal and end, or the
/// server would wait for them forever.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let router = router.layer(Extension(shutdown.clone()));
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
