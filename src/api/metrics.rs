//! `GET /metrics`: OpenMetrics text of the node's registry —
//! libp2p's swarm and protocol metrics, gossipsub's, the network task's —
//! followed by the trading engine's: what it counted (orders, fills, takes,
//! gossip verdicts, syncs), the size of every book, this node's open
//! orders, and the open event streams.
//!
//! The engine lives in its own task and is read with a query, which a
//! registry collector (synchronous) cannot make; so its numbers are read
//! per scrape into a registry of their own, encoded after the node's, with
//! one `# EOF` at the end.
//!
//! The output is valid OpenMetrics 1.0 (a test parses it strictly). One
//! libp2p family is left out for that: gossipsub's `score_per_mesh`
//! histogram has negative buckets (peer scores go below zero) *and* a
//! `_sum`, which OpenMetrics forbids, and gossipsub offers no way to leave
//! it out. Each peer's score is in `GET /api/v1/peers` instead.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::engine_error::gone;
use super::events::Hub;
use super::{ApiCounters, ApiError, ApiState};
use crate::driver::EngineMetrics;
use crate::engine::Counters;

const CONTENT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(
    State(state): State<Arc<ApiState>>,
    hub: Option<Extension<Arc<Hub>>>,
) -> Result<Response, ApiError> {
    let snapshot = state.engine.metrics().await.map_err(gone)?;
    let sse_clients = hub.map_or(0, |Extension(h)| h.clients());
    let ours = engine_registry(&snapshot, sse_clients, &state.counters);
    let mut node = String::new();
    encode_registry(&mut node, &state.registry)
        .map_err(|e| ApiError::internal(format!("cannot encode the metrics: {e}")))?;
    let mut text = without_families(&node, INVALID_FAMILIES);
    encode_registry(&mut text, &ours)
        .and_then(|()| encode_eof(&mut text))
        .map_err(|e| ApiError::internal(format!("cannot encode the metrics: {e}")))?;
    Ok(([(CONTENT_TYPE, CONTENT)], text).into_response())
}

/// Families of the libp2p registry that are not valid OpenMetrics (see the
/// module's documentation), left out of `/metrics`.
const INVALID_FAMILIES: &[&str] = &["gossipsub_score_per_mesh"];

