//! The node runtime: everything `peerbook node` starts, in order, and stops,
//! in reverse order.
//!
//! config → data dir → identity → store → API listener bound → network task
//! → engine task → API server → wait for SIGINT/SIGTERM or a task
//! failing → stop the API → stop the engine → stop the network, which
//! saves the peer store.
//!
//! Everything that can fail because of the operator's setup (a busy port, an
//! unwritable data dir, a corrupt key) fails here, before the node talks to
//! anyone, with an error that names the thing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use libp2p::Multiaddr;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::api::{self, ApiState};
use crate::config::{ConfigError, Loaded};
use crate::driver::{self, EngineParts, Latency, LoadError};
use crate::net::identity::{self, IdentityError};
use crate::net::{self, NetConfig, NetError, NetHandle};
use crate::shutdown::{self, Shutdown};
use crate::store::{Store, StoreError};

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the data dir {path} is not usable: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error(
        "another node is using the data dir {path}: its database is open and locked; \
         give each node on this host its own --data-dir"
    )]
    DataDirInUse { path: PathBuf },
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot listen for the API on {addr}: {source}")]
    ApiBind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the API server failed: {0}")]
    ApiServe(#[source] std::io::Error),
    #[error("cannot watch for shutdown signals: {0}")]
    Signal(#[source] std::io::Error),
}

impl NodeError {
    /// Exit status: 2 for a bad configuration (like a bad flag) or one that
    /// clashes with another node on this host (a port or data dir in use),
    /// 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            NodeError::Config(_)
            | NodeError::DataDirInUse { .. }
            | NodeError::ApiBind { .. }
            | NodeError::Net(NetError::Listen { .. }) => 2,
            _ => 1,
        }
    }
}

