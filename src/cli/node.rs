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
    /// Address to listen on for peers, a multiaddr like
    /// /ip4/0.0.0.0/tcp/4001 (repeatable) [env: PEERBOOK_LISTEN] [default:
    /// /ip4/0.0.0.0/tcp/4001]
    #[arg(long, value_name = "MULTIADDR", value_parser = parse_multiaddr)]
    pub listen: Vec<Multiaddr>,
    /// Peer to dial at start, a multiaddr like /ip4/192.0.2.7/tcp/4001 or
    /// /dns4/node1/tcp/4001, with or without /p2p/<peer id> (not
    /// host:port) (repeatable) [env: PEERBOOK_BOOTSTRAP, comma separated]
    #[arg(long, value_name = "MULTIADDR", value_parser = parse_multiaddr)]
    pub bootstrap: Vec<Multiaddr>,
    /// Address of the HTTP API, host:port [env: PEERBOOK_API] [default:
    /// 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub api: Option<SocketAddr>,
    /// Do not look for peers on the local network with mDNS [env:
    /// PEERBOOK_MDNS=false]
    #[arg(long)]
    pub no_mdns: bool,
    /// Do not ask the router for a port mapping with UPnP
    #[arg(long)]
    pub no_upnp: bool,
    /// Enable only this market (repeatable) [env: PEERBOOK_MARKETS, comma
    /// separated] [default: every configured market]
    #[arg(long = "market", value_name = "NAME")]
    pub markets: Vec<String>,
}

/// A multiaddr, with a hint for the usual mistake of giving `host:port`.
fn parse_multiaddr(s: &str) -> Result<Multiaddr, String> {
    s.parse::<Multiaddr>().map_err(|e| {
        let hint = match s.rsplit_once(':') {
            Some((host, port)) if !s.starts_with('/') && port.parse::<u16>().is_ok() => {
                let proto = if host.parse::<std::net::Ipv4Addr>().is_ok() {
                    "ip4"
                } else {
                    "dns4"
                };
                format!("; a multiaddr looks like /{proto}/{host}/tcp/{port}")
            }
            _ => "; a multiaddr looks like /ip4/192.0.2.7/tcp/4001".to_string(),
        };
        format!("{e}{hint}")
    })
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
