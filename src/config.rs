//! The node's configuration: one [`Config`] filled from defaults, then the
//! TOML file (`--config`), then `PEERBOOK_*` environment variables, then
//! command-line flags, each layer overriding the one before.
//!
//! Every layer is checked on its own before it is merged, so a bad value is
//! reported with the key it is for and where it came from (the file and line,
//! the environment variable, or the flag), and the process stops before
//! anything starts. `config/peerbook.toml` lists every key with its default.
//!
//! Environment variables: `PEERBOOK_<SECTION>_<KEY>` for every key of the
//! `[node]`, `[api]`, `[engine]` and `[net]` sections (e.g.
//! `PEERBOOK_NET_TARGET_PEERS`), `PEERBOOK_DATA_DIR`, and the short names
//! `PEERBOOK_LISTEN`, `PEERBOOK_BOOTSTRAP`, `PEERBOOK_API`,
//! `PEERBOOK_API_TOKEN`, `PEERBOOK_MDNS` and `PEERBOOK_MARKETS`. Lists are
//! comma separated. When a short and a long name are both set, the long one
//! wins. The `[[markets]]` definitions can only come from the file.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use toml::{Table, Value};

use crate::engine::EngineConfig;
use crate::market::MarketSpec;
use crate::net::nat::NatConfig;
use crate::net::NetTuning;

/// Prefix of every environment variable the config reads.
pub const ENV_PREFIX: &str = "PEERBOOK_";

/// Environment variables that are not config keys but are ours all the same.
const ENV_NOT_KEYS: &[&str] = &[
    "PEERBOOK_CONFIG",
    "PEERBOOK_LOG_FORMAT",
    "PEERBOOK_LOCAL_TIME",
];

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the identity key and the database live; the platform's data
    /// directory when not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    pub node: NodeConfig,
    pub api: ApiConfig,
    /// Every market the node knows; `node.markets` picks the enabled ones.
    pub markets: Vec<MarketConfig>,
    pub engine: EngineConfig,
    pub net: NetTuning,
    pub store: StoreConfig,
    /// Relaying for others, reservations, UPnP (see `net::nat`).
    pub nat: NatConfig,
}

/// The `[store]` section: how long the database keeps what is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Done orders, their trades and the trade tape are kept this many
    /// seconds (7 days by default).
    pub retention_secs: u64,
    /// Beyond this many MiB of stored data the oldest done records go,
    /// whatever their age (live orders are never removed).
    pub max_mb: u64,
    /// How often the node looks for records past the retention.
    pub prune_interval_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retention_secs: 7 * 86_400,
            max_mb: 2048,
            prune_interval_secs: 60,
        }
    }
}

impl StoreConfig {
    pub fn zero_fields(&self) -> Vec<&'static str> {
        [
            ("retention_secs", self.retention_secs),
            ("max_mb", self.max_mb),
            ("prune_interval_secs", self.prune_interval_secs),
        ]
        .into_iter()
        .filter(|(_, v)| *v == 0)
        .map(|(k, _)| k)
        .collect()
    }
}

/// The `[node]` section: where the node listens and how it finds peers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    #[serde(deserialize_with = "multiaddrs")]
    pub listen: Vec<Multiaddr>,
    #[serde(deserialize_with = "multiaddrs")]
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses to announce besides the listen addresses (behind NAT or in
    /// a container network).
    #[serde(deserialize_with = "multiaddrs")]
    pub external: Vec<Multiaddr>,
    pub mdns: bool,
    /// Names of the enabled markets; empty means all of `[[markets]]`.
    pub markets: Vec<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            // TCP and QUIC on the same port: hole punching often works
            // better over UDP.
            listen: vec![
                Multiaddr::empty()
                    .with(Protocol::Ip4([0, 0, 0, 0].into()))
                    .with(Protocol::Tcp(4001)),
                Multiaddr::empty()
                    .with(Protocol::Ip4([0, 0, 0, 0].into()))
                    .with(Protocol::Udp(4001))
                    .with(Protocol::QuicV1),
            ],
            bootstrap: Vec::new(),
            external: Vec::new(),
            mdns: true,
            markets: Vec::new(),
        }
    }
}

