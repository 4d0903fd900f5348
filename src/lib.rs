//! peerbook: a peer-to-peer exchange node.
//!
//! Every host runs one node. Nodes find each other over libp2p, keep a replica
//! of the order book of every market, and trade with maker-authoritative fills:
//! only the node that owns a resting order may fill it, so no order is ever
//! filled twice. See `docs/ARCHITECTURE.md` for the whole picture.
//!
//! # The modules
//!
//! - [`cli`]: the `peerbook` command line, one file per command; `node` runs
//!   a node, the others are clients of a node's API.
//! - [`node`]: the node runtime, what `peerbook node` starts and stops, in
//!   order.
//! - [`api`]: the HTTP API (axum), the event stream, `/metrics` and the web
//!   page; it reaches the engine only through the driver's handle.
//! - [`driver`]: the one task that owns the engine: it feeds it time,
//!   network events and API commands, and carries out what it asks (network,
//!   store writer thread with group commit, replies, events).
//! - [`engine`]: the trading protocol as a sans-IO state machine: no
//!   sockets, tasks, clocks or disk inside, so it can be simulated.
//! - [`book`]: the pure price-time book of one market, the engine's index.
//! - [`net`]: the libp2p swarm in its own task, which nothing else touches;
//!   it moves bytes and speaks the engine's vocabulary at the seam.
//! - [`store`]: the redb database: own orders, fills, takes in doubt, peers.
//! - [`wire`]: every message nodes exchange, and its one codec (CBOR).
//! - [`market`]: markets, their price and quantity grids, and the integer
//!   `Price`, `Qty` and `Side` everything inside works in.
//! - [`net_ids`]: the id of a gossip message, shared by the network and the
//!   simulator.
//! - [`config`]: the configuration, layered from defaults, file, environment
//!   and flags.
//! - [`clock`]: the wall clock, read here for the engine and everyone else.
//! - [`error`]: errors put into words once, for `main` and the network.
//! - [`shutdown`]: graceful shutdown as a value every task watches.
//!
//! # Layers
//!
//! ```text
//! cli, api ──> driver ──> engine ──> book, wire, market
//!                 │
//!                 ├─────> net    (an edge: the sockets)
//!                 └─────> store  (an edge: the disk)
//! ```
//!
//! The engine is pure: it calls nothing above it and does no I/O. `net` and
//! `store` are the edges where bytes meet sockets and disk; they know the
//! engine only as the vocabulary they carry (network events, durable
//! records). Besides the driver, the API asks the network's handle for its
//! peers and status, and the network keeps its peer list in the store;
//! `node` wires them all together. `clock`, `error` and `shutdown` depend on
//! nothing of ours; `config` gathers every layer's settings in one place.
//!
//! The `testkit` feature adds `engine::sim` (many engines over a seeded
//! simulated network), `engine::fuzz` and `net::fuzz` (the fuzzing entry
//! points), for the tests, benchmarks and the fuzz crate.

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
