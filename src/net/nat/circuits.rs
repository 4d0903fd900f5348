//! Relay reservations: one `/p2p-circuit` listener per chosen relay.
//!
//! Listening on `<relay address>/p2p/<relay>/p2p-circuit` makes the relay
//! client ask the relay for a reservation and renew it while the connection
//! to the relay lives; the listener closes when the reservation is refused
//! or lost, and the relay is then rested and another chosen
//! (`relays.rs`).

use std::collections::{BTreeSet, HashMap};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, Swarm};

use super::super::behaviour::Behaviour;
use super::super::discovery::split_peer_id;

/// The circuit listeners and which of them hold a reservation.
#[derive(Debug, Default)]
pub struct Circuits {
    listeners: HashMap<ListenerId, PeerId>,
    reserved: BTreeSet<PeerId>,
}

/// The address to listen on for a reservation on `relay`, reached at `addr`.
pub fn circuit_listen_addr(relay: PeerId, addr: &Multiaddr) -> Multiaddr {
    let (plain, _) = split_peer_id(addr);
    plain.with(Protocol::P2p(relay)).with(Protocol::P2pCircuit)
}

impl Circuits {
    /// Ask `relay` for a reservation. Returns the error text if the listener
    /// could not even start.
    pub fn reserve(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        relay: PeerId,
        addr: &Multiaddr,
    ) -> Result<(), String> {
        let listen = circuit_listen_addr(relay, addr);
        let id = swarm.listen_on(listen).map_err(|e| e.to_string())?;
        self.listeners.insert(id, relay);
        Ok(())
    }

    /// The relay accepted (or renewed) our reservation. Returns true the
    /// first time for this relay.
    pub fn accepted(&mut self, relay: PeerId) -> bool {
        self.reserved.insert(relay)
    }

    /// A listener closed: the relay it was on, if it was a circuit listener.
    pub fn closed(&mut self, listener: ListenerId) -> Option<PeerId> {
        let relay = self.listeners.remove(&listener)?;
        self.reserved.remove(&relay);
        Some(relay)
    }

    /// Drop the reservation on `relay` (the node became public).
    pub fn release(&mut self, swarm: &mut Swarm<Behaviour>, relay: &PeerId) {
        let ids: Vec<ListenerId> = self
            .listeners
            .iter()
            .filter(|(_, r)| *r == relay)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.listeners.remove(&id);
            swarm.remove_listener(id);
        }
        self.reserved.remove(relay);
    }

    /// The relays holding a reservation for us.
    pub fn reserved(&self) -> impl Iterator<Item = &PeerId> {
        self.reserved.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_circuit_address_names_the_relay_once() {
        let relay = PeerId::random();
        let with: Multiaddr = format!("/ip4/198.18.0.2/tcp/4001/p2p/{relay}")
            .parse()
            .unwrap();
        let without: Multiaddr = "/ip4/198.18.0.2/tcp/4001".parse().unwrap();
        let want: Multiaddr = format!("/ip4/198.18.0.2/tcp/4001/p2p/{relay}/p2p-circuit")
            .parse()
            .unwrap();
        assert_eq!(circuit_listen_addr(relay, &with), want);
        assert_eq!(circuit_listen_addr(relay, &without), want);
    }
}
