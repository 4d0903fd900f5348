//! `GET /api/v1/markets` and `GET /api/v1/ticker[?market=]`: the markets
//! this node trades, and each one's last price, best bid and ask and its
//! last 24 hours (open, high, low, volume, change).
//!
//! The 24 hours come from one-minute buckets per market, kept in memory:
//! filled from the durable trade tape when the API starts, then from every
//! trade the node learns of (the engine's trade events). 1,440 buckets a
//! market, whatever the trading rate.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::engine_error::{engine_error, gone};
use super::error::ApiError;
use super::ApiState;
use crate::clock::now_ms;
use crate::engine::{EngineError, Event, TradeInfo};

const MINUTE: u64 = 60_000;
const DAY: u64 = 24 * 60 * MINUTE;

/// A market as `/api/v1/markets` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketEntry {
    pub name: String,
    pub tick: Decimal,
    pub lot: Decimal,
    pub min_size: Decimal,
    pub status: String,
}

/// A market's ticker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticker {
    pub market: String,
    pub last: Option<Decimal>,
    pub bid: Option<Decimal>,
    pub ask: Option<Decimal>,
    pub open_24h: Option<Decimal>,
    pub high_24h: Option<Decimal>,
    pub low_24h: Option<Decimal>,
    pub volume_24h: Decimal,
    pub change_24h: Option<Decimal>,
    pub change_pct_24h: Option<Decimal>,
    pub trades_24h: u64,
    pub ts_ms: u64,
}

/// One minute of a market's trades.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    open: Decimal,
    high: Decimal,
    low: Decimal,
    close: Decimal,
    volume: Decimal,
    trades: u64,
    /// Time of the last trade in it, for "last".
    last_ts: u64,
}

/// The last 24 hours of every market, by minute.
pub struct Tickers {
    markets: Mutex<HashMap<String, BTreeMap<u64, Bucket>>>,
    /// A ticker that new trades just changed, with its best bid and ask,
    /// for the WebSocket's ticker channels (which must show those trades).
    /// Made once for every client: a busy market's trades each made one
    /// book query per client that followed it.
    changed: tokio::sync::broadcast::Sender<Arc<Ticker>>,
}