/// `text` (OpenMetrics lines) without the metadata and samples of the
/// families named in `drop`.
fn without_families(text: &str, drop: &[&str]) -> String {
    let of_family = |line: &str, family: &str| -> bool {
        let name = match line.strip_prefix("# ") {
            Some(meta) => meta.split(' ').nth(1).unwrap_or(""),
            None => line.split(['{', ' ']).next().unwrap_or(""),
        };
        name == family
            || name.strip_prefix(family).is_some_and(|rest| {
                ["_bucket", "_sum", "_count", "_created", "_total"].contains(&rest)
            })
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if !drop.iter().any(|f| of_family(line, f)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

type Labels = Vec<(&'static str, String)>;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: usize) {
    let g = Gauge::<i64>::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn family(
    registry: &mut Registry,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (Labels, u64)>,
) {
    let f = Family::<Labels, Gauge<i64>>::default();
    for (labels, v) in values {
        f.get_or_create(&labels)
            .set(i64::try_from(v).unwrap_or(i64::MAX));
    }
    registry.register(name, help, f);
}

/// Help text of every field of [`Counters`], by field name. Every field is
/// rendered whether or not it is listed here (a unit test checks that each
/// one is, and that nothing here names a field that does not exist);
/// `fills_maker` and `fills_taker` become one `fills` family by role.
const ENGINE_COUNTERS: &[(&str, &str)] = &[
    ("orders_placed", "Orders this node accepted"),
    (
        "orders_refused",
        "Orders refused (invalid, unknown market, storage failing); nothing changed",
    ),
    (
        "orders_rejected",
        "Orders ended rejected (post-only that would take, fill-or-kill the book cannot fill)",
    ),
    (
        "fills_maker",
        "Fills this node took part in since it started, by market and its role",
    ),
    (
        "fills_taker",
        "Fills this node took part in since it started, by market and its role",
    ),
    ("takes_sent", "Take requests sent to makers"),
    ("takes_refused", "Take requests makers refused"),
    (
        "takes_refused_as_maker",
        "Take requests this node refused as maker",
    ),
    (
        "takes_in_doubt",
        "Take requests that got no answer (resolved later with status requests)",
    ),
    (
        "takes_late",
        "Take requests this node refused as maker because they came past their deadline",
    ),
    (
        "doubts_settled_by_heartbeat",
        "Takes in doubt settled as not filled by their maker's heartbeat, relayed by any peer",
    ),
    ("gossip_sent", "Gossip messages published"),
    ("gossip_rejected", "Gossip messages rejected as invalid"),
    (
        "gossip_ignored",
        "Gossip messages ignored (stale or duplicate)",
    ),
    (
        "gossip_late",
        "Gossip that arrived too late to apply (ignored, not penalised)",
    ),
    ("sync_requests", "Sync requests sent"),
    ("sync_answers", "Sync requests answered"),
    ("sync_pages", "Sync pages received"),
    (
        "owner_syncs",
        "Syncs of one owner's orders after a digest mismatch",
    ),
    (
        "owner_limit_hits",
        "Remote orders left out of a replica because their owner reached engine.max_orders_per_owner",
    ),
    (
        "owners_limit_hits",
        "Orders of new owners left out because a market reached engine.max_owners",
    ),
    (
        "gossip_rate_limited",
        "Gossip messages dropped because their author exceeded engine.max_gossip_per_peer_per_sec",
    ),
    (
        "takes_rate_limited",
        "Take requests refused busy: engine.max_takes_per_peer_per_sec or engine.max_open_takes_per_peer",
    ),
    (
        "syncs_rate_limited",
        "Sync requests refused busy because the peer exceeded engine.max_syncs_per_peer_per_sec",
    ),
    ("fok_holds", "Fill-or-kill holds granted by makers to our orders"),
    (
        "fok_commits_refused",
        "Fill-or-kill commits a maker refused (its hold had run out)",
    ),
    (
        "fok_aborted",
        "Fill-or-kill orders given up after their holds (nothing filled)",
    ),
    (
        "records_refused_unsigned",
        "Records refused: a sync page carried them without their owner's signature",
    ),
    (
        "records_refused_bad_proof",
        "Records refused: their place in a signed batch does not lead to its root",
    ),
    (
        "records_refused_bad_signature",
        "Records refused: the batch signature is not their owner's",
    ),
    (
        "records_refused_no_key",
        "Records refused: their owner's peer id carries no public key",
    ),
    (
        "records_refused_inconsistent",
        "Records refused: an order and its fill that are not of one order",
    ),
    (
        "peers_banned",
        "Peers banned for a while for serving records that do not verify",
    ),
    (
        "old_wire_refused",
        "Messages refused because their sender speaks an older wire version (unsigned records)",
    ),
    (
        "encode_failures",
        "Messages of this node that could not be encoded and were not sent (a bug if ever above 0)",
    ),
];

/// The `records_refused` family, one counter per reason.
const RECORDS_REFUSED_HELP: &str = "Records a peer handed on that do not verify as their owner's, by reason (unsigned, bad_proof, bad_signature, no_key, inconsistent); the peer that served them is banned for a while";

/// Every field of the engine's counters with its value, by name.
fn counter_fields(c: &Counters) -> Vec<(String, u64)> {
    match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
            .collect(),
        // Counters is a struct of integers: it always serializes to a map.
        _ => Vec::new(),
    }
}

fn help_of(field: &str) -> &'static str {
    ENGINE_COUNTERS
        .iter()
        .find(|(f, _)| *f == field)
        .map_or("Engine counter", |(_, help)| help)
}

/// The engine's numbers as a registry (prefix `peerbook_`).
fn engine_registry(s: &EngineMetrics, sse_clients: usize, api: &ApiCounters) -> Registry {
    let mut r = Registry::with_prefix("peerbook");
    let fills = Family::<Labels, Counter<u64>>::default();
    let refused = Family::<Labels, Counter<u64>>::default();
    for (field, value) in counter_fields(&s.counters) {
        if field.starts_with("fills_") {
            // By market and role, from the markets below; the totals are
            // their sums.
            continue;
        }
        if let Some(reason) = field.strip_prefix("records_refused_") {
            refused
                .get_or_create(&vec![("reason", reason.to_string())])
                .inc_by(value);
            continue;
        }
        counter(&mut r, &field, help_of(&field), value);
    }
    for m in &s.markets {
        for (role, n) in [("maker", m.fills_maker), ("taker", m.fills_taker)] {
            fills
                .get_or_create(&vec![
                    ("market", m.name.clone()),
                    ("role", role.to_string()),
                ])
                .inc_by(n);
        }
    }
    r.register("fills", help_of("fills_maker"), fills);
    r.register("records_refused", RECORDS_REFUSED_HELP, refused);
    counter(
        &mut r,
        "api_body_too_large",
        "HTTP requests refused with 413: the body was over api.max_body_bytes",
        api.body_too_large.load(Ordering::Relaxed),
    );
    counter(
        &mut r,
        "api_event_streams_refused",
        "Event streams refused with 503: api.max_event_streams were open",
        api.event_streams_refused.load(Ordering::Relaxed),
    );
    counter(
        &mut r,
        "api_connections_refused",
        "HTTP connections refused with 503: api.max_connections were open",
        api.connections_refused.load(Ordering::Relaxed),
    );
    counter(
        &mut r,
        "api_connections_timed_out",
        "HTTP connections closed because nothing moved for api.idle_timeout_secs",
        api.connections_timed_out.load(Ordering::Relaxed),
    );
    counter(
        &mut r,
        "api_ws_refused",
        "WebSocket clients refused with 503: api.max_ws_clients were connected",
        api.ws_refused.load(Ordering::Relaxed),
    );
    counter(
        &mut r,
        "api_ws_resyncs",
        "Book channels of WebSocket clients resynced because the client fell behind",
        api.ws_resyncs.load(Ordering::Relaxed),
    );
    gauge(
        &mut r,
        "api_ws_clients",
        "WebSocket clients connected",
        usize::try_from(api.ws_clients.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
    );
    gauge(
        &mut r,
        "api_connections",
        "HTTP connections open",
        usize::try_from(api.connections.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
    );
    family(
        &mut r,
        "book_orders",
        "Open orders in the replicated book, per market",
        s.markets
            .iter()
            .map(|m| (vec![("market", m.name.clone())], m.orders as u64)),
    );
    family(
        &mut r,
        "own_open_orders",
        "This node's open orders, per market",
        s.markets
            .iter()
            .map(|m| (vec![("market", m.name.clone())], m.own_open as u64)),
    );
    family(
        &mut r,
        "book_synced",
        "1 once the market's book has been pulled from a peer",
        s.markets
            .iter()
            .map(|m| (vec![("market", m.name.clone())], u64::from(m.synced))),
    );
    let stale = s.owners.iter().filter(|o| o.stale).count();
    gauge(
        &mut r,
        "owners",
        "Owners (peers with orders) this node has heard of",
        s.owners.len(),
    );
    gauge(
        &mut r,
        "owners_stale",
        "Owners not heard from lately (their orders are not taken)",
        stale,
    );
    gauge(
        &mut r,
        "degraded",
        "1 while the node refuses orders because its storage fails",
        usize::from(s.degraded),
    );
    gauge(
        &mut r,
        "sse_clients",
        "Open event streams (GET /api/v1/events)",
        sse_clients,
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::MarketInfo;

    #[test]
    fn engine_numbers_render_as_prometheus_text_with_help_and_type() {
        let s = EngineMetrics {
            counters: Counters {
                orders_placed: 7,
                fills_maker: 2,
                fills_taker: 3,
                ..Counters::default()
            },
            markets: vec![MarketInfo {
                name: "BTC-USD".into(),
                tick: rust_decimal::Decimal::ONE,
                lot: rust_decimal::Decimal::ONE,
                topic: "t".into(),
                digest: "d".into(),
                orders: 4,
                own_open: 1,
                synced: true,
                fills_maker: 2,
                fills_taker: 3,
            }],
            owners: Vec::new(),
            degraded: false,
        };
        let mut text = String::new();
        let api = ApiCounters::default();
        api.body_too_large.store(5, Ordering::Relaxed);
        encode_registry(&mut text, &engine_registry(&s, 2, &api)).unwrap();
        for line in [
            "# HELP peerbook_orders_placed Orders this node accepted",
            "# TYPE peerbook_orders_placed counter",
            "peerbook_orders_placed_total 7",
            "peerbook_fills_total{market=\"BTC-USD\",role=\"maker\"} 2",
            "peerbook_fills_total{market=\"BTC-USD\",role=\"taker\"} 3",
            "# TYPE peerbook_book_orders gauge",
            "peerbook_book_orders{market=\"BTC-USD\"} 4",
            "peerbook_own_open_orders{market=\"BTC-USD\"} 1",
            "peerbook_sse_clients 2",
            "peerbook_api_body_too_large_total 5",
            "peerbook_api_event_streams_refused_total 0",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn a_dropped_family_loses_its_metadata_and_samples_and_nothing_else() {
        let text = "# HELP a_score Score.\n# TYPE a_score histogram\n\
                    a_score_sum{t=\"x\"} -3.0\na_score_count{t=\"x\"} 1\n\
                    a_score_bucket{le=\"-1.0\",t=\"x\"} 1\n\
                    # HELP a_scores Other.\n# TYPE a_scores gauge\na_scores 2\n";
        assert_eq!(
            without_families(text, &["a_score"]),
            "# HELP a_scores Other.\n# TYPE a_scores gauge\na_scores 2\n"
        );
    }

    #[test]
    fn every_engine_counter_has_help_and_is_rendered() {
        let fields: Vec<String> = counter_fields(&Counters::default())
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert!(fields.len() > 20, "{fields:?}");
        for f in &fields {
            assert!(
                ENGINE_COUNTERS.iter().any(|(name, _)| name == f),
                "Counters::{f} has no help text in ENGINE_COUNTERS"
            );
        }
        for (name, _) in ENGINE_COUNTERS {
            assert!(
                fields.iter().any(|f| f == name),
                "ENGINE_COUNTERS names {name}, which Counters does not have"
            );
        }
        // Each field a distinct value, so a field rendered under the wrong
        // name or not at all shows.
        let mut map = serde_json::Map::new();
        for (i, f) in fields.iter().enumerate() {
            map.insert(f.clone(), serde_json::json!(100 + i));
        }
        let counters: Counters = serde_json::from_value(map.into()).unwrap();
        let s = EngineMetrics {
            counters,
            markets: Vec::new(),
            owners: Vec::new(),
            degraded: false,
        };
        let mut text = String::new();
        encode_registry(&mut text, &engine_registry(&s, 0, &ApiCounters::default())).unwrap();
        for (i, f) in fields.iter().enumerate() {
            let line = match (f.strip_prefix("fills_"), f.strip_prefix("records_refused_")) {
                // Rendered by market (none here).
                (Some(_), _) => continue,
                (_, Some(reason)) => {
                    format!(
                        "peerbook_records_refused_total{{reason=\"{reason}\"}} {}",
                        100 + i
                    )
                }
                _ => format!("peerbook_{f}_total {}", 100 + i),
            };
            assert!(text.contains(&line), "no {line:?} in\n{text}");
        }
    }
}
