//! Keeping the database to what is live and recent: what the store writer
//! prunes, how often, and what it reports.
//!
//! The writer thread runs a pruning step (a few thousand rows, one small
//! transaction) whenever it has no write waiting and a pass is due, so
//! pruning never stands between a write and its commit; after each pass it
//! reads the database's sizes for `/metrics` and `/api/v1/status`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::store::{Retention, StoreStats};

/// What the writer needs to keep the store bounded.
#[derive(Clone, Debug)]
pub struct Upkeep {
    pub me: PeerId,
    pub retention: Retention,
    /// How often a pruning pass starts.
    pub every: Duration,
    /// Rows removed per step at most.
    pub chunk: usize,
    pub metrics: StoreMetrics,
}

type Labels = Vec<(&'static str, &'static str)>;

/// The store's numbers: sizes and rows (read after each pruning pass),
/// what pruning removed and how long it took.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    pub file_bytes: Gauge,
    pub stored_bytes: Gauge,
    pub rows: Family<Labels, Gauge>,
    pub pruned: Family<Labels, Counter>,
    pub prune_runs: Counter,
    pub prune_seconds: Histogram,
    /// The last sizes read, for the status page.
    pub last: Arc<Mutex<StoreStats>>,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            file_bytes: Gauge::default(),
            stored_bytes: Gauge::default(),
            rows: Family::default(),
            pruned: Family::default(),
            prune_runs: Counter::default(),
            prune_seconds: Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
            last: Arc::default(),
        }
    }
}

impl StoreMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("peerbook_store");
        r.register_with_unit(
            "file",
            "Size of the database file (freed pages inside it are reused)",
            Unit::Bytes,
            self.file_bytes.clone(),
        );
        r.register_with_unit(
            "stored",
            "Bytes of data the database holds",
            Unit::Bytes,
            self.stored_bytes.clone(),
        );
        r.register(
            "rows",
            "Rows the database holds, by kind",
            self.rows.clone(),
        );
        r.register(
            "pruned",
            "Rows removed because they were past the retention, by kind",
            self.pruned.clone(),
        );
        r.register("prune_runs", "Pruning passes run", self.prune_runs.clone());
        r.register_with_unit(
            "prune_duration",
            "How long one pruning pass took (every step of it)",
            Unit::Seconds,
            self.prune_seconds.clone(),
        );
    }

    /// Record the sizes read after a pass.
    pub fn sizes(&self, s: &StoreStats) {
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.file_bytes.set(g(s.file_bytes));
        self.stored_bytes.set(g(s.stored_bytes));
        for (kind, v) in [
            ("live_orders", s.live_orders),
            ("done_orders", s.done_orders),
            ("trades", s.trades),
            ("tape", s.tape),
            ("take_intents", s.intents),
        ] {
            self.rows.get_or_create(&vec![("kind", kind)]).set(g(v));
        }
        if let Ok(mut last) = self.last.lock() {
            *last = s.clone();
        }
    }
}
