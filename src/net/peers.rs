//! The peer store's persistence: which peers the node has known, at which
//! addresses and when it last saw them, saved to the store (periodically and
//! at shutdown) and loaded at start.
//!
//! This is what lets a restarted node find the network again with no
//! bootstrap address and no mDNS (Lighthouse's `persisted_dht` is the model).
//! Only peers the node has actually been connected to are saved, and only for
//! `forget_peer_after_secs`: hearsay from the DHT is cheap to learn again, and
//! a list of dead peers would only slow every start.
//!
//! [`restore`] and [`snapshot`] translate between the peer store and the
//! saved records; `PeerSaver` writes the records off the event loop's
//! thread, periodically and once more at shutdown.

use std::collections::{HashMap, HashSet};

use libp2p::peer_store::memory_store::MemoryStore;
use libp2p::PeerId;
use tokio::task::JoinHandle;

use crate::store::{Store, StoredPeer};

use super::discovery::{is_unspecified, plain_addrs};

/// Most addresses saved per peer (the peer store keeps eight per peer too).
const MAX_ADDRS_PER_PEER: usize = 8;

/// When the node last had a connection to each peer it has known.
#[derive(Debug, Default)]
pub struct LastSeen(HashMap<PeerId, u64>);

impl LastSeen {
    /// The peer is connected (or was, until just now).
    pub fn touch(&mut self, peer: PeerId, now_ms: u64) {
        self.0.insert(peer, now_ms);
    }

    /// When the peer was last seen, if ever.
    pub fn get(&self, peer: &PeerId) -> Option<u64> {
        self.0.get(peer).copied()
    }
}

/// Put the saved peers into the peer store and the last-seen map; returns the
/// peers worth dialling, most recently seen first.
pub fn restore(
    saved: Vec<StoredPeer>,
    store: &mut MemoryStore,
    last_seen: &mut LastSeen,
    local: PeerId,
) -> Vec<PeerId> {
    let mut saved: Vec<StoredPeer> = saved
        .into_iter()
        .filter(|p| p.peer_id != local && !p.addrs.is_empty())
        .collect();
    saved.sort_by_key(|p| std::cmp::Reverse(p.last_seen_ms));
    let mut out = Vec::with_capacity(saved.len());
    for p in saved {
        // Oldest first, so the LRU keeps the freshest address in front.
        for addr in p.addrs.iter().rev() {
            store.add_address(&p.peer_id, addr);
        }
        last_seen.touch(p.peer_id, p.last_seen_ms);
        out.push(p.peer_id);
    }
    out
}

/// The peers to save: those seen within `forget_after_ms` (connected ones
/// count as seen now), with the addresses the peer store has for them.
pub fn snapshot(
    store: &MemoryStore,
    connected: &HashSet<PeerId>,
    last_seen: &LastSeen,
    now_ms: u64,
    forget_after_ms: u64,
) -> Vec<StoredPeer> {
    let mut out = Vec::new();
    for (peer, record) in store.record_iter() {
        let seen = if connected.contains(peer) {
            now_ms
        } else {
            match last_seen.get(peer) {
                Some(ms) => ms,
                None => continue,
            }
        };
        if now_ms.saturating_sub(seen) > forget_after_ms {
            continue;
        }
        let mut addrs = plain_addrs(record.addresses().filter(|a| !is_unspecified(a)));
        addrs.truncate(MAX_ADDRS_PER_PEER);
        if addrs.is_empty() {
            continue;
        }
        out.push(StoredPeer {
            peer_id: *peer,
            addrs,
            last_seen_ms: seen,
        });
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.last_seen_ms));
    out
}

/// Writes the peer list to the store without blocking the event loop: the
/// write runs on tokio's blocking pool, one at a time.
pub(super) struct PeerSaver {
    store: Store,
    /// The save in progress, if any.
    saving: Option<JoinHandle<()>>,
}

impl PeerSaver {
    pub(super) fn new(store: Store) -> Self {
        PeerSaver {
            store,
            saving: None,
        }
    }

    /// Save the peers `snapshot` returns, off the loop's thread; skipped
    /// (and no snapshot taken) while the previous save is still running.
    pub(super) fn save_in_background(&mut self, snapshot: impl FnOnce() -> Vec<StoredPeer>) {
        if self.saving.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let peers = snapshot();
        let store = self.store.clone();
        self.saving = Some(tokio::task::spawn_blocking(move || {
            match store.save_peers(&peers) {
                Ok(()) => tracing::debug!(count = peers.len(), "saved the known peers"),
                Err(e) => tracing::warn!(error = %e, "cannot save the known peers; will try again"),
            }
        }));
    }

    /// Wait for the save in progress, if any.
    pub(super) async fn finish(&mut self) {
        if let Some(running) = self.saving.take() {
            let _ = running.await;
        }
    }

    /// Save `peers` and wait for it (at shutdown), after any save still
    /// running, so that this one is the last word.
    pub(super) async fn save_now(&mut self, peers: Vec<StoredPeer>) {
        self.finish().await;
        let count = peers.len();
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.save_peers(&peers)).await {
            Ok(Ok(())) => tracing::info!(count, "saved the known peers"),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot save the known peers"),
            Err(e) => tracing::error!(error = %e, "saving the known peers panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::Multiaddr;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn saved_peers_round_trip_through_the_peer_store() {
        let local = PeerId::random();
        let (a, b) = (PeerId::random(), PeerId::random());
        let saved = vec![
            StoredPeer {
                peer_id: a,
                addrs: vec![addr(1), addr(2)],
                last_seen_ms: 1_000,
            },
            StoredPeer {
                peer_id: b,
                addrs: vec![addr(3)],
                last_seen_ms: 2_000,
            },
            StoredPeer {
                peer_id: local,
                addrs: vec![addr(4)],
                last_seen_ms: 3_000,
            },
        ];
        let mut store = MemoryStore::new(Default::default());
        let mut seen = LastSeen::default();
        let dial = restore(saved, &mut store, &mut seen, local);
        assert_eq!(dial, vec![b, a], "freshest first, never ourselves");

        let snap = snapshot(&store, &HashSet::from([a]), &seen, 5_000, 10_000);
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].peer_id, a, "connected counts as seen now");
        assert_eq!(snap[0].last_seen_ms, 5_000);
        assert_eq!(snap[0].addrs, vec![addr(1), addr(2)]);
        assert_eq!(snap[1].peer_id, b);
        assert_eq!(snap[1].last_seen_ms, 2_000);
    }

    #[test]
    fn peers_never_connected_or_long_gone_are_not_saved() {
        let mut store = MemoryStore::new(Default::default());
        let (heard_of, gone) = (PeerId::random(), PeerId::random());
        store.add_address(&heard_of, &addr(1));
        store.add_address(&gone, &addr(2));
        let mut seen = LastSeen::default();
        seen.touch(gone, 1_000);
        let snap = snapshot(&store, &HashSet::new(), &seen, 100_000, 10_000);
        assert!(snap.is_empty(), "{snap:?}");
    }
}
