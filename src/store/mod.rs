//! Durable state: what must survive a crash.
//!
//! One redb database in the data dir holds the node's own orders and their
//! fill sequences, the fill log, the id sequence numbers and the known peers.
//! Every write is one ACID transaction, committed with fsync before the caller
//! acknowledges anything that depends on it. The identity key is the one thing
//! kept outside, as its own file (see `net::identity`).

mod codec;
mod engine_state;
mod peers;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::Database;

pub use peers::StoredPeer;

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "peerbook.redb";

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    #[error("stored record {what} is corrupt: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("cannot encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A handle on the node's database; cheap to clone and shared by tasks.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
}

impl Store {
    /// Open (or create) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(DB_FILE);
        let db = Database::create(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let store = Store {
            db: Arc::new(db),
            path,
        };
        store.init_tables()?;
        Ok(store)
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Create every table up front, so readers never meet a missing table.
    fn init_tables(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        peers::init(&tx)?;
        engine_state::init(&tx)?;
        tx.commit()?;
        Ok(())
    }
}
