//! Orders: place, cancel, look up and list this node's orders.
//!
//! `POST /api/v1/orders` answers 201 with the order once it is durable and
//! its taking phase has ended (filled, resting, or the rest dropped), with
//! the fills it got. A repeated `client_id` returns the first order, never a
//! second one. Decimals travel as strings (numbers are accepted too); every
//! field is checked and a refused request changes nothing.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::engine_error::{engine_error, gone};
use super::error::ApiError;
use super::ApiState;
use crate::engine::{Command, OrderInfo, OrderKind, OrderStatus, PlaceOrder, Tif};
use crate::market::Side;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/orders", get(list).post(place))
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
}

/// Parse a time in force as the API and CLI spell it.
pub fn parse_tif(s: &str) -> Result<Tif, String> {
    match s.to_ascii_lowercase().replace('_', "-").as_str() {
        "gtc" => Ok(Tif::Gtc),
        "ioc" => Ok(Tif::Ioc),
        "fok" => Ok(Tif::Fok),
        "post-only" | "postonly" => Ok(Tif::PostOnly),
        other => Err(format!(
            "time_in_force must be gtc, ioc, fok or post-only, got {other:?}"
        )),
    }
}

/// Parse an order type as the API and CLI spell it.
pub fn parse_kind(s: &str) -> Result<OrderKind, String> {
    match s.to_ascii_lowercase().as_str() {
        "limit" => Ok(OrderKind::Limit),
        "market" => Ok(OrderKind::Market),
        other => Err(format!("type must be limit or market, got {other:?}")),
    }
}

impl PlaceBody {
    fn into_order(self) -> Result<PlaceOrder, ApiError> {
        let bad = |m: String| ApiError::bad_request("bad_value", m);
        let side = Side::from_str(&self.side).map_err(bad)?;
        let kind = parse_kind(self.kind.as_deref().unwrap_or("limit")).map_err(bad)?;
        let default_tif = if kind == OrderKind::Market {
            "ioc"
        } else {
            "gtc"
        };
        let tif = parse_tif(self.time_in_force.as_deref().unwrap_or(default_tif)).map_err(bad)?;
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
        })
    }
}

async fn place(
    State(state): State<Arc<ApiState>>,
    body: Result<Json<PlaceBody>, JsonRejection>,
) -> Result<(StatusCode, Json<OrderInfo>), ApiError> {
    let Json(body) = body?;
    let order = body.into_order()?;
    let result = state
        .engine
        .command(Command::Place(order))
        .await
        .map_err(gone)?;
    result
        .map(|o| (StatusCode::CREATED, Json(o)))
        .map_err(|e| engine_error(e, false))
}

async fn cancel(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderInfo>, ApiError> {
    let Path(id) = id?;
    let result = state
        .engine
        .command(Command::Cancel { id })
        .await
        .map_err(gone)?;
    result.map(Json).map_err(|e| engine_error(e, true))
}

async fn one(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderInfo>, ApiError> {
    let Path(id) = id?;
    let result = state
        .engine
        .query(move |e| e.order(&id))
        .await
        .map_err(gone)?;
    result.map(Json).map_err(|e| engine_error(e, true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    market: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
}

/// Parse an order status filter.
pub fn parse_status(s: &str) -> Result<OrderStatus, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "taking" => OrderStatus::Taking,
        "open" => OrderStatus::Open,
        "filled" => OrderStatus::Filled,
        "cancelled" | "canceled" => OrderStatus::Cancelled,
        "expired" => OrderStatus::Expired,
        "rejected" => OrderStatus::Rejected,
        other => {
            return Err(format!(
                "status must be taking, open, filled, cancelled, expired or rejected, got {other:?}"
            ))
        }
    })
}

async fn list(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<OrderInfo>>, ApiError> {
    let Query(q) = query?;
    let status = q
        .status
        .as_deref()
        .map(parse_status)
        .transpose()
        .map_err(|m| ApiError::bad_request("bad_query", m))?;
    let limit = q.limit.unwrap_or(1_000).min(10_000);
    let market = q.market;
    let result = state
        .engine
        .query(move |e| e.orders(market.as_deref(), status, limit))
        .await
        .map_err(gone)?;
    result.map(Json).map_err(|e| engine_error(e, false))
}
