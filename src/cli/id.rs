//! `peerbook id`: print the node's peer id and the multiaddrs other nodes
//! can dial it at (`--bootstrap` values), creating the identity if needed.
//!
//! The first line is the peer id alone and every further line one address,
//! so scripts can take what they need. When the node of this data dir is
//! running (its API, from the same config, flags and environment as `peerbook
//! node`, answers with this peer id), the addresses are the ones it really
//! listens on and announces. Otherwise they are read from that config: a
//! listen address on 0.0.0.0 (or ::) is expanded to this host's interface
//! addresses, loopback included, as the node would.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use super::{load_config, ConfigArgs};
use crate::config::Flags;
use crate::net::identity;
use crate::node::{prepare_data_dir, NodeError};

/// Flags of `peerbook id`.
#[derive(Debug, Clone, Args)]
pub struct IdArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Listen address to report when the node is not running, as given to
    /// `peerbook node` (repeatable) [env: PEERBOOK_LISTEN] [default: from
    /// the config]
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
    /// Where the running node's API is, as given to `peerbook node`
    /// [env: PEERBOOK_API] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub api: Option<SocketAddr>,
}

impl IdArgs {
    pub async fn run(self) -> Result<(), NodeError> {
        let loaded = load_config(Flags {
            config_file: self.common.config,
            data_dir: self.common.data_dir,
            listen: self.listen,
            api: self.api,
            ..Flags::default()
        })?;
        let data_dir = loaded.data_dir()?;
        prepare_data_dir(&data_dir)?;
        let (key, created) = identity::load_or_create(&data_dir)?;
        if created {
            eprintln!(
                "created a new identity in {}",
                data_dir.join(identity::KEY_FILE).display()
            );
        }
        let peer_id = key.public().to_peer_id();
        println!("{peer_id}");
        let running = ask_running_node(
            loaded.config.api.listen,
            loaded.config.api.token.as_deref(),
            peer_id,
        )
        .await;
        let addrs: Vec<Multiaddr> = match running {
            Some(addrs) => addrs,
            None => {
                let interfaces = interface_ips();
                let node = &loaded.config.node;
                node.listen
                    .iter()
                    .chain(node.external.iter())
                    .flat_map(|a| expand(a, &interfaces))
                    .collect()
            }
        };
        let mut printed = Vec::new();
        for a in addrs {
            let full = with_peer(a, peer_id);
            if !printed.contains(&full) {
                println!("{full}");
                printed.push(full);
            }
        }
        Ok(())
    }
}

/// The addresses the node at `api` listens on and announces, if it answers
/// and is the node of this identity (another node's API on that port is not
/// asked further).
async fn ask_running_node(
    api: SocketAddr,
    token: Option<&str>,
    me: PeerId,
) -> Option<Vec<Multiaddr>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let mut req = http.get(format!("http://{api}/api/v1/status"));
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        req = req.bearer_auth(t);
    }
    let status: crate::api::status::Status = req.send().await.ok()?.json().await.ok()?;
    if status.peer_id != me.to_string() {
        return None;
    }
    Some(
        status
            .listen_addrs
            .iter()
            .chain(status.external_addrs.iter())
            .filter_map(|a| a.parse().ok())
            .collect(),
    )
}

fn with_peer(addr: Multiaddr, peer: PeerId) -> Multiaddr {
    addr.clone().with_p2p(peer).unwrap_or(addr)
}

/// This host's interface addresses, loopback first; at least 127.0.0.1.
fn interface_ips() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|ifs| ifs.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    if !ips.iter().any(|ip| ip.is_loopback() && ip.is_ipv4()) {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips.sort_by_key(|ip| (!ip.is_loopback(), ip.is_ipv6()));
    ips.dedup();
    ips
}

/// The dialable forms of a listen address: itself, or one per interface for
/// an unspecified IP.
fn expand(addr: &Multiaddr, interfaces: &[IpAddr]) -> Vec<Multiaddr> {
    let mut parts = addr.iter();
    let (v4, rest): (bool, Vec<Protocol>) = match parts.next() {
        Some(Protocol::Ip4(ip)) if ip.is_unspecified() => (true, parts.collect()),
        Some(Protocol::Ip6(ip)) if ip.is_unspecified() => (false, parts.collect()),
        _ => return vec![addr.clone()],
    };
    interfaces
        .iter()
        .filter(|ip| ip.is_ipv4() == v4)
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
        .map(|ip| {
            let first = match ip {
                IpAddr::V4(v4) => Protocol::Ip4(*v4),
                IpAddr::V6(v6) => Protocol::Ip6(*v6),
            };
            std::iter::once(first).chain(rest.iter().cloned()).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_expanded_per_interface() {
        let ifs = vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([10, 1, 2, 3])];
        let any: Multiaddr = "/ip4/0.0.0.0/tcp/4001".parse().unwrap();
        let got: Vec<String> = expand(&any, &ifs).iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["/ip4/127.0.0.1/tcp/4001", "/ip4/10.1.2.3/tcp/4001"]);
        let fixed: Multiaddr = "/dns4/example.org/tcp/4001".parse().unwrap();
        assert_eq!(expand(&fixed, &ifs), vec![fixed]);
    }
}
