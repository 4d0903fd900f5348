//! The trading protocol as a sans-IO state machine (work in progress).

mod config;

pub use config::EngineConfig;
