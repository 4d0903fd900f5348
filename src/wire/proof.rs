//! Records any node can verify as their owner's, whoever delivers them.
//!
//! An owner signs each gossip batch once: its signature covers the author,
//! the market, the batch's send time, its number of items and the root of a
//! Merkle tree over its items (blake3, 16-byte nodes, leaves and inner nodes
//! hashed apart). Every node that keeps one of those items keeps, with it,
//! the item's place in its batch (index and path) and the batch's
//! signature; anyone it hands the item to (in a sync page) can rebuild the
//! root from the item and the path and check the owner's signature. So a
//! record cannot be planted, changed or forged by whoever relays it, and
//! one signature (about 12 µs) covers up to `max_batch_items` records.
//!
//! Leaves hash an explicit layout of each item's fields, not its CBOR, so
//! the proof does not depend on how a serializer writes a message.

use std::sync::Arc;

use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::{FillMsg, Heartbeat, Item, OrderState};

/// One node of a batch's Merkle tree.
pub type Node = [u8; NODE];
/// Bytes of a tree node (128-bit second-preimage resistance).
pub const NODE: usize = 16;
/// Most items one batch can carry (a path is at most 16 nodes long).
pub const MAX_BATCH: usize = u16::MAX as usize;

const LEAF: u8 = 0;
const INNER: u8 = 1;
const DOMAIN: &str = "peerbook 2026-12 gossip batch v2";

/// The hash of one item, as a leaf of its batch's tree.
pub fn leaf(item: &Item) -> Node {
    let mut h = blake3::Hasher::new();
    h.update(&[LEAF]);
    match item {
        Item::Order(o) => {
            h.update(b"O");
            order_fields(&mut h, o);
        }
        Item::Cancel { seq } => {
            h.update(b"C");
            h.update(&seq.to_le_bytes());
        }
        Item::Fill(f) => {
            h.update(b"F");
            fill_fields(&mut h, f);
        }
        Item::Heartbeat(hb) => {
            h.update(b"H");
            heartbeat_fields(&mut h, hb);
        }
    }
    first_bytes(&h)
}

fn order_fields(h: &mut blake3::Hasher, o: &OrderState) {
    h.update(&o.seq.to_le_bytes());
    h.update(&[o.side as u8]);
    h.update(&o.price.0.to_le_bytes());
    h.update(&o.qty.0.to_le_bytes());
    h.update(&o.remaining.0.to_le_bytes());
    h.update(&o.ver.to_le_bytes());
    h.update(&o.created_ms.to_le_bytes());
    match o.expires_ms {
        Some(t) => h.update(&[1]).update(&t.to_le_bytes()),
        None => h.update(&[0]),
    };
}

fn fill_fields(h: &mut blake3::Hasher, f: &FillMsg) {
    h.update(&f.maker_seq.to_le_bytes());
    h.update(&f.fill_seq.to_le_bytes());
    h.update(&f.mseq.to_le_bytes());
    h.update(&[f.maker_side as u8]);
    h.update(&f.price.0.to_le_bytes());
    h.update(&f.qty.0.to_le_bytes());
    h.update(&f.maker_remaining.0.to_le_bytes());
    h.update(&f.maker_ver.to_le_bytes());
    let taker = f.taker.to_bytes();
    h.update(&(taker.len() as u16).to_le_bytes());
    h.update(&taker);
    h.update(&f.taker_seq.to_le_bytes());
    h.update(&f.take_n.to_le_bytes());
    h.update(&f.ts_ms.to_le_bytes());
}

fn heartbeat_fields(h: &mut blake3::Hasher, hb: &Heartbeat) {
    h.update(&hb.open.to_le_bytes());
    h.update(&hb.digest);
    h.update(&hb.watermark.to_le_bytes());
    h.update(&hb.fills.to_le_bytes());
}

fn inner(l: &Node, r: &Node) -> Node {
    let mut h = blake3::Hasher::new();
    h.update(&[INNER]);
    h.update(l);
    h.update(r);
    first_bytes(&h)
}

