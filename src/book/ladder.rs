//! The price-level index of one side of the book: which price levels exist,
//! where each one lives, and which is the best.
//!
//! Prices are mapped to *keys* so that both sides share one structure in which
//! the best level is always the smallest key (asks: key = price; bids: key =
//! `KEY_MAX - price`). The levels near the best price — where nearly all the
//! traffic is — sit in a direct-indexed ring of `len` ticks (a window of keys
//! `[base, base + len)`, slot = `key & (len - 1)`), with an occupancy bitmap and
//! a one-bit-per-word summary for finding the next level in a few word scans.
//! Levels further away than the window live in an ordered map (`far`).
//!
//! Invariants (checked by [`Ladder::check`]):
//! - every key is either in the window, with its slot and bit set, or in `far`
//!   with `key >= base + len` (far keys are only ever *worse* than the window);
//! - `best` is the smallest key, and it is inside the window.
//!
//! When the best level leaves the window (a new better level far away, or a
//! sweep that empties the whole window) the window is re-centred on the new
//! best. Because slots are indexed modulo `len`, re-centring only moves the
//! levels that cross the window's edge, never the ones that stay inside; this
//! keeps a crash that sweeps far through the book correct and cheap.

use std::collections::BTreeMap;

use crate::market::MAX_UNITS;

/// Largest key a level can have; bid keys are `KEY_MAX - price`.
pub(crate) const KEY_MAX: u64 = MAX_UNITS;

/// Marks an empty slot or a missing handle.
pub(crate) const NIL: u32 = u32::MAX;

/// No level on this side.
const NO_BEST: u64 = u64::MAX;

/// Price-level index of one side; values are level handles.
#[derive(Clone, Debug)]
pub(crate) struct Ladder {
    /// Smallest key of the window.
    base: u64,
    /// Window length in ticks (a power of two) and its mask.
    len: u64,
    mask: u64,
    /// Level handle per ring position, `NIL` when empty.
    slots: Box<[u32]>,
    /// One bit per ring position: a level is there.
    bits: Box<[u64]>,
    /// One bit per word of `bits`: that word is non-zero.
    summary: Box<[u64]>,
    /// Levels beyond the window (all keys `>= base + len`).
    far: BTreeMap<u64, u32>,
    /// Smallest key, or `NO_BEST`.
    best: u64,
    /// Number of levels.
    count: usize,
}

impl Ladder {
    /// An empty ladder with a window of `len` ticks (rounded up to a power of
    /// two, at least 64).
    pub(crate) fn new(len: usize) -> Self {
        let len = len.clamp(64, 1 << 24).next_power_of_two();
        let words = len / 64;
        Ladder {
            base: 0,
            len: len as u64,
            mask: len as u64 - 1,
            slots: vec![NIL; len].into_boxed_slice(),
            bits: vec![0; words].into_boxed_slice(),
            summary: vec![0; words.div_ceil(64)].into_boxed_slice(),
            far: BTreeMap::new(),
            best: NO_BEST,
            count: 0,
        }
    }

    /// Number of levels on this side.
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Key of the best level.
    #[inline]
    pub(crate) fn best(&self) -> Option<u64> {
        (self.best != NO_BEST).then_some(self.best)
    }

    /// Handle of the best level (`NIL` when the side is empty). The best level
    /// is always in the window, so this is one load.
    #[inline]
    pub(crate) fn best_handle(&self) -> u32 {
        if self.best == NO_BEST {
            NIL
        } else {
            self.slots[(self.best & self.mask) as usize]
        }
    }

    #[inline]
    fn in_window(&self, key: u64) -> bool {
        key.wrapping_sub(self.base) < self.len
    }

    /// Handle of the level at `key`, or `NIL`.
    #[inline]
    pub(crate) fn get(&self, key: u64) -> u32 {
        if self.in_window(key) {
            self.slots[(key & self.mask) as usize]
        } else {
            self.far.get(&key).copied().unwrap_or(NIL)
        }
    }

    /// Adds a level that is not there yet.
    pub(crate) fn insert(&mut self, key: u64, handle: u32) {
        debug_assert_eq!(self.get(key), NIL);
        if self.best == NO_BEST || key < self.base {
            // The new level is the best and lies before the window (or the
            // side was empty): move the window so that it starts near it.
            self.recenter(key);
        }
        if self.in_window(key) {
            self.set_slot(key, handle);
        } else {
            self.far.insert(key, handle);
        }
        if key < self.best {
            self.best = key;
        }
        self.count += 1;
    }

