//! `GET /api/v1/status`: who this node is and how it is doing.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::ApiState;
use crate::engine::{MarketInfo, OwnerInfo};

/// The node's status as the API reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub peer_id: String,
    /// Listen addresses with `/p2p/<peer id>`: what to give others to dial.
    pub listen_addrs: Vec<String>,
    /// Addresses announced to peers besides the listen addresses (`external`
    /// in the config, or confirmed by peers), with `/p2p/<peer id>`.
    #[serde(default)]
    pub external_addrs: Vec<String>,
    pub uptime_secs: u64,
    /// Connected peers.
    pub peer_count: usize,
    /// Enabled markets.
    pub markets: Vec<String>,
    /// Each market's replicated book: digest (equal on converged nodes),
    /// order counts, whether it has been pulled from a peer.
    pub books: Vec<MarketInfo>,
    /// Owners (peers with orders) this node has heard of.
    pub owners: Vec<OwnerInfo>,
    /// Why the node refuses new orders, if it does (storage failure).
    pub degraded: Option<String>,
    pub version: String,
    /// The database: its size and what it holds, and the retention in force.
    #[serde(default)]
    pub store: StoreInfo,
    /// Whether peers elsewhere can reach this node, and through which relays.
    #[serde(default)]
    pub nat: NatInfo,
}

/// Reachability as the status shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NatInfo {
    /// "public", "private" or "unknown" (not tested yet).
    pub reachability: String,
    /// Peer ids of the relays holding a reservation for this node.
    pub relays: Vec<String>,
    /// Addresses announced to peers besides the listen addresses (confirmed
    /// reachable, configured, or circuits through the relays).
    pub external_addrs: Vec<String>,
}

/// The store as the status shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoreInfo {
    pub file_bytes: u64,
    pub stored_bytes: u64,
    pub live_orders: u64,
    pub done_orders: u64,
    pub trades: u64,
    pub tape: u64,
    /// Done orders, their fills and the trade tape are kept this long...
    pub retention_secs: u64,
    /// ...or until the stored data passes this.
    pub max_bytes: u64,
}

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/api/v1/status", get(status))
}

async fn status(State(state): State<Arc<ApiState>>) -> Result<Json<Status>, super::ApiError> {
    let net = state.net.status().await;
    let engine = state
        .engine
        .status()
        .await
        .map_err(super::engine_error::gone)?;
    let nat = NatInfo {
        reachability: net.reachability.to_string(),
        relays: net.relays.iter().map(ToString::to_string).collect(),
        external_addrs: net.external_addrs.iter().map(ToString::to_string).collect(),
    };
    let listen_addrs = net
        .listen_addrs
        .into_iter()
        .map(|a| a.clone().with_p2p(net.peer_id).unwrap_or(a).to_string())
        .collect();
    let external_addrs = net
        .external_addrs
        .into_iter()
        .map(|a| a.clone().with_p2p(net.peer_id).unwrap_or(a).to_string())
        .collect();
    Ok(Json(Status {
        peer_id: net.peer_id.to_string(),
        listen_addrs,
        external_addrs,
        uptime_secs: state.started.elapsed().as_secs(),
        peer_count: net.connected_peers,
        markets: state.markets.clone(),
        books: engine.markets,
        owners: engine.owners,
        degraded: engine.degraded,
        version: env!("CARGO_PKG_VERSION").to_string(),
        store: {
            let st = state.engine.store_status();
            StoreInfo {
                file_bytes: st.stats.file_bytes,
                stored_bytes: st.stats.stored_bytes,
                live_orders: st.stats.live_orders,
                done_orders: st.stats.done_orders,
                trades: st.stats.trades,
                tape: st.stats.tape,
                retention_secs: st.retention_secs,
                max_bytes: st.max_bytes,
            }
        },
        nat,
    }))
}
