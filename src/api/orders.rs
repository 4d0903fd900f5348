//! Orders: place, cancel, look up and list this node's orders.
//!
//! `POST /api/v1/orders` answers 201 with the order once it is durable and
//! its taking phase has ended (filled, resting, or the rest dropped), with
//! the fills it got. A repeated `client_id` returns the first order, never a
//! second one. Decimals travel as strings (numbers are accepted too); every
//! field is checked and a refused request changes nothing.
//!
//! `POST /api/v1/orders/batch` places and cancels many orders in one request
//! (for programs that trade a lot: one round trip, and group commits shared by
//! all): each item is answered on its own, as the single routes would.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures::future::join_all;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::engine_error::{engine_error, gone};
use super::error::ApiError;
use super::ApiState;
use crate::engine::{Command, OrderInfo, OrderKind, OrderStatus, PlaceOrder, Tif};
use crate::market::Side;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/orders", get(list).post(place))
        .route("/api/v1/orders/batch", post(batch))
        .route("/api/v1/orders/{*id}", delete(cancel).get(one))
}

/// A decimal given as a JSON string (preferred: exact) or number.
#[derive(Deserialize)]
#[serde(untagged)]
enum DecimalIn {
    Str(String),
    Num(serde_json::Number),
}

impl DecimalIn {
    fn parse(&self, field: &str) -> Result<Decimal, ApiError> {
        let text = match self {
            DecimalIn::Str(s) => s.trim().to_string(),
            DecimalIn::Num(n) => n.to_string(),
        };
        Decimal::from_str(&text)
            .or_else(|_| Decimal::from_scientific(&text))
            .map_err(|_| {
                ApiError::bad_request(
                    "bad_value",
                    format!("{field} {text:?} is not a decimal number"),
                )
            })
    }
}

/// The body of `POST /api/v1/orders`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceBody {
    market: String,
    side: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    price: Option<DecimalIn>,
    quantity: DecimalIn,
    #[serde(default)]
    time_in_force: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    /// Good till this time (ms since the Unix epoch).
    #[serde(default)]
    expires_at: Option<u64>,
}

impl PlaceBody {
    fn into_order(self) -> Result<PlaceOrder, ApiError> {
        let bad = |m: String| ApiError::bad_request("bad_value", m);
        let side = Side::from_str(&self.side).map_err(bad)?;
        let kind = match self.kind.as_deref() {
            Some(kind) => OrderKind::from_str(kind).map_err(bad)?,
            None => OrderKind::Limit,
        };
        let tif = match self.time_in_force.as_deref() {
            Some(tif) => Tif::from_str(tif).map_err(bad)?,
            None if kind == OrderKind::Market => Tif::Ioc,
            None => Tif::Gtc,
        };
        let price = self.price.as_ref().map(|p| p.parse("price")).transpose()?;
        let quantity = self.quantity.parse("quantity")?;
        Ok(PlaceOrder {
            market: self.market,
            side,
            kind,
            price,
            quantity,
            tif,
            client_id: self.client_id,
            expires_ms: self.expires_at,
        })
    }
}

async fn place(
    State(state): State<Arc<ApiState>>,
    body: Result<Json<PlaceBody>, JsonRejection>,
) -> Result<(StatusCode, Json<OrderInfo>), ApiError> {
    let Json(body) = body?;
    let (status, order) = run(&state, Command::Place(body.into_order()?)).await?;
    Ok((status, Json(order)))
}

/// Carry out a place or cancel: 201 for a placed order, 200 for a
/// cancelled one, or the engine's refusal as an HTTP error.
async fn run(state: &ApiState, cmd: Command) -> Result<(StatusCode, OrderInfo), ApiError> {
    let (ok, in_path) = match cmd {
        Command::Place(_) => (StatusCode::CREATED, false),
        Command::Cancel { .. } => (StatusCode::OK, true),
    };
    let result = state.engine.command(cmd).await.map_err(gone)?;
    result
        .map(|o| (ok, o))
        .map_err(|e| engine_error(e, in_path))
}

/// Most items (places and cancels together) in one batch.
pub const MAX_BATCH_ITEMS: usize = 1_000;

/// The body of `POST /api/v1/orders/batch`. Items are checked one by one,
/// so a bad one refuses only itself.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    #[serde(default)]
    place: Vec<serde_json::Value>,
    #[serde(default)]
    cancel: Vec<String>,
}

/// The answer to one item of a batch: the status the single route would
/// have answered, and its body.
#[derive(Serialize)]
struct BatchItem {
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<OrderInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<BatchError>,
}