/// The `[api]` section: the HTTP API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Bearer token; required when `listen` is not a loopback address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The largest request body the API reads; a larger one gets 413
    /// before it is read whole.
    pub max_body_bytes: usize,
    /// Most event streams (`GET /api/v1/events`) open at once; one more
    /// gets 503.
    pub max_event_streams: usize,
    /// Most HTTP connections open at once; one more gets 503 and is closed.
    pub max_connections: usize,
    /// Seconds a connection may sit with nothing moving either way before
    /// it is closed.
    pub idle_timeout_secs: u64,
    /// Most WebSocket clients (`GET /api/v1/ws`) at once; one more gets 503.
    pub max_ws_clients: usize,
    /// Bytes a WebSocket client may fall behind (sent and not yet answered
    /// by its pong) before its books are resynced.
    pub ws_buffer_bytes: usize,
}

/// Default of `api.max_body_bytes`: room for a batch of a few thousand
/// orders (one is a few hundred bytes), small enough that a client cannot
/// make the node hold much.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Default of `api.max_event_streams`: each stream holds a task and its
/// buffers, so a page left open in many tabs must not exhaust the node.
pub const DEFAULT_MAX_EVENT_STREAMS: usize = 64;

/// Default of `api.max_connections`: far more than one owner's CLI, page
/// and scripts need, far fewer than the process's file descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Default of `api.idle_timeout_secs`: four times the event stream's
/// keep-alive, so only a connection nobody uses is closed.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            max_ws_clients: 64,
            ws_buffer_bytes: 4 << 20,
        }
    }
}

/// One `[[markets]]` entry; tick and lot are decimal strings ("0.01").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketConfig {
    pub name: String,
    #[serde(deserialize_with = "decimal_string")]
    pub tick: Decimal,
    #[serde(deserialize_with = "decimal_string")]
    pub lot: Decimal,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: None,
            nat: NatConfig::default(),
            node: NodeConfig::default(),
            api: ApiConfig::default(),
            markets: vec![
                MarketConfig {
                    name: "BTC-USD".into(),
                    tick: Decimal::new(1, 2),
                    lot: Decimal::new(1, 4),
                },
                MarketConfig {
                    name: "ETH-USD".into(),
                    tick: Decimal::new(1, 2),
                    lot: Decimal::new(1, 3),
                },
            ],
            engine: EngineConfig::default(),
            net: NetTuning::default(),
            store: StoreConfig::default(),
        }
    }
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File { path: PathBuf, line: Option<usize> },
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("the default"),
            Source::File {
                path,
                line: Some(line),
            } => write!(f, "config file {}, line {line}", path.display()),
            Source::File { path, line: None } => write!(f, "config file {}", path.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{key} (from {from}): {message}")]
    Invalid {
        key: String,
        from: Source,
        message: String,
    },
    #[error(
        "cannot determine a data directory for this user; set --data-dir or PEERBOOK_DATA_DIR"
    )]
    NoDataDir,
    #[error("internal config error: {0}")]
    Internal(String),
}

/// The command-line flags that override the config, as parsed by clap.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub api: Option<SocketAddr>,
    pub no_mdns: bool,
    pub markets: Vec<String>,
    pub no_upnp: bool,
}

/// A checked configuration.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    /// The enabled markets, checked.
    pub markets: Vec<MarketSpec>,
    /// Things worth telling the operator (e.g. an unknown `PEERBOOK_` variable).
    pub warnings: Vec<String>,
    provenance: HashMap<String, Source>,
}

impl Loaded {
    /// Where the value of `key` (dotted, e.g. `api.listen`) came from.
    pub fn source_of(&self, key: &str) -> Source {
        self.provenance.get(key).cloned().unwrap_or(Source::Default)
    }

