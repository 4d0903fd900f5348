//! peerbook: a peer-to-peer exchange node.
//!
//! Every host runs one node. Nodes find each other over libp2p, keep a replica
//! of the order book of every market, and trade with maker-authoritative fills:
//! only the node that owns a resting order may fill it, so no order is ever
//! filled twice. See `docs/ARCHITECTURE.md` for the whole picture.

pub mod api;
pub mod book;
pub mod cli;
pub mod clock;
pub mod config;
pub mod driver;
pub mod engine;
pub mod error;
pub mod market;
pub mod net;
pub mod net_ids;
pub mod node;
pub mod shutdown;
pub mod store;
pub mod wire;