#[derive(Serialize)]
struct BatchError {
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct BatchAnswer {
    placed: Vec<BatchItem>,
    cancelled: Vec<BatchItem>,
}

impl BatchItem {
    fn of(result: Result<(StatusCode, OrderInfo), ApiError>) -> BatchItem {
        match result {
            Ok((status, order)) => BatchItem {
                status: status.as_u16(),
                order: Some(order),
                error: None,
            },
            Err(e) => BatchItem {
                status: e.status.as_u16(),
                order: None,
                error: Some(BatchError {
                    code: e.code,
                    message: e.message,
                }),
            },
        }
    }
}

async fn batch(
    State(state): State<Arc<ApiState>>,
    body: Result<Json<BatchBody>, JsonRejection>,
) -> Result<Json<BatchAnswer>, ApiError> {
    let Json(body) = body?;
    let items = body.place.len() + body.cancel.len();
    if items == 0 {
        return Err(ApiError::bad_request(
            "bad_body",
            "a batch needs at least one item in `place` or `cancel`",
        ));
    }
    if items > MAX_BATCH_ITEMS {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!("a batch holds at most {MAX_BATCH_ITEMS} items, this one has {items}"),
        ));
    }
    // Every command goes to the engine before any answer is awaited, so
    // the whole batch shares the engine's group commits.
    let places = body.place.into_iter().enumerate().map(|(i, v)| {
        let state = state.clone();
        async move {
            let order = serde_json::from_value::<PlaceBody>(v)
                .map_err(|e| ApiError::bad_request("bad_body", format!("place[{i}]: {e}")))?
                .into_order()?;
            run(&state, Command::Place(order)).await
        }
    });
    let cancels = body.cancel.into_iter().map(|id| {
        let state = state.clone();
        async move { run(&state, Command::Cancel { id }).await }
    });
    let (placed, cancelled) = futures::join!(join_all(places), join_all(cancels));
    Ok(Json(BatchAnswer {
        placed: placed.into_iter().map(BatchItem::of).collect(),
        cancelled: cancelled.into_iter().map(BatchItem::of).collect(),
    }))
}

async fn cancel(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderInfo>, ApiError> {
    let Path(id) = id?;
    let (_, order) = run(&state, Command::Cancel { id }).await?;
    Ok(Json(order))
}

async fn one(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderInfo>, ApiError> {
    let Path(id) = id?;
    let result = state.engine.order(id).await.map_err(gone)?;
    result.map(Json).map_err(|e| engine_error(e, true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    market: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    /// Orders older than this one (an order id), for the next page.
    before: Option<String>,
    /// Orders newer than this one.
    after: Option<String>,
}

async fn list(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<OrderInfo>>, ApiError> {
    let Query(q) = query?;
    let status = q
        .status
        .as_deref()
        .map(OrderStatus::from_str)
        .transpose()
        .map_err(|m| ApiError::bad_request("bad_query", m))?;
    let limit = q.limit.unwrap_or(1_000).min(10_000);
    let result = state
        .engine
        .orders(
            q.market,
            status,
            crate::driver::Page {
                before: q.before,
                after: q.after,
            },
            limit,
        )
        .await
        .map_err(gone)?;
    result.map(Json).map_err(|e| engine_error(e, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Display, FromStr and serde must spell every name alike: the API
    /// parses what the engine's JSON shows, and the CLI prints it.
    fn same_spelling<T>(all: &[T])
    where
        T: std::fmt::Display + FromStr<Err = String> + Serialize + PartialEq + std::fmt::Debug,
    {
        for v in all {
            let json = serde_json::to_value(v).unwrap();
            assert_eq!(json, serde_json::Value::String(v.to_string()));
            assert_eq!(&T::from_str(&v.to_string()).unwrap(), v);
            assert_eq!(&T::from_str(&v.to_string().to_uppercase()).unwrap(), v);
        }
    }

    #[test]
    fn kinds_tifs_and_statuses_read_as_they_are_written() {
        same_spelling(&[OrderKind::Limit, OrderKind::Market]);
        same_spelling(&[Tif::Gtc, Tif::Ioc, Tif::Fok, Tif::PostOnly]);
        same_spelling(&[
            OrderStatus::Taking,
            OrderStatus::Open,
            OrderStatus::Filled,
            OrderStatus::Cancelled,
            OrderStatus::Expired,
            OrderStatus::Rejected,
        ]);
        assert_eq!(Tif::from_str("Post_Only"), Ok(Tif::PostOnly));
        assert_eq!(
            OrderStatus::from_str("canceled"),
            Ok(OrderStatus::Cancelled)
        );
        assert_eq!(
            Tif::from_str("GTD").unwrap_err(),
            "time_in_force must be gtc, ioc, fok or post-only, got \"gtd\""
        );
    }
}
