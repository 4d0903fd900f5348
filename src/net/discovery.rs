//! Discovery: how the node finds peers and their addresses.
//!
//! Kademlia (our own protocol name, so we only ever meet peerbook nodes) is
//! the address book of the wider network; identify tells it the listen
//! addresses of every peer we connect to; mDNS finds nodes on the LAN; random
//! walks look for more peers while the node is short of them. This module
//! builds those pieces and holds the small decisions about them;
//! `discovered.rs` reacts to their events, for the event loop.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{identify, kad, Multiaddr, PeerId, StreamProtocol};

/// Our Kademlia protocol: a DHT of peerbook nodes only.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/peerbook/kad/1.0.0");

/// Build the Kademlia behaviour, in server mode.
///
/// Server mode from the start: peerbook nodes are peers of equal standing and
/// should answer DHT queries even before an external address is confirmed;
/// a node AutoNAT finds private switches to client mode (`nat/`).
pub fn kademlia(local: PeerId) -> kad::Behaviour<kad::store::MemoryStore> {
    let mut config = kad::Config::new(KAD_PROTOCOL);
    config.set_query_timeout(Duration::from_secs(30));
    config.set_periodic_bootstrap_interval(Some(Duration::from_secs(300)));
    let mut kad = kad::Behaviour::with_config(local, kad::store::MemoryStore::new(local), config);
    kad.set_mode(Some(kad::Mode::Server));
    kad
}

/// Whether an identified peer speaks our DHT.
pub fn speaks_kad(info: &identify::Info) -> bool {
    info.protocols.contains(&KAD_PROTOCOL)
}

/// The listen addresses of an identified peer worth putting in the DHT.
///
/// Unspecified addresses are useless to anyone, and a loopback address is only
/// meaningful to a peer on the same host: if we reach the peer over a real
/// network, its `127.0.0.1` would point others at themselves.
///
/// Over a public address, private addresses go too (`nat::addr::shareable`).
pub fn dialable_listen_addrs(info: &identify::Info, remote: &Multiaddr) -> Vec<Multiaddr> {
    super::nat::addr::shareable(&info.listen_addrs, remote)
}

/// Whether the address starts with a loopback IP.
pub fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// Whether the address starts with 0.0.0.0 or ::.
pub fn is_unspecified(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => ip.is_unspecified(),
        _ => false,
    }
}

/// The addresses without their `/p2p/<peer id>` suffix, without repeats,
/// in their order (the peer store holds both forms of some addresses).
pub fn plain_addrs<'a>(addrs: impl IntoIterator<Item = &'a Multiaddr>) -> Vec<Multiaddr> {
    let mut out: Vec<Multiaddr> = Vec::new();
    for addr in addrs {
        let (plain, _) = split_peer_id(addr);
        if !out.contains(&plain) {
            out.push(plain);
        }
    }
    out
}

/// Split a trailing `/p2p/<peer id>` off an address.
pub fn split_peer_id(addr: &Multiaddr) -> (Multiaddr, Option<PeerId>) {
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) => (base, Some(peer)),
        _ => (addr.clone(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(addrs: &[&str], protocols: Vec<StreamProtocol>) -> identify::Info {
        identify::Info {
            public_key: libp2p::identity::Keypair::generate_ed25519().public(),
            protocol_version: String::new(),
            agent_version: String::new(),
            listen_addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            protocols,
            observed_addr: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            signed_peer_record: None,
        }
    }

    #[test]
    fn loopback_addresses_are_kept_only_for_peers_on_this_host() {
        let i = info(
            &[
                "/ip4/127.0.0.1/tcp/4001",
                "/ip4/10.0.0.2/tcp/4001",
                "/ip4/0.0.0.0/tcp/4001",
            ],
            vec![],
        );
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/5555".parse().unwrap();
        let remote: Multiaddr = "/ip4/10.0.0.2/tcp/5555".parse().unwrap();
        assert_eq!(dialable_listen_addrs(&i, &local).len(), 2);
        assert_eq!(
            dialable_listen_addrs(&i, &remote),
            vec!["/ip4/10.0.0.2/tcp/4001".parse::<Multiaddr>().unwrap()]
        );
    }

    #[test]
    fn a_trailing_peer_id_is_split_off() {
        let peer = PeerId::random();
        let with: Multiaddr = format!("/ip4/1.2.3.4/tcp/1/p2p/{peer}").parse().unwrap();
        assert_eq!(
            split_peer_id(&with),
            ("/ip4/1.2.3.4/tcp/1".parse().unwrap(), Some(peer))
        );
        let without: Multiaddr = "/dns4/example.org/tcp/1".parse().unwrap();
        assert_eq!(split_peer_id(&without), (without.clone(), None));
    }

    #[test]
    fn addresses_with_and_without_peer_id_are_one_address() {
        let peer = PeerId::random();
        let a: Multiaddr = "/ip4/1.2.3.4/tcp/1".parse().unwrap();
        let with = a.clone().with_p2p(peer).unwrap();
        let b: Multiaddr = "/ip4/1.2.3.4/tcp/2".parse().unwrap();
        assert_eq!(plain_addrs([&with, &a, &b]), vec![a, b]);
    }

    #[test]
    fn kad_support_is_read_from_identify() {
        assert!(speaks_kad(&info(&[], vec![KAD_PROTOCOL])));
        assert!(!speaks_kad(&info(
            &[],
            vec![StreamProtocol::new("/ipfs/kad/1.0.0")]
        )));
    }
}
