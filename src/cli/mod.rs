//! The command line: `peerbook <command> [flags]`, parsed with clap.
//!
//! Each command lives in its own file under `cli/` with its flags and its
//! `run`; this file only lists them and dispatches. To add one, write
//! `cli/<name>.rs` and add a variant to [`Command`]. Bad flags are clap's
//! job: a clear message and exit status 2. The commands that talk to a
//! node share `--api`, `--token` and `--json` ([`client::ApiArgs`]).

mod book;
pub mod client;
mod demo;
mod format;
mod id;
mod node;
mod order;
mod peers;
mod status;
mod trades;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Flags, Loaded};
use crate::node::NodeError;

/// peerbook: a peer-to-peer exchange node.
#[derive(Debug, Parser)]
#[command(name = "peerbook", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines (on stderr) are written: `text` for people, `json`
    /// (one object a line) for log collectors. What is logged is set with
    /// RUST_LOG (default `info`)
    #[arg(
        long,
        value_enum,
        global = true,
        default_value = "text",
        env = "PEERBOOK_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

/// The log line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: join the network, keep the books, serve the API.
    #[command(after_help = "Examples:\n  \
        peerbook node                                   # p2p on 0.0.0.0:4001, API on 127.0.0.1:8080\n  \
        peerbook node --bootstrap /ip4/192.0.2.7/tcp/4001\n  \
        peerbook node --data-dir /tmp/pb-b --listen /ip4/127.0.0.1/tcp/14002 --api 127.0.0.1:8081 \\\n      \
        --bootstrap /ip4/127.0.0.1/tcp/14001 --no-mdns   # a second node on this host\n\n\
        Every flag has an environment variable (flags win over it, it wins over the config file):\n  \
        PEERBOOK_DATA_DIR, PEERBOOK_LISTEN, PEERBOOK_BOOTSTRAP (comma separated), PEERBOOK_API,\n  \
        PEERBOOK_API_TOKEN, PEERBOOK_MDNS=false, PEERBOOK_MARKETS, and PEERBOOK_<SECTION>_<KEY> for\n  \
        every key of config/peerbook.toml. Logs: RUST_LOG (default info), --log-format json.")]
    Node(node::NodeArgs),
    /// Print this node's peer id and the addresses to give other nodes:
    /// what the running node listens on and announces, else what its config
    /// says (creates the identity if there is none yet).
    Id(id::IdArgs),
    /// Show how a node is doing: peers, markets, digests (exit status 1
    /// when it does not answer).
    Status(status::StatusArgs),
    /// Place, cancel, show and list this node's orders.
    Order(order::OrderArgs),
    /// Show a market's book as the node sees it: a depth ladder and its
    /// digest.
    #[command(after_help = "Examples:\n  \
        peerbook book BTC-USD\n  \
        peerbook book ETH-USD --depth 25 --api 127.0.0.1:8081\n  \
        peerbook book BTC-USD --json | jq .asks\n\n\
        NOTE says how much of a level is this node's (mine) and how much is of owners not heard\n\
        from lately (stale: shown, not taken).")]
    Book(book::BookArgs),
    /// Show recent trades, newest first.
    Trades(trades::TradesArgs),
    /// Show the peers the node is connected to or knows of.
    Peers(peers::PeersArgs),
    /// Run a trading bot against a node: random orders around a drifting
    /// mid price, until Ctrl-C or --count actions.
    #[command(after_help = "Examples:\n  \
        peerbook demo                                  # against 127.0.0.1:8080, until Ctrl-C\n  \
        peerbook demo --market ETH-USD --mid 2000 --rate 5/s --count 100\n  \
        ( peerbook demo --api 127.0.0.1:8080 --seed 1 & trap 'kill -INT $!' INT\n    \
        peerbook demo --api 127.0.0.1:8081 --seed 2; wait )   # two bots that trade; Ctrl-C stops both")]
    Demo(demo::DemoArgs),
}

/// Why a command failed; printed once, by `main`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Client(#[from] client::ClientError),
}

impl CliError {
    /// Exit status: 2 for a bad configuration or usage, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Node(e) => e.exit_code(),
            CliError::Client(client::ClientError::Usage(_) | client::ClientError::BadUrl(_)) => 2,
            CliError::Client(_) => 1,
        }
    }
}

impl Cli {
    /// Run the chosen command.
    pub async fn run(self) -> Result<(), CliError> {
        match self.command {
            Command::Node(args) => Ok(args.run().await?),
            Command::Id(args) => Ok(args.run().await?),
            Command::Status(args) => Ok(args.run().await?),
            Command::Order(args) => Ok(args.run().await?),
            Command::Book(args) => Ok(args.run().await?),
            Command::Trades(args) => Ok(args.run().await?),
            Command::Peers(args) => Ok(args.run().await?),
            Command::Demo(args) => Ok(args.run().await?),
        }
    }
}

/// Flags every command that reads the config shares.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Config file (TOML). Every key and its default: config/peerbook.toml.
    #[arg(long, value_name = "FILE", env = "PEERBOOK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the identity key and the database live; each node on a host
    /// needs its own [env: PEERBOOK_DATA_DIR] [default: the platform's data
    /// directory]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Load the config with these flags over the process environment, and log
/// any warnings about it.
fn load_config(flags: Flags) -> Result<Loaded, NodeError> {
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let loaded = config::load(&flags, &env)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(loaded)
}
