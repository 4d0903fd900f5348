//! Set digests of open orders.
//!
//! A replica's digest is the wrapping sum of a 128-bit hash of every open
//! order (owner, id, side, price, quantities, version, created time). A sum
//! does not depend on the order in which orders arrived, can be updated in
//! O(1) on every change, and two replicas holding the same orders have the
//! same digest whatever happened before. The per-owner digests that go in
//! heartbeats are built the same way, so a market digest is the sum of its
//! owners' digests.

use libp2p::PeerId;

use crate::wire::OrderState;

/// An order-independent digest of a set of orders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Digest(u128);

impl Digest {
    pub const EMPTY: Digest = Digest(0);

    /// The hash of one order's state.
    pub fn of_order(owner: &PeerId, o: &OrderState) -> Digest {
        let mut h = blake3::Hasher::new();
        h.update(&owner.to_bytes());
        h.update(&o.seq.to_le_bytes());
        h.update(&[o.side as u8]);
        h.update(&o.price.0.to_le_bytes());
        h.update(&o.qty.0.to_le_bytes());
        h.update(&o.remaining.0.to_le_bytes());
        h.update(&o.ver.to_le_bytes());
        h.update(&o.created_ms.to_le_bytes());
        if let Some(at) = o.expires_ms {
            h.update(&at.to_le_bytes());
        }
        let out = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&out.as_bytes()[..16]);
        Digest(u128::from_le_bytes(b))
    }

    pub fn add(&mut self, d: Digest) {
        self.0 = self.0.wrapping_add(d.0);
    }

    pub fn remove(&mut self, d: Digest) {
        self.0 = self.0.wrapping_sub(d.0);
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    pub fn from_bytes(b: [u8; 16]) -> Digest {
        Digest(u128::from_le_bytes(b))
    }

    /// Hex form shown on the API.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{Price, Qty, Side};

    fn order(seq: u64, remaining: u64) -> OrderState {
        OrderState {
            seq,
            side: Side::Sell,
            price: Price(10),
            qty: Qty(5),
            remaining: Qty(remaining),
            ver: 0,
            created_ms: 1,
            expires_ms: None,
        }
    }

    #[test]
    fn digest_ignores_arrival_order_and_sees_every_change() {
        let p = PeerId::random();
        let (a, b) = (
            Digest::of_order(&p, &order(1, 5)),
            Digest::of_order(&p, &order(2, 5)),
        );
        let mut x = Digest::EMPTY;
        x.add(a);
        x.add(b);
        let mut y = Digest::EMPTY;
        y.add(b);
        y.add(a);
        assert_eq!(x, y);
        let mut z = y;
        z.remove(b);
        z.add(Digest::of_order(&p, &order(2, 4)));
        assert_ne!(z, y);
        z.remove(a);
        z.remove(Digest::of_order(&p, &order(2, 4)));
        assert_eq!(z, Digest::EMPTY);
    }
}
