//! `GET /api/v1/peers`: the peers this node is connected to or knows of.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::ApiState;

/// One peer as the API reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Peer {
    pub peer_id: String,
    pub addresses: Vec<String>,
    pub connected: bool,
    /// Its gossipsub score, when there is one (negative: misbehaving).
    pub score: Option<f64>,
    /// Its open connections, each direct or through a relay.
    #[serde(default)]
    pub connections: Vec<PeerConnection>,
}

/// One open connection to a peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerConnection {
    pub address: String,
    /// Through a relay (`/p2p-circuit`), otherwise direct.
    pub relayed: bool,
}

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/api/v1/peers", get(peers))
}

async fn peers(State(state): State<Arc<ApiState>>) -> Json<Vec<Peer>> {
    let peers = state
        .net
        .peers()
        .await
        .into_iter()
        .map(|p| Peer {
            peer_id: p.peer_id.to_string(),
            addresses: p.addresses.iter().map(ToString::to_string).collect(),
            connected: p.connected,
            score: p.score.filter(|s| s.is_finite()),
            connections: p
                .connections
                .iter()
                .map(|c| PeerConnection {
                    address: c.address.to_string(),
                    relayed: c.relayed,
                })
                .collect(),
        })
        .collect();
    Json(peers)
}
