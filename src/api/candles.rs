//! `GET /api/v1/candles/{market}?interval=&start=&end=&limit=`: candles
//! (open, high, low, close, volume, count) of the trades this node knows,
//! from memory and the durable tape, so they survive restarts (within the
//! store's retention).
//!
//! Candles are aligned to the interval in UTC (a 1 h candle starts on the
//! hour, a 1 d one at midnight UTC); an interval with no trade has no
//! candle. The trades are read once per request and folded in order of
//! time: `open` is the earliest trade of the interval, `close` the latest
//! (ties broken by trade id, so every node that knows the same trades
//! draws the same candles).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::engine_error::{engine_error, gone};
use super::error::ApiError;
use super::ApiState;
use crate::clock::now_ms;
use crate::engine::{EngineError, TradeInfo};

/// Candles in one answer unless `limit` says fewer.
const DEFAULT_LIMIT: u64 = 500;
/// Candles in one answer at most.
const MAX_LIMIT: u64 = 5_000;
/// Trades one request may fold; a range holding more is refused (narrow
/// it) rather than answered with candles missing trades.
const MAX_TRADES: usize = 2_000_000;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/api/v1/candles/{market}", get(candles))
}

/// The intervals a candle can span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    M1,
    M5,
    M15,
    H1,
    D1,
}

impl Interval {
    pub const ALL: [Interval; 5] = [
        Interval::M1,
        Interval::M5,
        Interval::M15,
        Interval::H1,
        Interval::D1,
    ];

    pub fn ms(self) -> u64 {
        const MIN: u64 = 60_000;
        match self {
            Interval::M1 => MIN,
            Interval::M5 => 5 * MIN,
            Interval::M15 => 15 * MIN,
            Interval::H1 => 60 * MIN,
            Interval::D1 => 24 * 60 * MIN,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::H1 => "1h",
            Interval::D1 => "1d",
        }
    }

    pub fn parse(s: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.name() == s)
    }
}

/// One interval's trades.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    /// Start of the interval (ms since the Unix epoch, UTC-aligned).
    pub t: u64,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    /// In the base currency.
    pub volume: Decimal,
    pub trades: u64,
}

