//! The wall clock, read in one place.
//!
//! The engine has no clock of its own (it is handed the time with every
//! input), so something has to read the system clock for it: the driver
//! when it feeds the engine, the network when it stamps when a peer was last
//! seen, the API when it numbers its events, the demo when it picks a seed.
//! They all read it here, which keeps the modules that need the time free of
//! each other (the network does not reach into the driver for it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Milliseconds since the Unix epoch: the engine's clock (`engine::Millis`).
/// A clock set before 1970 reads 0 rather than failing.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The tokio instant at which the wall clock will read `at_ms`, for
/// sleeping until a time the engine asked for; a time already past is now.
pub fn instant_at(at_ms: u64) -> Instant {
    let now = now_ms();
    Instant::now() + Duration::from_millis(at_ms.saturating_sub(now))
}