/// Create the data dir if needed and check that it is writable.
pub fn prepare_data_dir(path: &Path) -> Result<(), NodeError> {
    let fail = |reason: String| NodeError::DataDir {
        path: path.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(path).map_err(|e| fail(format!("cannot create it: {e}")))?;
    let probe = path.join(format!(".write-test.{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| fail(format!("cannot write in it: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Run a node until SIGINT or SIGTERM.
pub async fn run(loaded: Loaded) -> Result<(), NodeError> {
    let started = Instant::now();
    loaded.check_api_exposure()?;
    let config = &loaded.config;

    let data_dir = loaded.data_dir()?;
    prepare_data_dir(&data_dir)?;
    let (keypair, created) = identity::load_or_create(&data_dir)?;
    if created {
        tracing::info!(path = %data_dir.join(identity::KEY_FILE).display(), "created a new identity");
    }
    let store = Store::open(&data_dir).map_err(|e| match e {
        StoreError::Open {
            source: redb::DatabaseError::DatabaseAlreadyOpen,
            ..
        } => NodeError::DataDirInUse {
            path: data_dir.clone(),
        },
        other => NodeError::Store(other),
    })?;

    // Bind the API before the network starts, so a busy port stops the node
    // before it has talked to anyone.
    let api_listener = TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| NodeError::ApiBind {
            addr: config.api.listen,
            source,
        })?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|source| NodeError::ApiBind {
            addr: config.api.listen,
            source,
        })?;

    let mut registry = Registry::default();
    let net_config = NetConfig {
        listen: config.node.listen.clone(),
        bootstrap: config.node.bootstrap.clone(),
        external: config.node.external.clone(),
        mdns: config.node.mdns,
        topics: loaded.markets.iter().map(|m| m.topic()).collect(),
        tuning: config.net.clone(),
        nat: config.nat.clone(),
    };
    let (net, events, net_task) =
        net::spawn(net_config, keypair.clone(), store.clone(), &mut registry)?;
    let peer_id = net.local_peer_id();
    let latency = Latency::default();
    latency.register(&mut registry);
    let store_metrics = driver::StoreMetrics::default();
    store_metrics.register(&mut registry);
    let upkeep = driver::Upkeep {
        me: peer_id,
        retention: crate::store::Retention {
            max_age_ms: config.store.retention_secs.saturating_mul(1000),
            max_bytes: config.store.max_mb.saturating_mul(1 << 20),
        },
        every: std::time::Duration::from_secs(config.store.prune_interval_secs),
        chunk: 2_000,
        metrics: store_metrics,
    };
    let market_names: Vec<String> = loaded.markets.iter().map(|m| m.name.clone()).collect();

    println!("peerbook {}", env!("CARGO_PKG_VERSION"));
    println!("peer id:   {peer_id}");
    println!("data dir:  {}", data_dir.display());
    println!("api:       http://{api_addr}");
    println!("markets:   {}", market_names.join(", "));
    if config.node.mdns {
        println!("mdns:      on");
    } else {
        println!("mdns:      off");
    }

    let shutdown = Shutdown::new();
    let printer = tokio::spawn(print_listen_addrs(net.clone(), shutdown.clone()));

    let (engine, engine_task) = driver::spawn(
        EngineParts {
            key: keypair,
            config: crate::engine::EngineConfig {
                wire: config.net.wire_limits(),
                ..config.engine.clone()
            },
            markets: loaded.markets.clone(),
            upkeep,
        },
        store.clone(),
        net.clone(),
        events,
        latency,
        shutdown.clone(),
    )?;

    let oplog = tokio::spawn(api::oplog::run(engine.clone(), peer_id, shutdown.clone()));
    let state = Arc::new(ApiState {
        net: net.clone(),
        engine,
        started,
        markets: market_names,
        registry: Arc::new(registry),
        token: config.api.token.clone(),
        limits: api::ApiLimits::from(&config.api),
        counters: Arc::default(),
        tickers: api::ticker::Tickers::default(),
    });
    let api_listener = api::BoundedListener::new(
        api_listener,
        state.limits.max_connections,
        state.limits.idle_timeout,
        state.counters.clone(),
    );
    let mut api_task = tokio::spawn(api::serve(
        api_listener,
        api::router(state),
        shutdown.clone(),
    ));

    let mut net_task = net_task;
    let mut net_done = false;
    let outcome = tokio::select! {
        signal = shutdown::signal() => match signal {
            Ok(name) => {
                tracing::info!(signal = name, "{name} received; shutting down");
                Ok(())
            }
            Err(e) => Err(NodeError::Signal(e)),
        },
        result = &mut api_task => match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NodeError::ApiServe(e)),
            Err(e) => Err(NodeError::ApiServe(std::io::Error::other(e))),
        },
        _ = &mut net_task => {
            net_done = true;
            Err(NodeError::Net(NetError::Stopped))
        }
    };

    // Stop in reverse order: no new API requests, then the engine, then the
    // network (which saves the peer store on its way out).
    shutdown.trigger();
    if !api_task.is_finished() {
        let _ = api_task.await;
    }
    let _ = engine_task.await;
    net.shutdown().await;
    if !net_done {
        let _ = net_task.await;
    }
    let _ = printer.await;
    let _ = oplog.await;
    tracing::info!("stopped");
    outcome
}

/// Print each listen address once, as it becomes known.
async fn print_listen_addrs(net: NetHandle, shutdown: Shutdown) {
    let peer_id = net.local_peer_id();
    let mut watch = net.listen_addrs();
    let mut printed: Vec<Multiaddr> = Vec::new();
    loop {
        let current = watch.borrow_and_update().clone();
        for addr in current {
            if !printed.contains(&addr) {
                println!(
                    "listening: {}",
                    addr.clone().with_p2p(peer_id).unwrap_or(addr.clone())
                );
                printed.push(addr);
            }
        }
        tokio::select! {
            changed = watch.changed() => if changed.is_err() { return },
            _ = shutdown.wait() => return,
        }
    }
}
