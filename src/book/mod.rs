//! The pure price-time-priority order book of one market (work in progress).