    /// Removes the level at `key`, which must be there.
    pub(crate) fn remove(&mut self, key: u64) {
        if self.in_window(key) {
            self.clear_slot(key);
        } else {
            self.far.remove(&key);
        }
        self.count -= 1;
        if key == self.best {
            self.best = match self.scan_window(key + 1) {
                Some(next) => next,
                None => match self.far.keys().next().copied() {
                    Some(next) => {
                        // The window is empty: jump to where the levels are.
                        self.recenter(next);
                        next
                    }
                    None => NO_BEST,
                },
            };
        }
    }

    /// The key of the next level after `key` (worse price), if any. `key` need
    /// not be a level itself.
    pub(crate) fn next_after(&self, key: u64) -> Option<u64> {
        if key < self.base {
            return self.best();
        }
        if self.in_window(key) {
            if let Some(next) = self.scan_window(key + 1) {
                return Some(next);
            }
            return self.far.keys().next().copied();
        }
        self.far
            .range((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded))
            .next()
            .map(|(k, _)| *k)
    }

    /// Moves the window so that `new_best` (the smallest key from now on) sits
    /// a quarter into it. Only levels crossing the window's edges move.
    fn recenter(&mut self, new_best: u64) {
        let new_base = new_best.saturating_sub(self.len / 4);
        if self.count > 0 && new_base < self.base {
            // Window moves towards better keys: evict the window's tail that
            // falls beyond the new end.
            let new_end = new_base + self.len;
            let old_end = self.base + self.len;
            let from = new_end.max(self.base);
            let mut key = from;
            while let Some(k) = self.scan_range(key, old_end) {
                let handle = self.slots[(k & self.mask) as usize];
                self.clear_slot(k);
                self.far.insert(k, handle);
                key = k + 1;
            }
        }
        // When moving towards worse keys every level is at or after
        // `new_best`, so nothing in the window falls before the new base; the
        // callers guarantee the window is then empty.
        self.base = new_base;
        let end = new_base + self.len;
        while let Some((&k, &handle)) = self.far.first_key_value() {
            if k >= end {
                break;
            }
            self.far.remove(&k);
            self.set_slot(k, handle);
        }
    }

    #[inline]
    fn set_slot(&mut self, key: u64, handle: u32) {
        let pos = (key & self.mask) as usize;
        self.slots[pos] = handle;
        let w = pos >> 6;
        self.bits[w] |= 1 << (pos & 63);
        self.summary[w >> 6] |= 1 << (w & 63);
    }

    #[inline]
    fn clear_slot(&mut self, key: u64) {
        let pos = (key & self.mask) as usize;
        self.slots[pos] = NIL;
        let w = pos >> 6;
        self.bits[w] &= !(1 << (pos & 63));
        if self.bits[w] == 0 {
            self.summary[w >> 6] &= !(1 << (w & 63));
        }
    }

    /// First level key in `[from, base + len)`, `from` inside the window or at
    /// its end.
    #[inline]
    fn scan_window(&self, from: u64) -> Option<u64> {
        self.scan_range(from, self.base + self.len)
    }

    /// First level key in `[from, to)`, both within `[base, base + len]`.
    fn scan_range(&self, from: u64, to: u64) -> Option<u64> {
        if from >= to {
            return None;
        }
        let start = (from & self.mask) as usize;
        let count = (to - from) as usize;
        let len = self.len as usize;
        let first_end = (start + count).min(len);
        if let Some(pos) = self.first_set(start, first_end) {
            return Some(from + (pos - start) as u64);
        }
        if start + count > len {
            if let Some(pos) = self.first_set(0, start + count - len) {
                return Some(from + (len - start + pos) as u64);
            }
        }
        None
    }

    /// First set ring position in `[a, b)`, `b <= len`.
    #[inline]
    fn first_set(&self, a: usize, b: usize) -> Option<usize> {
        if a >= b {
            return None;
        }
        let mut w = a >> 6;
        let mut word = self.bits[w] & (!0u64 << (a & 63));
        loop {
            if word != 0 {
                let pos = (w << 6) + word.trailing_zeros() as usize;
                return (pos < b).then_some(pos);
            }
            w = self.next_word(w + 1)?;
            if (w << 6) >= b {
                return None;
            }
            word = self.bits[w];
        }
    }

    /// First non-zero word of `bits` at index `>= w`.
    #[inline]
    fn next_word(&self, w: usize) -> Option<usize> {
        let words = self.bits.len();
        if w >= words {
            return None;
        }
        let mut s = w >> 6;
        let mut word = self.summary[s] & (!0u64 << (w & 63));
        loop {
            if word != 0 {
                return Some((s << 6) + word.trailing_zeros() as usize);
            }
            s += 1;
            if s >= self.summary.len() {
                return None;
            }
            word = self.summary[s];
        }
    }

