//! `GET /api/v1/trades?market=&limit=&before=&after=`: fills this node
//! knows, of every owner, newest first: the recent ones from memory, older
//! ones from the durable tape, within the retention.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::engine_error::{engine_error, gone};
use super::error::ApiError;
use super::ApiState;
use crate::engine::TradeInfo;

const MAX_LIMIT: usize = 10_000;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/api/v1/trades", get(trades))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TradesQuery {
    market: Option<String>,
    limit: Option<usize>,
    /// Trades strictly older than this time (ms since the Unix epoch).
    before: Option<u64>,
    /// Trades strictly newer than this time.
    after: Option<u64>,
}

async fn trades(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<TradesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<TradeInfo>>, ApiError> {
    let Query(q) = query?;
    let limit = super::error::at_least_one("limit", q.limit)?
        .unwrap_or(100)
        .min(MAX_LIMIT);
    let page = crate::driver::Page {
        before: q.before,
        after: q.after,
    };
    let result = state
        .engine
        .trades(q.market, page, limit)
        .await
        .map_err(gone)?;
    result.map(Json).map_err(|e| engine_error(e, false))
}