impl Default for Tickers {
    fn default() -> Tickers {
        Tickers {
            markets: Mutex::default(),
            changed: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

impl Tickers {
    /// Tickers as trades change them.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Ticker>> {
        self.changed.subscribe()
    }

    /// Count one trade (once: the tape and the events may both bring it;
    /// a trade is only counted if it is newer than what its minute has,
    /// or its minute is new).
    pub fn add(&self, t: &TradeInfo) {
        let now = now_ms();
        if t.ts_ms + DAY < now {
            return;
        }
        let Ok(mut m) = self.markets.lock() else {
            return;
        };
        let buckets = m.entry(t.market.clone()).or_default();
        let minute = t.ts_ms - t.ts_ms % MINUTE;
        match buckets.get_mut(&minute) {
            Some(b) => {
                b.high = b.high.max(t.price);
                b.low = b.low.min(t.price);
                if t.ts_ms >= b.last_ts {
                    b.close = t.price;
                    b.last_ts = t.ts_ms;
                }
                b.volume += t.quantity;
                b.trades += 1;
            }
            None => {
                buckets.insert(
                    minute,
                    Bucket {
                        open: t.price,
                        high: t.price,
                        low: t.price,
                        close: t.price,
                        volume: t.quantity,
                        trades: 1,
                        last_ts: t.ts_ms,
                    },
                );
            }
        }
        let horizon = now.saturating_sub(DAY);
        while buckets
            .first_key_value()
            .is_some_and(|(k, _)| *k + MINUTE <= horizon)
        {
            buckets.pop_first();
        }
    }

    /// The 24 h figures of `market` (best bid and ask filled by the caller).
    pub fn ticker(&self, market: &str) -> Ticker {
        let now = now_ms();
        let horizon = now.saturating_sub(DAY);
        let mut t = Ticker {
            market: market.to_string(),
            last: None,
            bid: None,
            ask: None,
            open_24h: None,
            high_24h: None,
            low_24h: None,
            volume_24h: Decimal::ZERO,
            change_24h: None,
            change_pct_24h: None,
            trades_24h: 0,
            ts_ms: now,
        };
        let Ok(m) = self.markets.lock() else { return t };
        let Some(buckets) = m.get(market) else {
            return t;
        };
        for (_, b) in buckets.range(horizon - horizon % MINUTE..) {
            t.open_24h.get_or_insert(b.open);
            t.high_24h = Some(t.high_24h.map_or(b.high, |h| h.max(b.high)));
            t.low_24h = Some(t.low_24h.map_or(b.low, |l| l.min(b.low)));
            t.volume_24h += b.volume;
            t.trades_24h += b.trades;
            t.last = Some(b.close);
        }
        if let (Some(open), Some(last)) = (t.open_24h, t.last) {
            t.change_24h = Some(last - open);
            if !open.is_zero() {
                t.change_pct_24h = Some(((last - open) / open * Decimal::from(100)).round_dp(2));
            }
        }
        t
    }
}

/// Keep the tickers current from the engine's events, after filling them
/// from the tape.
pub fn start(state: Arc<ApiState>) {
    let mut events = state.engine.subscribe();
    tokio::spawn(async move {
        let since = now_ms().saturating_sub(DAY);
        let names = state.markets.clone();
        let read = state
            .engine
            .read_store(move |s| {
                let mut all = Vec::new();
                for m in &names {
                    all.extend(s.tape_range(m, since, u64::MAX)?);
                }
                Ok(all)
            })
            .await;
        // Trades that came as events while the tape was read may be on it
        // too: each is counted once.
        let mut on_tape = std::collections::HashSet::new();
        match read {
            Ok(trades) => {
                for t in &trades {
                    state.tickers.add(t);
                    on_tape.insert(t.id.clone());
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the trade tape for the tickers"),
        }
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        loop {
            // Count every trade that waits, then make each changed market's
            // ticker once.
            let mut changed = std::collections::BTreeSet::new();
            let mut next = events.recv().await.map_err(|e| match e {
                RecvError::Closed => TryRecvError::Closed,
                RecvError::Lagged(n) => TryRecvError::Lagged(n),
            });
            loop {
                match next {
                    Ok(Event::Trade(t)) => {
                        if on_tape.is_empty() || !on_tape.remove(&t.id) {
                            state.tickers.add(&t);
                            changed.insert(t.market.clone());
                        }
                    }
                    Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                    Err(TryRecvError::Closed) => return,
                    Err(TryRecvError::Empty) => {
                        // Caught up with what waited: the overlap is over.
                        on_tape = std::collections::HashSet::new();
                        break;
                    }
                }
                next = events.try_recv();
            }
            if state.tickers.changed.receiver_count() == 0 {
                continue;
            }
            for market in changed {
                match ticker_of(&state, &market).await {
                    Ok(t) => {
                        let _ = state.tickers.changed.send(Arc::new(t));
                    }
                    Err(e) => {
                        tracing::debug!(%market, error = %e.message, "no ticker for the WebSocket")
                    }
                }
            }
        }
    });
}

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/markets", get(markets))
        .route("/api/v1/ticker", get(ticker))
}

async fn markets(State(state): State<Arc<ApiState>>) -> Json<Vec<MarketEntry>> {
    Json(
        state
            .engine
            .market_specs()
            .iter()
            .map(|m| MarketEntry {
                name: m.name.clone(),
                tick: m.tick,
                lot: m.lot,
                min_size: m.lot,
                status: "open".into(),
            })
            .collect(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TickerQuery {
    market: Option<String>,
}

/// A market's ticker with its best bid and ask now.
pub async fn ticker_of(state: &ApiState, market: &str) -> Result<Ticker, ApiError> {
    let book = state
        .engine
        .book(market.to_string(), 1)
        .await
        .map_err(gone)?
        .map_err(|e| engine_error(e, true))?;
    let mut t = state.tickers.ticker(market);
    t.bid = book.bids.first().map(|(p, _)| *p);
    t.ask = book.asks.first().map(|(p, _)| *p);
    Ok(t)
}

async fn ticker(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<TickerQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let Query(q) = query?;
    match q.market {
        Some(m) => {
            if !state.markets.contains(&m) {
                return Err(engine_error(EngineError::UnknownMarket(m), true));
            }
            Ok(Json(ticker_of(&state, &m).await?).into_response())
        }
        None => {
            let mut all = Vec::new();
            for m in &state.markets {
                all.push(ticker_of(&state, m).await?);
            }
            Ok(Json(all).into_response())
        }
    }
}