    /// Refuse an API on a non-loopback address without a token: anyone who
    /// can reach it could trade with the node's identity.
    pub fn check_api_exposure(&self) -> Result<(), ConfigError> {
        let api = &self.config.api;
        if api.listen.ip().is_loopback() || api.token.is_some() {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            key: "api.listen".into(),
            from: self.source_of("api.listen"),
            message: format!(
                "the API would listen on {}, which is not a loopback address, and no token is \
                 set; refusing to start. Set a bearer token with PEERBOOK_API_TOKEN (or \
                 api.token in the config file), or listen on 127.0.0.1",
                api.listen
            ),
        })
    }

    /// The data dir: `data_dir` if set, else the platform's data directory.
    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        if let Some(dir) = &self.config.data_dir {
            return Ok(dir.clone());
        }
        directories::ProjectDirs::from("org", "peerbook", "peerbook")
            .map(|dirs| dirs.data_dir().to_path_buf())
            .ok_or(ConfigError::NoDataDir)
    }
}

/// Load and check the configuration: defaults, then the file named in
/// `flags`, then the `PEERBOOK_*` variables among `env`, then `flags`.
pub fn load(flags: &Flags, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let mut tree = match Value::try_from(Config::default()) {
        Ok(Value::Table(t)) => t,
        Ok(_) => return Err(ConfigError::Internal("defaults are not a table".into())),
        Err(e) => return Err(ConfigError::Internal(e.to_string())),
    };
    let mut provenance = HashMap::new();
    let mut warnings = Vec::new();

    if let Some(path) = &flags.config_file {
        let layer = file_layer(path)?;
        merge(
            &mut tree,
            layer,
            "",
            &Source::File {
                path: path.clone(),
                line: None,
            },
            &mut provenance,
        );
    }

    let keys = env_keys(&tree);
    for (var, key, value) in env_layer(env, &keys, &mut warnings)? {
        let layer = single(&key, value);
        check_layer(&layer, || Source::Env(var.clone()))?;
        merge(
            &mut tree,
            layer,
            "",
            &Source::Env(var.clone()),
            &mut provenance,
        );
    }

    for (flag, key, value) in flag_layer(flags) {
        let layer = single(key, value);
        check_layer(&layer, || Source::Flag(flag))?;
        merge(&mut tree, layer, "", &Source::Flag(flag), &mut provenance);
    }

    let config: Config = serde_path_to_error::deserialize(Value::Table(tree)).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Invalid {
            from: provenance.get(&key).cloned().unwrap_or(Source::Default),
            key,
            message: e.inner().message().to_string(),
        }
    })?;
    let mut loaded = Loaded {
        config,
        markets: Vec::new(),
        warnings,
        provenance,
    };
    loaded.markets = validate(&loaded)?;
    Ok(loaded)
}

/// Read the file, check its syntax and its keys and values.
fn file_layer(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: format!(
                "{}{}",
                line_of(&text, e.span())
                    .map(|l| format!("line {l}: "))
                    .unwrap_or_default(),
                e.message()
            ),
        })?;
    check_layer(&table, || {
        // Parse again from the text only to learn the line of the error.
        let line = toml::from_str::<Config>(&text)
            .err()
            .and_then(|e| line_of(&text, e.span()));
        Source::File {
            path: path.to_path_buf(),
            line,
        }
    })?;
    Ok(table)
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> Option<usize> {
    let start = span?.start;
    Some(text.get(..start)?.matches('\n').count() + 1)
}

/// Deserialize one layer on its own (over defaults) to catch unknown keys and
/// bad values while we still know where they came from.
fn check_layer(layer: &Table, from: impl FnOnce() -> Source) -> Result<(), ConfigError> {
    let result: Result<Config, _> = serde_path_to_error::deserialize(Value::Table(layer.clone()));
    result.map(|_| ()).map_err(|e| ConfigError::Invalid {
        key: e.path().to_string(),
        from: from(),
        message: e.inner().message().to_string(),
    })
}

/// Merge `layer` into `base`: tables key by key, everything else (arrays
/// included) replaced whole. Records where every replaced value came from.
fn merge(
    base: &mut Table,
    layer: Table,
    prefix: &str,
    source: &Source,
    provenance: &mut HashMap<String, Source>,
) {
    for (key, value) in layer {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(l)) => merge(b, l, &path, source, provenance),
            (_, value) => {
                base.insert(key, value);
                provenance.insert(path, source.clone());
            }
        }
    }
}

