//! The known peers and their addresses, so a restarted node finds the network
//! again with no bootstrap and no mDNS (what the predecessors kept in
//! `.peers.json`, here one transaction in the database).

use libp2p::{Multiaddr, PeerId};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::{Store, StoreError};

/// peer id (bytes) -> CBOR `PeerRecord`.
const PEERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("peers");

/// A peer worth dialling after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPeer {
    pub peer_id: PeerId,
    pub addrs: Vec<Multiaddr>,
    /// When the node last had a connection to it (ms since the Unix epoch).
    pub last_seen_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct PeerRecord {
    addrs: Vec<Vec<u8>>,
    last_seen_ms: u64,
}

pub(super) fn init(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(PEERS)?;
    Ok(())
}

impl Store {
    /// Replace the saved peer list with `peers`, atomically.
    pub fn save_peers(&self, peers: &[StoredPeer]) -> Result<(), StoreError> {
        let result = self.save_peers_once(peers);
        self.explain(result)
    }

    fn save_peers_once(&self, peers: &[StoredPeer]) -> Result<(), StoreError> {
        let db = self.db()?;
        let tx = db.begin_write()?;
        {
            let mut table = tx.open_table(PEERS)?;
            table.retain(|_, _| false)?;
            for p in peers {
                let rec = PeerRecord {
                    addrs: p.addrs.iter().map(|a| a.to_vec()).collect(),
                    last_seen_ms: p.last_seen_ms,
                };
                let bytes = encode("peer record", &rec)?;
                table.insert(p.peer_id.to_bytes().as_slice(), bytes.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The saved peer list. A record that cannot be read is skipped with a
    /// warning rather than failing the start: a peer list is a hint.
    pub fn load_peers(&self) -> Result<Vec<StoredPeer>, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let table = tx.open_table(PEERS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let peer_id = match PeerId::from_bytes(k.value()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a saved peer with a bad peer id");
                    continue;
                }
            };
            let rec: PeerRecord = match decode("peer record", v.value()) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(%peer_id, error = %e, "skipping an unreadable saved peer");
                    continue;
                }
            };
            let addrs = rec
                .addrs
                .into_iter()
                .filter_map(|b| Multiaddr::try_from(b).ok())
                .collect();
            out.push(StoredPeer {
                peer_id,
                addrs,
                last_seen_ms: rec.last_seen_ms,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_peers_come_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let peer = StoredPeer {
            peer_id: PeerId::random(),
            addrs: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
            last_seen_ms: 42,
        };
        {
            let store = Store::open(dir.path()).unwrap();
            store.save_peers(std::slice::from_ref(&peer)).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load_peers().unwrap(), vec![peer.clone()]);
        store.save_peers(&[]).unwrap();
        assert!(store.load_peers().unwrap().is_empty());
    }
}
