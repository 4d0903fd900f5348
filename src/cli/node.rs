//! `peerbook node`: run a node.

use std::net::SocketAddr;

use clap::Args;
use libp2p::Multiaddr;

use super::{load_config, ConfigArgs};
use crate::config::Flags;
use crate::node::{self, NodeError};

/// Flags of `peerbook node`; each overrides the config file and environment.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Address to listen on for peers (repeatable) [default: /ip4/0.0.0.0/tcp/4001]
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
    /// Peer to dial at start, with or without /p2p/<peer id> (repeatable)
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<Multiaddr>,
    /// Address of the HTTP API [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub api: Option<SocketAddr>,
    /// Do not look for peers on the local network with mDNS
    #[arg(long)]
    pub no_mdns: bool,
    /// Do not ask the router for a port mapping with UPnP
    #[arg(long)]
    pub no_upnp: bool,
    /// Enable only this market (repeatable) [default: every configured market]
    #[arg(long = "market", value_name = "NAME")]
    pub markets: Vec<String>,
}

impl NodeArgs {
    pub async fn run(self) -> Result<(), NodeError> {
        let loaded = load_config(Flags {
            config_file: self.common.config,
            data_dir: self.common.data_dir,
            listen: self.listen,
            bootstrap: self.bootstrap,
            api: self.api,
            no_mdns: self.no_mdns,
            markets: self.markets,
            no_upnp: self.no_upnp,
        })?;
        node::run(loaded).await
    }
}
