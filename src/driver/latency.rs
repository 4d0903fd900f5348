//! The latency histograms the driver keeps: how long replication, takes
//! and group commits take, as this node sees them.
//!
//! The engine has no clock, so it only hands over the delays it saw; the
//! driver and the store writer observe them here, and the node registers
//! the histograms in its metrics registry for `/metrics`.

use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds of the latency histograms' buckets, in seconds: fine
/// where the goals are (milliseconds), coarse beyond.
const LATENCY_BUCKETS: [f64; 22] = [
    0.000_5, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.010, 0.012, 0.015, 0.020, 0.025,
    0.030, 0.040, 0.050, 0.075, 0.100, 0.250, 0.500, 1.0, 5.0,
];

/// How long the network takes, as this node sees it: the histograms behind
/// `peerbook_replication_delay_seconds` and
/// `peerbook_take_round_trip_seconds` in `/metrics`.
#[derive(Clone)]
pub struct Latency {
    /// From an order's creation on its owner's node to its arrival in this
    /// node's replica by gossip (wall clocks, millisecond stamps).
    pub replication: Histogram,
    /// From sending a take request to its answer (monotonic clock).
    pub take_round_trip: Histogram,
    /// How long one group commit of the store takes (writes and fsync).
    pub store_commit: Histogram,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            replication: Histogram::new(LATENCY_BUCKETS),
            take_round_trip: Histogram::new(LATENCY_BUCKETS),
            store_commit: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl Latency {
    /// Add the histograms to the node's metrics registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "peerbook_replication_delay",
            "From an order's creation on its owner's node to its arrival in this node's replica by gossip",
            Unit::Seconds,
            self.replication.clone(),
        );
        registry.register_with_unit(
            "peerbook_take_round_trip",
            "From sending a take request to a maker to its answer",
            Unit::Seconds,
            self.take_round_trip.clone(),
        );
        registry.register_with_unit(
            "peerbook_store_commit",
            "How long one group commit of the database takes, fsync included",
            Unit::Seconds,
            self.store_commit.clone(),
        );
    }
}
