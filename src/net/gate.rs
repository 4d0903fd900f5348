//! Whether a take request was ever written, and a deadline that covers the
//! whole request, stream opening included.
//!
//! request-response reports a lost connection or a timeout the same way
//! whether the request had left or not; for a take that difference is the
//! difference between "in doubt" (the maker may have filled it) and "failed
//! cleanly". And its timeout starts only once the stream is open, which the
//! swarm lets take 10 s, so a take to a stalled maker waited 13 s rather
//! than `net.take_timeout_ms`.
//!
//! The gate is shared between the event loop and the take protocol's codec.
//! Every take request is registered (by a hash of its bytes: a take id is
//! unique, and the engine never has two identical requests out at once)
//! before it is handed to request-response. The codec marks it *written*
//! just before it writes the first byte, and refuses to write one that was
//! *abandoned*. The event loop abandons a request whose deadline passed:
//! under the one lock, either the codec got there first (the request may
//! have reached the maker: a timeout, in doubt) or the request can never be
//! written any more (it failed cleanly). A failure reported by libp2p for a
//! request still *waiting* likewise never left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A request's key in the gate: a hash of its bytes.
pub type GateKey = [u8; 32];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Waiting,
    Written,
    Abandoned,
}

/// The shared register of outbound take requests (see the module comment).
#[derive(Clone, Debug, Default)]
pub struct WriteGate(Arc<Mutex<HashMap<GateKey, State>>>);

/// What became of a request by the time it was settled or abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Its first byte was about to be written, or was: it may have arrived.
    Written,
    /// It was never written and never will be.
    NotWritten,
}

impl WriteGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GateKey, State>> {
        // A panic elsewhere while holding the lock leaves a map that is still
        // consistent (every change is one insert or remove).
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a request about to be sent; `None` if an identical one is
    /// out already (that one is then not tracked: its failures count as
    /// maybe delivered).
    pub fn register(&self, data: &[u8]) -> Option<GateKey> {
        let key = *blake3::hash(data).as_bytes();
        let mut map = self.lock();
        if map.contains_key(&key) {
            map.remove(&key);
            return None;
        }
        map.insert(key, State::Waiting);
        Some(key)
    }

    /// The codec is about to write `data`: whether it may.
    pub fn try_write(&self, data: &[u8]) -> bool {
        let key = *blake3::hash(data).as_bytes();
        let mut map = self.lock();
        match map.get(&key) {
            Some(State::Abandoned) => false,
            Some(_) => {
                map.insert(key, State::Written);
                true
            }
            None => true,
        }
    }

    /// The request's deadline passed: it is never written from now on, if it
    /// was not already. The entry stays until libp2p settles the request
    /// ([`WriteGate::forget`]).
    pub fn abandon(&self, key: &GateKey) -> Fate {
        let mut map = self.lock();
        match map.get(key) {
            Some(State::Waiting) => {
                map.insert(*key, State::Abandoned);
                Fate::NotWritten
            }
            Some(State::Abandoned) => Fate::NotWritten,
            _ => Fate::Written,
        }
    }

    /// libp2p settled the request (answered or failed): drop its entry, and
    /// say whether it was written.
    pub fn forget(&self, key: &GateKey) -> Fate {
        match self.lock().remove(key) {
            Some(State::Waiting | State::Abandoned) => Fate::NotWritten,
            _ => Fate::Written,
        }
    }

    /// Requests tracked (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_failing_before_its_write_never_left() {
        let g = WriteGate::default();
        let k = g.register(b"take 1").unwrap();
        assert_eq!(g.forget(&k), Fate::NotWritten);
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn a_written_request_may_have_arrived() {
        let g = WriteGate::default();
        let k = g.register(b"take 1").unwrap();
        assert!(g.try_write(b"take 1"));
        assert_eq!(g.abandon(&k), Fate::Written);
        assert_eq!(g.forget(&k), Fate::Written);
    }

    #[test]
    fn an_abandoned_request_is_never_written() {
        let g = WriteGate::default();
        let k = g.register(b"take 1").unwrap();
        assert_eq!(g.abandon(&k), Fate::NotWritten);
        assert!(!g.try_write(b"take 1"), "written after its deadline");
        assert_eq!(g.forget(&k), Fate::NotWritten);
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn untracked_requests_are_written_and_count_as_maybe_delivered() {
        let g = WriteGate::default();
        assert!(g.try_write(b"sync"));
        let k = g.register(b"same").unwrap();
        assert!(g.register(b"same").is_none(), "a duplicate is not tracked");
        assert_eq!(g.forget(&k), Fate::Written);
    }
}
