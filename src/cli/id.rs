//! `peerbook id`: print the node's peer id and the multiaddrs other nodes
//! can dial it at (`--bootstrap` values), creating the identity if needed.
//!
//! The first line is the peer id alone and every further line one address,
//! so scripts can take what they need. A listen address on 0.0.0.0 (or ::)
//! is expanded to this host's interface addresses, loopback included.

use std::net::IpAddr;

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
    /// Listen address to report (repeatable) [default: from the config]
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
}

impl IdArgs {
    pub fn run(self) -> Result<(), NodeError> {
        let loaded = load_config(Flags {
            config_file: self.common.config,
            data_dir: self.common.data_dir,
            listen: self.listen,
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
        let interfaces = interface_ips();
        let node = &loaded.config.node;
        let mut printed = Vec::new();
        for addr in node.listen.iter().chain(node.external.iter()) {
            for a in expand(addr, &interfaces) {
                let full = with_peer(a, peer_id);
                if !printed.contains(&full) {
                    println!("{full}");
                    printed.push(full);
                }
            }
        }
        Ok(())
    }
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
