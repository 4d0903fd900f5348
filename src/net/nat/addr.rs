//! Which addresses are worth telling others about.
//!
//! A peer's private (RFC 1918, carrier-grade NAT, link-local, unique-local)
//! and loopback addresses mean something only to a node on the same network.
//! They are kept when we reach the peer over such a network ourselves (a LAN,
//! a container network, mDNS, one host), and dropped when we reach it over a
//! public address: there they would send others to someone else's LAN and a
//! dial that times out. Relayed (`/p2p-circuit`) addresses go through a relay
//! and are judged by the relay's address.

use std::net::IpAddr;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// Whether the address goes through a relay.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// The IP an address starts with, if it starts with one.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => Some(IpAddr::V4(ip)),
        Some(Protocol::Ip6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// Whether an IP is only meaningful inside one network or host: loopback,
/// unspecified, RFC 1918, carrier-grade NAT (100.64/10), link-local, IPv6
/// unique-local (fc00::/7) and link-local (fe80::/10).
pub fn is_local_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_private()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0b1100_0000) == 0b0100_0000)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_local_ip(IpAddr::V4(v4)))
        }
    }
}

/// Whether an address is reachable from the wider network as far as its
/// form tells: it starts with a public IP, or is a DNS name. Relayed
/// addresses are judged by their relay's address.
pub fn is_public(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(_)) | Some(Protocol::Ip6(_)) => {
            ip_of(addr).is_some_and(|ip| !is_local_ip(ip))
        }
        Some(Protocol::Dns(_)) | Some(Protocol::Dns4(_)) | Some(Protocol::Dns6(_)) => true,
        _ => false,
    }
}

/// Of a peer's announced addresses, those worth dialling and sharing, judged
/// against the address we reached it at (`remote`).
///
/// Unspecified addresses are useless to anyone. Over a public address only
/// public addresses (and circuits through public relays) are kept; over a
/// private or loopback address (the same LAN or host) everything else is
/// kept too, except loopback addresses of a peer not on this host.
pub fn shareable(announced: &[Multiaddr], remote: &Multiaddr) -> Vec<Multiaddr> {
    let remote_ip = ip_of(remote);
    let remote_loopback = remote_ip.is_some_and(|ip| ip.is_loopback());
    let remote_local = remote_ip.is_some_and(is_local_ip) && !is_relayed(remote);
    announced
        .iter()
        .filter(|a| !ip_of(a).is_some_and(|ip| ip.is_unspecified()))
        .filter(|a| {
            if is_public(a) {
                return true;
            }
            let loopback = ip_of(a).is_some_and(|ip| ip.is_loopback());
            if loopback {
                remote_loopback
            } else {
                remote_local
            }
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_public_ips_are_told_apart() {
        for local in [
            "10.1.0.2",
            "172.16.5.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "127.0.0.1",
            "0.0.0.0",
            "fd00::1",
            "fe80::1",
            "::1",
        ] {
            assert!(is_local_ip(local.parse().unwrap()), "{local}");
        }
        for public in ["198.18.0.2", "8.8.8.8", "100.128.0.1", "2001:db8::1"] {
            assert!(!is_local_ip(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn over_a_public_address_only_public_addresses_are_shared() {
        let announced = [
            a("/ip4/10.1.0.2/tcp/4001"),
            a("/ip4/127.0.0.1/tcp/4001"),
            a("/ip4/198.18.1.1/tcp/4001"),
            a("/ip4/198.18.0.2/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"),
            a("/ip4/0.0.0.0/tcp/4001"),
        ];
        let got = shareable(&announced, &a("/ip4/198.18.1.1/tcp/4001"));
        assert_eq!(got, announced[2..4].to_vec());
    }

    #[test]
    fn over_a_lan_private_addresses_are_kept_but_not_loopback() {
        let announced = [a("/ip4/10.1.0.2/tcp/4001"), a("/ip4/127.0.0.1/tcp/4001")];
        let got = shareable(&announced, &a("/ip4/10.1.0.3/tcp/5000"));
        assert_eq!(got, vec![announced[0].clone()]);
        let on_host = shareable(&announced, &a("/ip4/127.0.0.1/tcp/5000"));
        assert_eq!(on_host, announced.to_vec());
    }

    #[test]
    fn over_a_circuit_private_addresses_are_dropped() {
        let announced = [a("/ip4/10.1.0.2/tcp/4001")];
        let remote = a("/ip4/10.9.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit");
        assert!(shareable(&announced, &remote).is_empty());
        assert!(is_relayed(&remote));
    }
}
