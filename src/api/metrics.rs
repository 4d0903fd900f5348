//! `GET /metrics`: the Prometheus text of the node's registry (libp2p's
//! swarm and protocol metrics, gossipsub's, and the node's own).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{ApiError, ApiState};

const CONTENT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &state.registry)
        .map_err(|e| ApiError::internal(format!("cannot encode the metrics: {e}")))?;
    Ok(([(CONTENT_TYPE, CONTENT)], text).into_response())
}
