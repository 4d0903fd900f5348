//! `GET /api/v1/book/{market}?depth=N`: the replicated book of a market,
//! aggregated by price level, with its digest (equal on nodes that hold the
//! same orders).

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::engine_error::{engine_error, gone};
use super::error::ApiError;
use super::ApiState;
use crate::engine::BookInfo;

/// Most levels per side one request may ask for.
const MAX_DEPTH: usize = 1_000;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/api/v1/book/{market}", get(book))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookQuery {
    depth: Option<usize>,
}

async fn book(
    State(state): State<Arc<ApiState>>,
    market: Result<Path<String>, PathRejection>,
    query: Result<Query<BookQuery>, QueryRejection>,
) -> Result<Json<BookInfo>, ApiError> {
    let Path(market) = market?;
    let Query(q) = query?;
    let depth = super::error::at_least_one("depth", q.depth)?
        .unwrap_or(50)
        .min(MAX_DEPTH);
    let result = state.engine.book(market, depth).await.map_err(gone)?;
    result.map(Json).map_err(|e| engine_error(e, true))
}