#[derive(Serialize)]
struct Answer {
    market: String,
    interval: &'static str,
    candles: Vec<Candle>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CandlesQuery {
    interval: Option<String>,
    start: Option<u64>,
    end: Option<u64>,
    limit: Option<u64>,
}

/// The window `[start, end)` a query asks for, aligned to the interval:
/// by default the last `limit` intervals up to now (the current one
/// included); with only `start`, `limit` intervals from it.
fn window(
    interval: Interval,
    start: Option<u64>,
    end: Option<u64>,
    limit: u64,
    now: u64,
) -> (u64, u64) {
    let step = interval.ms();
    let align = |t: u64| t - t % step;
    let span = step.saturating_mul(limit);
    let up_to_now = align(now).saturating_add(step);
    match (start, end) {
        (Some(s), Some(e)) => (align(s), e),
        (Some(s), None) => (align(s), align(s).saturating_add(span).min(up_to_now)),
        (None, Some(e)) => (align(e.saturating_sub(span)), e),
        (None, None) => (up_to_now.saturating_sub(span), up_to_now),
    }
}

/// Fold trades into candles of `interval`, oldest first. The trades may come
/// in any order and may repeat (a trade id is counted once).
pub fn fold(trades: &[TradeInfo], interval: Interval) -> Vec<Candle> {
    let step = interval.ms();
    let mut sorted: Vec<&TradeInfo> = trades.iter().collect();
    sorted.sort_by(|a, b| a.ts_ms.cmp(&b.ts_ms).then_with(|| a.id.cmp(&b.id)));
    sorted.dedup_by(|a, b| a.id == b.id);
    let mut out: BTreeMap<u64, Candle> = BTreeMap::new();
    for t in sorted {
        let start = t.ts_ms - t.ts_ms % step;
        out.entry(start)
            .and_modify(|c| {
                c.high = c.high.max(t.price);
                c.low = c.low.min(t.price);
                c.close = t.price;
                c.volume += t.quantity;
                c.trades += 1;
            })
            .or_insert(Candle {
                t: start,
                open: t.price,
                high: t.price,
                low: t.price,
                close: t.price,
                volume: t.quantity,
                trades: 1,
            });
    }
    out.into_values().collect()
}

async fn candles(
    State(state): State<Arc<ApiState>>,
    Path(market): Path<String>,
    query: Result<Query<CandlesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Answer>, ApiError> {
    let Query(q) = query?;
    if !state.markets.contains(&market) {
        return Err(engine_error(EngineError::UnknownMarket(market), true));
    }
    let interval = match q.interval.as_deref() {
        None => Interval::M1,
        Some(s) => Interval::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "bad_interval",
                format!("interval {s:?} is not one of 1m, 5m, 15m, 1h, 1d"),
            )
        })?,
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit {limit} is not between 1 and {MAX_LIMIT}"),
        ));
    }
    if let (Some(s), Some(e)) = (q.start, q.end) {
        if s >= e {
            return Err(ApiError::bad_request(
                "bad_range",
                format!("start {s} is not before end {e}"),
            ));
        }
    }
    let (start, end) = window(interval, q.start, q.end, limit, now_ms());
    let page = crate::driver::Page {
        before: Some(end),
        after: start.checked_sub(1),
    };
    let trades = state
        .engine
        .trades(Some(market.clone()), page, MAX_TRADES + 1)
        .await
        .map_err(gone)?
        .map_err(|e| engine_error(e, true))?;
    if trades.len() > MAX_TRADES {
        return Err(ApiError::bad_request(
            "range_too_large",
            format!(
                "more than {MAX_TRADES} trades between {start} and {end}: ask for a shorter \
                 range (start, end) or a longer interval"
            ),
        ));
    }
    let mut candles = fold(&trades, interval);
    let limit = limit as usize;
    if candles.len() > limit {
        if q.start.is_some() {
            candles.truncate(limit);
        } else {
            candles.drain(..candles.len() - limit);
        }
    }
    Ok(Json(Answer {
        market,
        interval: interval.name(),
        candles,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(id: &str, ts: u64, price: &str, qty: &str) -> TradeInfo {
        TradeInfo {
            id: id.into(),
            market: "BTC-USD".into(),
            price: price.parse().unwrap(),
            quantity: qty.parse().unwrap(),
            ts_ms: ts,
            maker_order_id: "m".into(),
            taker_order_id: "t".into(),
            side: crate::market::Side::Buy,
        }
    }

    #[test]
    fn trades_fold_into_aligned_candles_oldest_first() {
        let m = 60_000;
        let trades = vec![
            trade("c", 3 * m + 10, "101", "1"),
            trade("a", m + 5, "100", "0.5"),
            trade("b", m + 50_000, "99", "0.25"),
            trade("a", m + 5, "100", "0.5"),
            trade("d", 3 * m + 10, "102", "2"),
        ];
        let c = fold(&trades, Interval::M1);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].t, m);
        assert_eq!(
            (c[0].open, c[0].high, c[0].low, c[0].close),
            (
                "100".parse().unwrap(),
                "100".parse().unwrap(),
                "99".parse().unwrap(),
                "99".parse().unwrap()
            )
        );
        assert_eq!(c[0].volume, "0.75".parse().unwrap());
        assert_eq!(c[0].trades, 2, "a repeated trade counts once");
        assert_eq!(c[1].t, 3 * m);
        assert_eq!(c[1].close, "102".parse().unwrap(), "ties go by id");
        let five = fold(&trades, Interval::M5);
        assert_eq!(five.len(), 1);
        assert_eq!(five[0].trades, 4);
        assert_eq!(five[0].high, "102".parse().unwrap());
    }

    #[test]
    fn the_window_defaults_to_the_last_intervals_up_to_now() {
        let h = Interval::H1.ms();
        let now = 10 * h + 123;
        assert_eq!(window(Interval::H1, None, None, 3, now), (8 * h, 11 * h));
        assert_eq!(
            window(Interval::H1, Some(2 * h + 5), None, 3, now),
            (2 * h, 5 * h)
        );
        assert_eq!(
            window(Interval::H1, Some(9 * h), None, 30, now),
            (9 * h, 11 * h),
            "never past the current interval"
        );
        assert_eq!(
            window(Interval::H1, None, Some(5 * h), 2, now),
            (3 * h, 5 * h)
        );
        assert_eq!(window(Interval::D1, None, None, 10_000, now).0, 0);
    }

    #[test]
    fn every_interval_name_parses_back() {
        for i in Interval::ALL {
            assert_eq!(Interval::parse(i.name()), Some(i));
        }
        assert_eq!(Interval::parse("2m"), None);
    }
}