fn first_bytes(h: &blake3::Hasher) -> Node {
    let mut out = [0u8; NODE];
    out.copy_from_slice(&h.finalize().as_bytes()[..NODE]);
    out
}

/// The root of a tree over `leaves` and each leaf's path (siblings from
/// the bottom up, concatenated). A level with an odd count lifts its last
/// node unchanged.
pub fn tree(leaves: &[Node]) -> (Node, Vec<Vec<u8>>) {
    let mut paths: Vec<Vec<u8>> = vec![Vec::new(); leaves.len()];
    if leaves.is_empty() {
        return ([0; NODE], paths);
    }
    // Which node of the current level each leaf is under.
    let mut at: Vec<usize> = (0..leaves.len()).collect();
    let mut level: Vec<Node> = leaves.to_vec();
    while level.len() > 1 {
        for (leaf, i) in at.iter_mut().enumerate() {
            let sib = *i ^ 1;
            if sib < level.len() {
                paths[leaf].extend_from_slice(&level[sib]);
            }
            *i /= 2;
        }
        level = level
            .chunks(2)
            .map(|c| {
                if c.len() == 2 {
                    inner(&c[0], &c[1])
                } else {
                    c[0]
                }
            })
            .collect();
    }
    (level[0], paths)
}

/// The root a leaf at `index` of `count` rebuilds with `path`, if the path
/// has exactly the right length for that place.
pub fn root_of(leaf: Node, index: usize, count: usize, path: &[u8]) -> Option<Node> {
    if index >= count || count == 0 || !path.len().is_multiple_of(NODE) {
        return None;
    }
    let mut sibs = path.chunks_exact(NODE);
    let (mut cur, mut i, mut len) = (leaf, index, count);
    while len > 1 {
        let sib = i ^ 1;
        if sib < len {
            let mut s = [0u8; NODE];
            s.copy_from_slice(sibs.next()?);
            cur = if i % 2 == 0 {
                inner(&cur, &s)
            } else {
                inner(&s, &cur)
            };
        }
        i /= 2;
        len = len.div_ceil(2);
    }
    sibs.next().is_none().then_some(cur)
}

/// What an author signs for one batch.
pub fn signed_message(
    author: &PeerId,
    market: &str,
    sent_ms: u64,
    count: u16,
    root: &Node,
) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(DOMAIN);
    let a = author.to_bytes();
    h.update(&(a.len() as u16).to_le_bytes());
    h.update(&a);
    h.update(&(market.len() as u32).to_le_bytes());
    h.update(market.as_bytes());
    h.update(&sent_ms.to_le_bytes());
    h.update(&count.to_le_bytes());
    h.update(root);
    *h.finalize().as_bytes()
}

/// The public key a peer id carries (ed25519 ids inline their key), if any.
pub fn public_key(peer: &PeerId) -> Option<PublicKey> {
    let mh: &libp2p::multihash::Multihash<64> = peer.as_ref();
    // Code 0 is the identity multihash: the digest is the key itself.
    if mh.code() != 0 {
        return None;
    }
    PublicKey::try_decode_protobuf(mh.digest()).ok()
}

/// A batch's signature, as a sync page carries it (its author is the owner
/// of the records that point at it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BatchSig {
    pub sent_ms: u64,
    pub count: u16,
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

/// Where an item sits in a signed batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// Which of the page's `batches`.
    pub batch: u32,
    pub index: u16,
    /// Sibling nodes, bottom up, concatenated.
    #[serde(with = "serde_bytes")]
    pub path: Vec<u8>,
}

/// A record and where it sits in its owner's signed batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proven<T> {
    pub item: T,
    pub proof: Proof,
}

/// What a node keeps with a record it may hand on: the batch signature is
/// shared by every record of the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub batch: Arc<BatchSig>,
    pub index: u16,
    pub path: Box<[u8]>,
}

/// Why a record does not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Forged {
    #[error("no signature")]
    Unsigned,
    #[error("its proof does not lead to a root")]
    BadProof,
    #[error("the signature is not the owner's")]
    BadSignature,
    #[error("the owner's id carries no public key")]
    NoKey,
    #[error("the record does not match what it claims")]
    Inconsistent,
}