/// A table with one dotted key set.
fn single(key: &str, value: Value) -> Table {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut table = Table::new();
    table.insert(last.to_string(), value);
    for part in parts.into_iter().rev() {
        let mut outer = Table::new();
        outer.insert(part.to_string(), Value::Table(table));
        table = outer;
    }
    table
}

/// The type of a key, to turn an environment string into a TOML value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Integer,
    Boolean,
    String,
    List,
}

/// Every key an environment variable can set: env var name -> (key, kind).
fn env_keys(defaults: &Table) -> BTreeMap<String, (String, Kind)> {
    fn kind_of(v: &Value) -> Option<Kind> {
        match v {
            Value::Integer(_) => Some(Kind::Integer),
            Value::Boolean(_) => Some(Kind::Boolean),
            Value::String(_) => Some(Kind::String),
            Value::Array(a) if a.iter().all(|v| v.is_str()) => Some(Kind::List),
            _ => None,
        }
    }
    let mut keys = BTreeMap::new();
    let mut add = |key: String, kind: Kind| {
        let var = format!("{ENV_PREFIX}{}", key.replace('.', "_").to_uppercase());
        keys.insert(var, (key, kind));
    };
    for section in ["node", "api", "engine", "net", "store"] {
        if let Some(Value::Table(t)) = defaults.get(section) {
            for (k, v) in t {
                if let Some(kind) = kind_of(v) {
                    add(format!("{section}.{k}"), kind);
                }
            }
        }
    }
    // Optional keys have no default to learn their type from.
    add("data_dir".into(), Kind::String);
    add("api.token".into(), Kind::String);
    // Short names (applied before the long ones, so a long name wins).
    for (short, key, kind) in [
        ("LISTEN", "node.listen", Kind::List),
        ("BOOTSTRAP", "node.bootstrap", Kind::List),
        ("API", "api.listen", Kind::String),
        ("MDNS", "node.mdns", Kind::Boolean),
        ("MARKETS", "node.markets", Kind::List),
    ] {
        keys.insert(format!("{ENV_PREFIX}{short}"), (key.to_string(), kind));
    }
    keys
}

/// The environment's values, typed, in the order they apply: short names first.
fn env_layer(
    env: &[(String, String)],
    keys: &BTreeMap<String, (String, Kind)>,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, String, Value)>, ConfigError> {
    let mut out = Vec::new();
    let mut sorted: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    // Short names are those whose key's env name differs from the var.
    sorted.sort_by_key(|(var, _)| {
        let long = keys
            .get(var)
            .map(|(key, _)| format!("{ENV_PREFIX}{}", key.replace('.', "_").to_uppercase()) == *var)
            .unwrap_or(true);
        (long, var.clone())
    });
    for (var, raw) in sorted {
        let Some((key, kind)) = keys.get(var) else {
            if !ENV_NOT_KEYS.contains(&var.as_str()) {
                warnings.push(format!("ignoring unknown environment variable {var}"));
            }
            continue;
        };
        let bad = |message: String| ConfigError::Invalid {
            key: key.clone(),
            from: Source::Env(var.clone()),
            message,
        };
        let value = match kind {
            Kind::Integer => Value::Integer(
                raw.trim()
                    .parse::<i64>()
                    .map_err(|_| bad(format!("`{raw}` is not a whole number")))?,
            ),
            Kind::Boolean => Value::Boolean(
                parse_bool(raw).ok_or_else(|| bad(format!("`{raw}` is not true or false")))?,
            ),
            Kind::String => {
                if raw.is_empty() && (key == "api.token" || key == "data_dir") {
                    continue;
                }
                Value::String(raw.clone())
            }
            Kind::List => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ),
        };
        out.push((var.clone(), key.clone(), value));
    }
    Ok(out)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The flags that were given, as (flag, key, value).
