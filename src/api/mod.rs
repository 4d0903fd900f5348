//! The HTTP API (axum): JSON under `/api/v1`, Prometheus text at `/metrics`,
//! a page at `/`.
//!
//! One file per concern, each exporting `routes()`: add a route family by
//! writing `api/<name>.rs` and merging its routes in [`router`], inside the
//! protected group unless it must be public. Every error is an [`ApiError`],
//! which renders as `{"error":{"code":..,"message":..}}`.

mod auth;
pub mod book;
mod engine_error;
pub mod error;
mod index;
mod metrics;
pub mod orders;
pub mod peers;
pub mod status;
pub mod trades;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::driver::EngineHandle;
use crate::net::NetHandle;
use crate::shutdown::Shutdown;

pub use error::ApiError;

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

/// The whole API.
pub fn router(state: Arc<ApiState>) -> Router {
    let protected = Router::new()
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
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serve `router` on `listener` until `shutdown` fires, then finish the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