impl Forged {
    /// A short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Forged::Unsigned => "unsigned",
            Forged::BadProof => "bad_proof",
            Forged::BadSignature => "bad_signature",
            Forged::NoKey => "no_key",
            Forged::Inconsistent => "inconsistent",
        }
    }
}

/// Sign a batch of items as `key` on `market`: the signature, and each
/// item's stored proof.
pub fn sign_batch(
    key: &Keypair,
    market: &str,
    sent_ms: u64,
    items: &[Item],
) -> (Vec<u8>, Vec<Stored>) {
    let leaves: Vec<Node> = items.iter().map(leaf).collect();
    let (root, paths) = tree(&leaves);
    let count = u16::try_from(items.len()).unwrap_or(u16::MAX);
    let msg = signed_message(&key.public().to_peer_id(), market, sent_ms, count, &root);
    // Signing with an ed25519 key cannot fail; an empty signature would
    // only make every record of the batch unverifiable, never accepted.
    let sig = key.sign(&msg).unwrap_or_default();
    let batch = Arc::new(BatchSig {
        sent_ms,
        count,
        sig: sig.clone(),
    });
    let stored = paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| Stored {
            batch: batch.clone(),
            index: i as u16,
            path: path.into_boxed_slice(),
        })
        .collect();
    (sig, stored)
}

/// Check a batch that arrived whole (gossip): the author's signature over
/// its items; each item's stored proof when it holds.
pub fn open_batch(
    author: &PeerId,
    market: &str,
    sent_ms: u64,
    items: &[Item],
    sig: &[u8],
) -> Result<Vec<Stored>, Forged> {
    if items.len() > MAX_BATCH {
        return Err(Forged::BadProof);
    }
    let key = public_key(author).ok_or(Forged::NoKey)?;
    let leaves: Vec<Node> = items.iter().map(leaf).collect();
    let (root, paths) = tree(&leaves);
    let count = items.len() as u16;
    let msg = signed_message(author, market, sent_ms, count, &root);
    if !key.verify(&msg, sig) {
        return Err(Forged::BadSignature);
    }
    let batch = Arc::new(BatchSig {
        sent_ms,
        count,
        sig: sig.to_vec(),
    });
    Ok(paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| Stored {
            batch: batch.clone(),
            index: i as u16,
            path: path.into_boxed_slice(),
        })
        .collect())
}

/// Checks the records of one sync page against their owners' signatures,
/// verifying each batch signature once.
pub struct PageVerifier<'a> {
    market: &'a str,
    batches: &'a [BatchSig],
    /// Batches already checked, by (owner, batch index, root).
    good: std::collections::HashSet<(PeerId, u32, Node)>,
    keys: std::collections::HashMap<PeerId, Option<PublicKey>>,
}

impl<'a> PageVerifier<'a> {
    pub fn new(market: &'a str, batches: &'a [BatchSig]) -> PageVerifier<'a> {
        PageVerifier {
            market,
            batches,
            good: Default::default(),
            keys: Default::default(),
        }
    }

    /// Whether `item`, with `proof`, is `owner`'s signed record; the proof
    /// to keep with it when it is.
    pub fn check(&mut self, owner: &PeerId, item: &Item, proof: &Proof) -> Result<Stored, Forged> {
        let batch = self
            .batches
            .get(proof.batch as usize)
            .ok_or(Forged::BadProof)?;
        let root = root_of(
            leaf(item),
            usize::from(proof.index),
            usize::from(batch.count),
            &proof.path,
        )
        .ok_or(Forged::BadProof)?;
        if !self.good.contains(&(*owner, proof.batch, root)) {
            let key = self
                .keys
                .entry(*owner)
                .or_insert_with(|| public_key(owner))
                .as_ref()
                .ok_or(Forged::NoKey)?;
            let msg = signed_message(owner, self.market, batch.sent_ms, batch.count, &root);
            if !key.verify(&msg, &batch.sig) {
                return Err(Forged::BadSignature);
            }
            self.good.insert((*owner, proof.batch, root));
        }
        Ok(Stored {
            batch: Arc::new(batch.clone()),
            index: proof.index,
            path: proof.path.clone().into_boxed_slice(),
        })
    }
}