    /// Every (key, handle) in key order.
    pub(crate) fn iter(&self) -> LadderIter<'_> {
        LadderIter {
            ladder: self,
            next: self.best(),
        }
    }

    /// Checks the invariants listed in the module documentation.
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut seen = 0usize;
        let mut min = NO_BEST;
        for pos in 0..self.len as usize {
            let bit = self.bits[pos >> 6] >> (pos & 63) & 1 == 1;
            let slot = self.slots[pos];
            if bit != (slot != NIL) {
                return Err(format!("ladder slot {pos}: bit {bit} but handle {slot}"));
            }
            if bit {
                seen += 1;
                // Key of this ring position inside the window.
                let offset = (pos as u64).wrapping_sub(self.base) & self.mask;
                min = min.min(self.base + offset);
            }
        }
        for (w, word) in self.bits.iter().enumerate() {
            let s = self.summary[w >> 6] >> (w & 63) & 1 == 1;
            if s != (*word != 0) {
                return Err(format!("ladder summary bit of word {w} is {s}"));
            }
        }
        let end = self.base + self.len;
        for &k in self.far.keys() {
            if k < end {
                return Err(format!(
                    "far key {k} inside or before the window [{}, {end})",
                    self.base
                ));
            }
            min = min.min(k);
        }
        seen += self.far.len();
        if seen != self.count {
            return Err(format!("ladder counts {} levels, holds {seen}", self.count));
        }
        if min != self.best {
            return Err(format!("ladder best {} but smallest key {min}", self.best));
        }
        if self.best != NO_BEST && !self.in_window(self.best) {
            return Err(format!(
                "best {} outside the window at {}",
                self.best, self.base
            ));
        }
        Ok(())
    }
}

/// Iterator over a ladder's levels, best first.
pub(crate) struct LadderIter<'a> {
    ladder: &'a Ladder,
    next: Option<u64>,
}

impl Iterator for LadderIter<'_> {
    type Item = (u64, u32);

    fn next(&mut self) -> Option<(u64, u32)> {
        let key = self.next?;
        self.next = self.ladder.next_after(key);
        Some((key, self.ladder.get(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(l: &Ladder) -> Vec<u64> {
        l.iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn levels_iterate_in_key_order_across_window_and_far_map() {
        let mut l = Ladder::new(64);
        for (i, k) in [1000u64, 1010, 990, 5000, 1063, 20].iter().enumerate() {
            l.insert(*k, i as u32);
            l.check().unwrap();
        }
        assert_eq!(keys(&l), vec![20, 990, 1000, 1010, 1063, 5000]);
        assert_eq!(l.best(), Some(20));
        assert_eq!(l.get(1010), 1);
        assert_eq!(l.get(1011), NIL);
    }

    #[test]
    fn removing_the_best_finds_the_next_even_far_away() {
        let mut l = Ladder::new(64);
        for k in [100u64, 101, 150, 10_000, 1_000_000] {
            l.insert(k, k as u32);
        }
        for expect in [101, 150, 10_000, 1_000_000] {
            let best = l.best().unwrap();
            l.remove(best);
            l.check().unwrap();
            assert_eq!(l.best(), Some(expect));
            assert_eq!(l.best_handle(), expect as u32);
        }
        l.remove(1_000_000);
        l.check().unwrap();
        assert_eq!(l.best(), None);
        assert_eq!(l.best_handle(), NIL);
    }

    #[test]
    fn a_better_level_far_before_the_window_recenters_it() {
        let mut l = Ladder::new(64);
        for k in 500u64..540 {
            l.insert(k, k as u32);
        }
        l.insert(470, 470);
        l.check().unwrap();
        l.insert(3, 3);
        l.check().unwrap();
        assert_eq!(l.best(), Some(3));
        let mut expect: Vec<u64> = vec![3, 470];
        expect.extend(500..540);
        assert_eq!(keys(&l), expect);
        for k in expect {
            assert_eq!(l.get(k), k as u32);
        }
    }

    #[test]
    fn keys_that_wrap_around_the_ring_scan_in_order() {
        let mut l = Ladder::new(64);
        // base = 100 - 16 = 84; ring positions of 84..148 wrap at 128.
        for k in [100u64, 127, 128, 130, 147] {
            l.insert(k, k as u32);
        }
        l.check().unwrap();
        assert_eq!(keys(&l), vec![100, 127, 128, 130, 147]);
        assert_eq!(l.next_after(127), Some(128));
        assert_eq!(l.next_after(131), Some(147));
        assert_eq!(l.next_after(147), None);
    }
}
