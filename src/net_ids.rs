//! The content-addressed id of a gossip message.
//!
//! It hashes the signed source together with the data: identical bytes from
//! two publishers (two empty nodes' heartbeats in the same millisecond) are
//! two messages, while a copy of one publisher's message, forwarded twice or
//! replayed, is recognised as a duplicate. The network's gossipsub and the
//! engine's simulated network use this same function.

use libp2p::PeerId;

/// The message id of `data` published by `source`.
pub fn message_id(source: &PeerId, data: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&source.to_bytes());
    h.update(data);
    *h.finalize().as_bytes()
}
