//! Refuse a p2p port another process already listens on.
//!
//! libp2p's TCP transport sets `SO_REUSEPORT` on every listening socket, so
//! that outbound dials can leave from the listen port (what hole punching
//! and observed-address discovery need). The price is that a second node
//! told to listen on a port the first one holds binds it too, and the
//! kernel then spreads incoming connections between the two. Before the
//! swarm listens, each fixed TCP port is bound once here *without*
//! `SO_REUSEPORT`: that bind fails while any other socket listens there, and
//! the probe is closed at once so the swarm's own bind (with reuse) follows.

use std::net::{IpAddr, SocketAddr, TcpListener};

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

use super::NetError;

/// Fail with [`NetError::Listen`] naming `addr` when its TCP port is taken.
/// Addresses that are not plain `/ip4|ip6/../tcp/<port>` with a fixed port
/// (port 0, DNS names, other transports) are left to the swarm.
pub fn check_free(addr: &Multiaddr) -> Result<(), NetError> {
    let Some(socket) = fixed_tcp_socket(addr) else {
        return Ok(());
    };
    match TcpListener::bind(socket) {
        Ok(probe) => {
            drop(probe);
            Ok(())
        }
        Err(e) => Err(NetError::Listen {
            addr: addr.clone(),
            reason: if e.kind() == std::io::ErrorKind::AddrInUse {
                "the address is already in use (is another node listening on this port?)"
                    .to_string()
            } else {
                e.to_string()
            },
        }),
    }
}

/// The socket address of `/ip4|ip6/<ip>/tcp/<port>` with a non-zero port.
fn fixed_tcp_socket(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut parts = addr.iter();
    let ip: IpAddr = match parts.next()? {
        Protocol::Ip4(ip) => ip.into(),
        Protocol::Ip6(ip) => ip.into(),
        _ => return None,
    };
    match parts.next()? {
        Protocol::Tcp(port) if port != 0 => Some(SocketAddr::new(ip, port)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_another_socket_listens_on_is_refused_and_named() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        let err = check_free(&addr).unwrap_err().to_string();
        assert!(err.contains(&addr.to_string()), "{err}");
        assert!(err.contains("already in use"), "{err}");
        drop(held);
        check_free(&addr).unwrap();
    }

    #[test]
    fn port_zero_and_dns_are_left_to_the_swarm() {
        for a in ["/ip4/127.0.0.1/tcp/0", "/dns4/example.org/tcp/4001"] {
            check_free(&a.parse().unwrap()).unwrap();
        }
    }
}
