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

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use redb::Database;

#[cfg(test)]
pub(crate) use engine_state::tape_trade;
pub use engine_state::{LoadWindow, Pruned, Retention, StoreStats};
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
    /// redb refuses everything after a failed write until the database is
    /// reopened; this names the failure that started it.
    #[error("the database refuses writes since a write failed ({first}); it is reopened once the disk takes writes again")]
    Failed { first: String },
    #[error("the database {path} is closed: reopening it after a failure failed")]
    Closed { path: PathBuf },
}

impl StoreError {
    /// redb's "an earlier I/O error happened, reopen me".
    fn is_previous_io(&self) -> bool {
        matches!(self, StoreError::Db(redb::Error::PreviousIo))
    }
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
///
/// After a failed write redb refuses every later operation until the
/// database is reopened, so the handle can [`reopen`](Store::reopen) it
/// in place (the engine does while it probes a failing disk). Every
/// operation holds a read lock on the open database for its duration;
/// reopening waits for them and closes the old database before opening
/// the file again (a file is open once per process).
#[derive(Clone)]
pub struct Store {
    db: Arc<RwLock<Option<Database>>>,
    path: PathBuf,
    /// The write failure that made redb refuse writes, until reopened.
    first_failure: Arc<Mutex<Option<String>>>,
}

/// The open database, held for one operation.
pub(crate) struct Open<'a>(RwLockReadGuard<'a, Option<Database>>);

impl Deref for Open<'_> {
    type Target = Database;
    fn deref(&self) -> &Database {
        // `Store::db` hands out an `Open` only over `Some`.
        self.0.as_ref().expect("an open database")
    }
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
            db: Arc::new(RwLock::new(Some(db))),
            path,
            first_failure: Arc::default(),
        };
        store.init_tables()?;
        Ok(store)
    }

    /// The open database, for one operation.
    pub(crate) fn db(&self) -> Result<Open<'_>, StoreError> {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            return Err(StoreError::Closed {
                path: self.path.clone(),
            });
        }
        Ok(Open(guard))
    }

    /// Close the database and open it again: what redb needs before it
    /// takes writes after one failed. Waits for operations in progress.
    pub fn reopen(&self) -> Result<(), StoreError> {
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        // Close first: the file cannot be open twice.
        *guard = None;
        let db = Database::create(&self.path).map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        *guard = Some(db);
        *self.failure() = None;
        tracing::info!(path = %self.path.display(), "database reopened");
        Ok(())
    }

    fn failure(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.first_failure.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Say why a write failed: an I/O failure as it was (and remembered),
    /// redb's later "an earlier I/O error happened" as that first failure.
    pub(crate) fn explain<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        result.map_err(|e| {
            let mut first = self.failure();
            match (&*first, &e) {
                (Some(f), e) if e.is_previous_io() => StoreError::Failed { first: f.clone() },
                (None, StoreError::Db(redb::Error::Io(_))) => {
                    *first = Some(e.to_string());
                    e
                }
                _ => e,
            }
        })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Create every table up front, so readers never meet a missing table.
    fn init_tables(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        let tx = db.begin_write()?;
        peers::init(&tx)?;
        engine_state::init(&tx)?;
        tx.commit()?;
        Ok(())
    }
}