fn flag_layer(flags: &Flags) -> Vec<(&'static str, &'static str, Value)> {
    let strings =
        |v: &[Multiaddr]| Value::Array(v.iter().map(|a| Value::String(a.to_string())).collect());
    let mut out = Vec::new();
    if let Some(dir) = &flags.data_dir {
        out.push((
            "--data-dir",
            "data_dir",
            Value::String(dir.display().to_string()),
        ));
    }
    if !flags.listen.is_empty() {
        out.push(("--listen", "node.listen", strings(&flags.listen)));
    }
    if !flags.bootstrap.is_empty() {
        out.push(("--bootstrap", "node.bootstrap", strings(&flags.bootstrap)));
    }
    if let Some(api) = flags.api {
        out.push(("--api", "api.listen", Value::String(api.to_string())));
    }
    if flags.no_mdns {
        out.push(("--no-mdns", "node.mdns", Value::Boolean(false)));
    }
    if flags.no_upnp {
        out.push(("--no-upnp", "nat.upnp", Value::Boolean(false)));
    }
    if !flags.markets.is_empty() {
        out.push((
            "--market",
            "node.markets",
            Value::Array(
                flags
                    .markets
                    .iter()
                    .map(|m| Value::String(m.clone()))
                    .collect(),
            ),
        ));
    }
    out
}

/// Checks across values: positive numbers, usable addresses, markets.
fn validate(loaded: &Loaded) -> Result<Vec<MarketSpec>, ConfigError> {
    let c = &loaded.config;
    let bad = |key: &str, message: String| ConfigError::Invalid {
        key: key.to_string(),
        from: loaded.source_of(key),
        message,
    };

    if let Some(field) = c.net.zero_fields().first() {
        let key = format!("net.{field}");
        return Err(bad(&key, "must be greater than zero".into()));
    }
    if let Some(field) = c.engine.zero_fields().first() {
        let key = format!("engine.{field}");
        return Err(bad(&key, "must be greater than zero".into()));
    }
    if let Some(field) = c.store.zero_fields().first() {
        let key = format!("store.{field}");
        return Err(bad(&key, "must be greater than zero".into()));
    }
    if let Some(field) = c.nat.zero_fields().first() {
        let key = format!("nat.{field}");
        return Err(bad(&key, "must be greater than zero".into()));
    }
    if c.engine.stale_after_ms < c.engine.heartbeat_ms {
        return Err(bad(
            "engine.stale_after_ms",
            format!(
                "must be at least engine.heartbeat_ms ({}), or every owner would look stale between heartbeats",
                c.engine.heartbeat_ms
            ),
        ));
    }
    if c.engine.take_deadline_ms < c.net.take_timeout_ms {
        return Err(bad(
            "engine.take_deadline_ms",
            format!(
                "must be at least net.take_timeout_ms ({}), or a maker would refuse as late takes the taker still waits for",
                c.net.take_timeout_ms
            ),
        ));
    }
    if c.data_dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        return Err(bad("data_dir", "must not be empty".into()));
    }
    if c.api.token.as_ref().is_some_and(|t| t.trim().is_empty()) {
        return Err(bad("api.token", "must not be empty".into()));
    }
    for (key, value) in [
        ("api.max_body_bytes", c.api.max_body_bytes),
        ("api.max_event_streams", c.api.max_event_streams),
        ("api.max_ws_clients", c.api.max_ws_clients),
        ("api.ws_buffer_bytes", c.api.ws_buffer_bytes),
        ("api.max_connections", c.api.max_connections),
        ("api.idle_timeout_secs", c.api.idle_timeout_secs as usize),
    ] {
        if value == 0 {
            return Err(bad(key, "must be greater than zero".into()));
        }
    }
    if c.node.listen.is_empty() {
        return Err(bad(
            "node.listen",
            "at least one listen address is needed".into(),
        ));
    }
    for (key, addrs) in [
        ("node.listen", &c.node.listen),
        ("node.bootstrap", &c.node.bootstrap),
        ("node.external", &c.node.external),
    ] {
        for addr in addrs {
            let tcp = addr.iter().any(|p| matches!(p, Protocol::Tcp(_)));
            let quic = addr.iter().any(|p| matches!(p, Protocol::QuicV1));
            if !tcp && !quic {
                return Err(bad(
                    key,
                    format!(
                        "{addr} is neither a TCP nor a QUIC address; expected e.g. \
                         /ip4/127.0.0.1/tcp/4001 or /ip4/127.0.0.1/udp/4001/quic-v1"
                    ),
                ));
            }
            if key == "node.listen" && addr.iter().any(|p| matches!(p, Protocol::P2p(_))) {
                return Err(bad(
                    key,
                    format!("{addr}: a listen address has no /p2p/ part"),
                ));
            }
        }
    }

    if c.markets.is_empty() {
        return Err(bad("markets", "no market is configured".into()));
    }
    let mut specs = Vec::with_capacity(c.markets.len());
    for (i, m) in c.markets.iter().enumerate() {
        let spec = MarketSpec::new(&m.name, m.tick, m.lot)
            .map_err(|e| bad("markets", format!("markets[{i}]: {e}")))?;
        if specs.iter().any(|s: &MarketSpec| s.name == spec.name) {
            return Err(bad(
                "markets",
                format!("market {} is defined twice", spec.name),
            ));
        }
        specs.push(spec);
    }
    if c.node.markets.is_empty() {
        return Ok(specs);
    }
    let mut enabled: Vec<MarketSpec> = Vec::new();
    for name in &c.node.markets {
        let Some(spec) = specs.iter().find(|s| s.name == *name) else {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            return Err(bad(
                "node.markets",
                format!(
                    "market {name:?} is not configured (configured: {})",
                    known.join(", ")
                ),
            ));
        };
        if !enabled.iter().any(|s| s.name == spec.name) {
            enabled.push(spec.clone());
        }
    }
    Ok(enabled)
}

