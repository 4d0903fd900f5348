//! Map from order id to the order's slot in the arena.
//!
//! Every cancel, amend and move starts with this lookup, so it must be fast:
//! the standard `HashMap` (SwissTable) with a one-multiply hash instead of
//! SipHash. The multiply is keyed with a per-book random seed, so order ids
//! chosen by a remote peer cannot be crafted to collide. Nothing the book
//! outputs depends on the map's iteration order, so the seed does not make the
//! book nondeterministic.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use super::order::OrderKey;

/// Folded 64x64->128 multiply: a fast hash with good high and low bits.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Builds [`KeyHasher`]s sharing one random seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyHash {
    seed: u64,
}

impl KeyHash {
    fn random() -> Self {
        KeyHash {
            seed: RandomState::new().hash_one(K) | 1,
        }
    }
}

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;
    #[inline]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            seed: self.seed,
            hash: 0,
        }
    }
}

/// Hashes one `u64` with a single multiply; other input is folded in bytewise.
pub(crate) struct KeyHasher {
    seed: u64,
    hash: u64,
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash = fold_mul(self.hash ^ u64::from(b) ^ self.seed, K);
        }
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.hash = fold_mul(x ^ self.seed, K ^ self.hash);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Order id -> arena slot.
pub(crate) type IdMap = HashMap<OrderKey, u32, KeyHash>;

/// An empty map with room for `capacity` orders.
pub(crate) fn new_id_map(capacity: usize) -> IdMap {
    HashMap::with_capacity_and_hasher(capacity, KeyHash::random())
}
