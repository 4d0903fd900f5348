//! Tunables of the trading protocol, read from the `[engine]` section of the
//! config file (and `PEERBOOK_ENGINE_*` variables). Every field has a default
//! that suits a LAN or a small cluster; `config/peerbook.toml` documents them.

use serde::{Deserialize, Serialize};

/// Timing and size limits of the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// How often the node publishes its heartbeat (open orders and their
    /// digest) on every market, in milliseconds.
    pub heartbeat_ms: u64,
    /// An owner not heard from for this long is stale: its orders are shown
    /// as such and never taken, until it is heard from again.
    pub stale_after_ms: u64,
    /// Gossip is flushed at least this often; orders, cancels and fills made
    /// in between share one signed message.
    pub flush_ms: u64,
    /// At most this many items go in one gossip message.
    pub max_batch_items: usize,
    /// At most this many orders go in one sync answer page.
    pub sync_page_orders: usize,
    /// At most this many resting orders per owner and market are kept.
    pub max_orders_per_owner: usize,
    /// A created time further than this from the local clock is refused.
    pub max_clock_skew_ms: u64,
    /// How many recent fills per market are kept in memory (for `/trades`
    /// and for answering sync).
    pub recent_fills: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            heartbeat_ms: 1_000,
            stale_after_ms: 10_000,
            flush_ms: 5,
            max_batch_items: 256,
            sync_page_orders: 4_096,
            max_orders_per_owner: 200_000,
            max_clock_skew_ms: 60_000,
            recent_fills: 10_000,
        }
    }
}