// ---- value parsers with messages that quote the value ---------------------

fn multiaddrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Multiaddr>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|s| {
            Multiaddr::from_str(s.trim()).map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a valid multiaddr ({e}); expected e.g. /ip4/127.0.0.1/tcp/4001"
                ))
            })
        })
        .collect()
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let raw = String::deserialize(d)?;
    SocketAddr::from_str(raw.trim()).map_err(|_| {
        serde::de::Error::custom(format!(
            "`{raw}` is not a socket address; expected IP:PORT, e.g. 127.0.0.1:8080"
        ))
    })
}

fn decimal_string<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Decimal;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a decimal number written as a string, e.g. \"0.01\"")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Decimal, E> {
            Decimal::from_str(s.trim())
                .map_err(|_| E::custom(format!("`{s}` is not a decimal number, e.g. \"0.01\"")))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
            Err(E::custom(format!(
                "write decimal numbers as strings to keep them exact: \"{v}\" rather than {v}"
            )))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
            Err(E::custom(format!(
                "write decimal numbers as strings to keep them exact: \"{v}\" rather than {v}"
            )))
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn with_file(f: &tempfile::NamedTempFile) -> Flags {
        Flags {
            config_file: Some(f.path().to_path_buf()),
            ..Flags::default()
        }
    }

    #[test]
    fn defaults_alone_are_a_valid_config() {
        let loaded = load(&Flags::default(), &[]).unwrap();
        assert_eq!(loaded.config, Config::default());
        let names: Vec<_> = loaded.markets.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["BTC-USD", "ETH-USD"]);
        assert_eq!(loaded.source_of("api.listen"), Source::Default);
    }

    #[test]
    fn the_shipped_config_file_is_exactly_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/peerbook.toml");
        let flags = Flags {
            config_file: Some(path),
            ..Flags::default()
        };
        assert_eq!(load(&flags, &[]).unwrap().config, Config::default());
    }

    #[test]
    fn file_overrides_default_env_overrides_file_flag_overrides_env() {
        let f = file(
            "[net]\ntarget_peers = 3\nredial_max_ms = 5000\nmax_pending_incoming = 7\n\
             [api]\nlisten = \"127.0.0.1:9000\"\n",
        );
        let e = env(&[
            ("PEERBOOK_NET_REDIAL_MAX_MS", "6000"),
            ("PEERBOOK_NET_MAX_PENDING_INCOMING", "8"),
            ("PEERBOOK_API", "127.0.0.1:9001"),
        ]);
        let flags = Flags {
            api: Some("127.0.0.1:9002".parse().unwrap()),
            ..with_file(&f)
        };
        let loaded = load(&flags, &e).unwrap();
        let c = &loaded.config;
        assert_eq!(c.net.target_peers, 3, "file over default");
        assert_eq!(c.net.redial_max_ms, 6000, "env over file");
        assert_eq!(c.net.max_pending_incoming, 8, "env over file");
        assert_eq!(
            c.api.listen,
            "127.0.0.1:9002".parse().unwrap(),
            "flag over env"
        );
        assert_eq!(c.net.take_timeout_ms, NetTuning::default().take_timeout_ms);
        assert!(matches!(
            loaded.source_of("net.target_peers"),
            Source::File { .. }
        ));
        assert_eq!(
            loaded.source_of("net.redial_max_ms"),
            Source::Env("PEERBOOK_NET_REDIAL_MAX_MS".into())
        );
        assert_eq!(loaded.source_of("api.listen"), Source::Flag("--api"));
    }

    #[test]
    fn lists_and_short_names_come_from_the_environment() {
        let e = env(&[
            (
                "PEERBOOK_BOOTSTRAP",
                "/ip4/10.0.0.1/tcp/4001, /dns4/seed.example/tcp/4001",
            ),
            ("PEERBOOK_MDNS", "false"),
            ("PEERBOOK_MARKETS", "ETH-USD"),
            ("PEERBOOK_LISTEN", "/ip4/127.0.0.1/tcp/1"),
            ("PEERBOOK_NODE_LISTEN", "/ip4/127.0.0.1/tcp/2"),
        ]);
        let loaded = load(&Flags::default(), &e).unwrap();
        assert_eq!(loaded.config.node.bootstrap.len(), 2);
        assert!(!loaded.config.node.mdns);
        assert_eq!(loaded.markets.len(), 1);
        assert_eq!(loaded.markets[0].name, "ETH-USD");
        assert_eq!(
            loaded.config.node.listen,
            vec!["/ip4/127.0.0.1/tcp/2".parse::<Multiaddr>().unwrap()],
            "the long name wins over the short one"
        );
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named_with_its_line() {
        let f = file("[net]\ntarget_peers = 3\nmax_establisehd_total = 4\n");
        let err = load(&with_file(&f), &[]).unwrap_err().to_string();
        assert!(err.contains("net.max_establisehd_total"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn a_wrong_type_in_the_file_names_the_key() {
        let f = file("[net]\ntarget_peers = \"many\"\n");
        let err = load(&with_file(&f), &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("net.target_peers (from config file"),
            "{err}"
        );
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let f = file("[net\n");
        let err = load(&with_file(&f), &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key_and_where_they_came_from() {
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (
                vec![("PEERBOOK_NET_TARGET_PEERS", "lots")],
                "net.target_peers",
                "PEERBOOK_NET_TARGET_PEERS",
            ),
            (
                vec![("PEERBOOK_NET_TARGET_PEERS", "0")],
                "net.target_peers",
                "greater than zero",
            ),
            (
                vec![("PEERBOOK_NET_TARGET_PEERS", "-1")],
                "net.target_peers",
                "expected u32",
            ),
            (
                vec![("PEERBOOK_LISTEN", "not-an-addr")],
                "node.listen",
                "not a valid multiaddr",
            ),
            (
                vec![("PEERBOOK_API", "localhost")],
                "api.listen",
                "not a socket address",
            ),
            (
                vec![("PEERBOOK_MDNS", "maybe")],
                "node.mdns",
                "not true or false",
            ),
            (
                vec![("PEERBOOK_MARKETS", "DOGE-USD")],
                "node.markets",
                "not configured",
            ),
            (
                vec![("PEERBOOK_BOOTSTRAP", "/ip4/1.2.3.4/udp/1")],
                "node.bootstrap",
                "neither a TCP nor a QUIC address",
            ),
            (
                vec![("PEERBOOK_API_MAX_BODY_BYTES", "0")],
                "api.max_body_bytes",
                "greater than zero",
            ),
            (
                vec![("PEERBOOK_API_MAX_EVENT_STREAMS", "0")],
                "api.max_event_streams",
                "greater than zero",
            ),
            (
                vec![("PEERBOOK_API_MAX_CONNECTIONS", "0")],
                "api.max_connections",
                "greater than zero",
            ),
            (
                vec![("PEERBOOK_API_IDLE_TIMEOUT_SECS", "0")],
                "api.idle_timeout_secs",
                "greater than zero",
            ),
            (
                vec![("PEERBOOK_API_MAX_BODY_BYTES", "1MB")],
                "api.max_body_bytes",
                "not a whole number",
            ),
        ];
        for (vars, key, text) in cases {
            let err = load(&Flags::default(), &env(&vars))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(key), "{vars:?}: {err}");
            assert!(err.contains(text), "{vars:?}: {err}");
            assert!(err.contains("environment variable"), "{vars:?}: {err}");
        }
    }

    #[test]
    fn api_limits_come_from_the_file_and_the_environment() {
        let loaded = load(&Flags::default(), &[]).unwrap();
        assert_eq!(loaded.config.api.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(
            loaded.config.api.max_event_streams,
            DEFAULT_MAX_EVENT_STREAMS
        );
        let f = file("[api]\nmax_body_bytes = 4096\nmax_event_streams = 3\n");
        let loaded = load(
            &with_file(&f),
            &env(&[("PEERBOOK_API_MAX_EVENT_STREAMS", "5")]),
        )
        .unwrap();
        assert_eq!(loaded.config.api.max_body_bytes, 4096);
        assert_eq!(loaded.config.api.max_event_streams, 5);
    }

    #[test]
    fn a_take_deadline_under_the_take_timeout_is_refused() {
        let f = file("[engine]\ntake_deadline_ms = 2000\n[net]\ntake_timeout_ms = 3000\n");
        let err = load(&with_file(&f), &[]).unwrap_err().to_string();
        assert!(
            err.contains("engine.take_deadline_ms") && err.contains("net.take_timeout_ms (3000)"),
            "{err}"
        );
        let loaded = load(
            &Flags::default(),
            &env(&[("PEERBOOK_ENGINE_TAKE_DEADLINE_MS", "8000")]),
        )
        .unwrap();
        assert_eq!(loaded.config.engine.take_deadline_ms, 8_000);
    }

    #[test]
    fn bad_markets_are_refused() {
        let f = file("[[markets]]\nname = \"X-Y\"\ntick = \"0\"\nlot = \"1\"\n");
        let err = load(&with_file(&f), &[]).unwrap_err().to_string();
        assert!(err.contains("tick size must be greater than zero"), "{err}");

        let f = file("[[markets]]\nname = \"X-Y\"\ntick = 0.01\nlot = \"1\"\n");
        let err = load(&with_file(&f), &[]).unwrap_err().to_string();
        assert!(
            err.contains("markets[0].tick") && err.contains("as strings"),
            "{err}"
        );

        let flags = Flags {
            markets: vec!["NOPE".into()],
            ..Flags::default()
        };
        let err = load(&flags, &[]).unwrap_err().to_string();
        assert!(
            err.contains("flag --market") && err.contains("NOPE"),
            "{err}"
        );
    }

    #[test]
    fn a_public_api_needs_a_token() {
        let flags = Flags {
            api: Some("0.0.0.0:8080".parse().unwrap()),
            ..Flags::default()
        };
        let loaded = load(&flags, &[]).unwrap();
        let err = loaded.check_api_exposure().unwrap_err().to_string();
        assert!(
            err.contains("PEERBOOK_API_TOKEN") && err.contains("flag --api"),
            "{err}"
        );
        let loaded = load(&flags, &env(&[("PEERBOOK_API_TOKEN", "s3cret")])).unwrap();
        loaded.check_api_exposure().unwrap();
    }

    #[test]
    fn unknown_peerbook_variables_are_warned_about() {
        let loaded = load(
            &Flags::default(),
            &env(&[("PEERBOOK_LISTNE", "x"), ("PEERBOOK_CONFIG", "f")]),
        )
        .unwrap();
        assert_eq!(
            loaded.warnings,
            vec!["ignoring unknown environment variable PEERBOOK_LISTNE"]
        );
    }
}