/// Builds the batch list of a page being written: each distinct batch once
/// (batches are told apart by their signature).
#[derive(Default)]
pub struct PageBatches {
    list: Vec<BatchSig>,
    index: std::collections::HashMap<Vec<u8>, u32>,
}

impl PageBatches {
    /// The wire proof of a stored one, its batch added to the page.
    pub fn proof(&mut self, s: &Stored) -> Proof {
        let batch = match self.index.get(&s.batch.sig) {
            Some(i) => *i,
            None => {
                self.list.push((*s.batch).clone());
                let i = (self.list.len() - 1) as u32;
                self.index.insert(s.batch.sig.clone(), i);
                i
            }
        };
        Proof {
            batch,
            index: s.index,
            path: s.path.to_vec(),
        }
    }

    pub fn into_list(self) -> Vec<BatchSig> {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{Price, Qty, Side};

    fn order(seq: u64) -> Item {
        Item::Order(OrderState {
            seq,
            side: Side::Sell,
            price: Price(100 + seq),
            qty: Qty(5),
            remaining: Qty(5),
            ver: 0,
            created_ms: 1,
            expires_ms: None,
        })
    }

    #[test]
    fn every_leaf_of_every_batch_size_proves_its_root() {
        for n in 1..40u64 {
            let items: Vec<Item> = (1..=n).map(order).collect();
            let leaves: Vec<Node> = items.iter().map(leaf).collect();
            let (root, paths) = tree(&leaves);
            for (i, p) in paths.iter().enumerate() {
                assert_eq!(
                    root_of(leaves[i], i, n as usize, p),
                    Some(root),
                    "n={n} i={i}"
                );
                // The same path at another place fails. (For another count
                // the path may still lead to the root: the count is signed.)
                if n > 1 {
                    assert_ne!(
                        root_of(leaves[i], (i + 1) % n as usize, n as usize, p),
                        Some(root)
                    );
                }
            }
        }
    }

    #[test]
    fn a_signed_batch_opens_for_its_author_only_and_a_changed_item_breaks_it() {
        let key = Keypair::ed25519_from_bytes([7; 32]).unwrap();
        let me = key.public().to_peer_id();
        let other = Keypair::ed25519_from_bytes([8; 32])
            .unwrap()
            .public()
            .to_peer_id();
        let items: Vec<Item> = (1..=5).map(order).collect();
        let (sig, stored) = sign_batch(&key, "BTC-USD", 9, &items);
        assert_eq!(stored.len(), 5);
        assert!(open_batch(&me, "BTC-USD", 9, &items, &sig).is_ok());
        assert_eq!(
            open_batch(&other, "BTC-USD", 9, &items, &sig),
            Err(Forged::BadSignature)
        );
        assert_eq!(
            open_batch(&me, "ETH-USD", 9, &items, &sig),
            Err(Forged::BadSignature)
        );
        let mut changed = items.clone();
        changed[2] = order(33);
        assert_eq!(
            open_batch(&me, "BTC-USD", 9, &changed, &sig),
            Err(Forged::BadSignature)
        );

        // Handed on in a page: each record checks on its own.
        let mut page = PageBatches::default();
        let proofs: Vec<Proof> = stored.iter().map(|s| page.proof(s)).collect();
        let batches = page.into_list();
        assert_eq!(batches.len(), 1);
        let mut v = PageVerifier::new("BTC-USD", &batches);
        for (item, p) in items.iter().zip(&proofs) {
            assert!(v.check(&me, item, p).is_ok());
            assert_eq!(v.check(&other, item, p), Err(Forged::BadSignature));
        }
        assert!(v.check(&me, &order(99), &proofs[0]).is_err());
        // A batch that claims another count is not the one signed.
        let mut recounted = batches.clone();
        recounted[0].count += 1;
        let mut v = PageVerifier::new("BTC-USD", &recounted);
        assert!(v.check(&me, &items[0], &proofs[0]).is_err());
    }
}
