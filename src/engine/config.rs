//! Tunables of the trading protocol, read from the `[engine]` section of the
//! config file (and `PEERBOOK_ENGINE_*` variables). Every field has a default
//! that suits a LAN or a small cluster; `config/peerbook.toml` documents them.

use serde::{Deserialize, Serialize};

use crate::wire::WireLimits;

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
    /// How many done own orders (with their fills) are kept in memory, for
    /// fast answers and client id idempotency; older ones are in the store.
    pub recent_orders: usize,
    /// Gossip messages accepted per author and second (a burst of as many
    /// is allowed); beyond, messages are dropped unforwarded and counted.
    pub max_gossip_per_peer_per_sec: u32,
    /// Take requests served per peer and second; beyond, takes are refused
    /// as busy.
    pub max_takes_per_peer_per_sec: u32,
    /// Fills per peer waiting to be made durable; beyond, takes are refused
    /// as busy.
    pub max_open_takes_per_peer: u32,
    /// Sync requests answered per peer and second; beyond, refused as busy.
    pub max_syncs_per_peer_per_sec: u32,
    /// Owners (authors of orders) kept per market; orders of new owners
    /// beyond this are not kept.
    pub max_owners: usize,
    /// How long a maker sets quantity aside for a fill-or-kill taker that
    /// has not committed yet.
    pub fok_hold_ms: u64,
    /// A fill or commit request is good for this long after it leaves, on
    /// the maker's clock as its gossip tells it (ms): the maker refuses it
    /// as late from then on, and a take of ours in doubt is settled as not
    /// filled once a heartbeat of its maker says it served everything up to
    /// past the deadline. At least `net.take_timeout_ms`, plus some slack
    /// for how well the maker's clock is known (gossip delays).
    pub take_deadline_ms: u64,
    /// The wire's size limits: not an `[engine]` key, they come from the
    /// `[net]` section so the engine decodes exactly what the network lets
    /// through.
    #[serde(skip)]
    pub wire: WireLimits,
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
            recent_orders: 10_000,
            max_gossip_per_peer_per_sec: 500,
            max_takes_per_peer_per_sec: 2_000,
            max_open_takes_per_peer: 256,
            max_syncs_per_peer_per_sec: 50,
            max_owners: 10_000,
            fok_hold_ms: 3_000,
            take_deadline_ms: 5_000,
            wire: WireLimits::default(),
        }
    }
}

impl EngineConfig {
    /// The keys whose value is zero but must not be, for the config loader
    /// to refuse with their names.
    pub fn zero_fields(&self) -> Vec<&'static str> {
        let checks: [(&'static str, u64); 16] = [
            ("heartbeat_ms", self.heartbeat_ms),
            ("stale_after_ms", self.stale_after_ms),
            ("flush_ms", self.flush_ms),
            ("max_batch_items", self.max_batch_items as u64),
            ("sync_page_orders", self.sync_page_orders as u64),
            ("max_orders_per_owner", self.max_orders_per_owner as u64),
            ("max_clock_skew_ms", self.max_clock_skew_ms),
            ("recent_fills", self.recent_fills as u64),
            ("recent_orders", self.recent_orders as u64),
            (
                "max_gossip_per_peer_per_sec",
                self.max_gossip_per_peer_per_sec as u64,
            ),
            (
                "max_takes_per_peer_per_sec",
                self.max_takes_per_peer_per_sec as u64,
            ),
            (
                "max_open_takes_per_peer",
                self.max_open_takes_per_peer as u64,
            ),
            (
                "max_syncs_per_peer_per_sec",
                self.max_syncs_per_peer_per_sec as u64,
            ),
            ("max_owners", self.max_owners as u64),
            ("fok_hold_ms", self.fok_hold_ms),
            ("take_deadline_ms", self.take_deadline_ms),
        ];
        checks
            .into_iter()
            .filter(|(_, v)| *v == 0)
            .map(|(k, _)| k)
            .collect()
    }
}
