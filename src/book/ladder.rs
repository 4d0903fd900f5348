//! The price-level index of one side of the book: which price levels exist,
//! where each one lives, and which is the best.
//!
//! Prices are mapped to *keys* so that both sides share one structure in which
//! the best level is always the smallest key (asks: key = price; bids: key =
//! `KEY_MAX - price`). The levels near the best price — where nearly all the
//! traffic is — sit in a direct-indexed ring of `len` ticks (a window of keys
//! `[base, base + len)`, slot = `key & (len - 1)`), with an occupancy bitmap and
//! a one-bit-per-word summary for finding the next level in a few word scans.
//! Levels outside the window live in an ordered map (`far`): the *front* (keys
//! before the window, better than anything in it) and the *back* (after it).
//! The best key and its handle are cached, so the matcher never searches.
//!
//! The window follows the market lazily, so that no sequence of requests can
//! make it move often: it is re-centred on the best level when the window has
//! emptied (a sweep or a crash went through it: the next best is wherever the
//! far map says) or when the front holds at least as many levels as the window
//! (and at least `MIN_FRONT`: the market has moved to better prices). Each
//! level moved by a re-centring has been paid for by the request that put it
//! in the front or took the window's levels away, so moves are amortised O(1)
//! per request; a single order far beyond the best, placed and cancelled again
//! and again, never moves the window. Slots are indexed modulo `len`, so a
//! re-centring only moves the levels that cross the window's edges.
//!
//! Invariants (checked by [`Ladder::check`]):
//! - every key is either in the window, with its slot and bit set, or in `far`
//!   outside the window; `front` counts the far keys before it;
//! - `best` is the smallest key and `best_handle` its level;
//! - the window is empty only when the ladder is, and the best is outside it
//!   only while the front is smaller than the re-centring threshold.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::market::MAX_UNITS;

/// Largest key a level can have; bid keys are `KEY_MAX - price`.
pub(crate) const KEY_MAX: u64 = MAX_UNITS;

/// Marks an empty slot or a missing handle.
pub(crate) const NIL: u32 = u32::MAX;

/// No level on this side.
const NO_BEST: u64 = u64::MAX;

/// Fewest front levels that justify moving a non-empty window.
const MIN_FRONT: usize = 8;

/// Price-level index of one side; values are level handles.
#[derive(Clone)]
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
    /// Levels outside the window.
    far: BTreeMap<u64, u32>,
    /// How many keys of `far` lie before the window.
    front: usize,
    /// Levels in the window.
    win: usize,
    /// Smallest key (`NO_BEST` when empty) and its level handle.
    best: u64,
    best_handle: u32,
    /// Levels moved by re-centring, for tests of the amortised bound.
    #[cfg(test)]
    moved: u64,
}

impl Ladder {
    /// An empty ladder with a window of `len` ticks (rounded up to a power of
    /// two, between 64 and 2^20).
    pub(crate) fn new(len: usize) -> Self {
        let len = len.clamp(64, 1 << 20).next_power_of_two();
        let words = len / 64;
        Ladder {
            base: 0,
            len: len as u64,
            mask: len as u64 - 1,
            slots: vec![NIL; len].into_boxed_slice(),
            bits: vec![0; words].into_boxed_slice(),
            summary: vec![0; words.div_ceil(64)].into_boxed_slice(),
            far: BTreeMap::new(),
            front: 0,
            win: 0,
            best: NO_BEST,
            best_handle: NIL,
            #[cfg(test)]
            moved: 0,
        }
    }

    /// Number of levels on this side.
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.win + self.far.len()
    }

    /// Key of the best level.
    #[inline]
    pub(crate) fn best(&self) -> Option<u64> {
        (self.best != NO_BEST).then_some(self.best)
    }

    /// Handle of the best level (`NIL` when the side is empty).
    #[inline]
    pub(crate) fn best_handle(&self) -> u32 {
        self.best_handle
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
        if self.best == NO_BEST {
            // Empty: put the window around the first level.
            self.base = key.saturating_sub(self.len / 4);
        }
        if self.in_window(key) {
            self.set_slot(key, handle);
            self.win += 1;
        } else {
            self.far.insert(key, handle);
            if key < self.base {
                self.front += 1;
            }
        }
        if key < self.best {
            self.best = key;
            self.best_handle = handle;
        }
        self.follow_best();
    }

    /// Removes the level at `key`, which must be there.
    pub(crate) fn remove(&mut self, key: u64) {
        if self.in_window(key) {
            self.clear_slot(key);
            self.win -= 1;
        } else {
            self.far.remove(&key);
            if key < self.base {
                self.front -= 1;
            }
        }
        if key != self.best {
            // Fewer levels in the window may make a front worth following.
            self.follow_best();
            return;
        }
        // The next best: the front if any (it is before everything else),
        // else the window after `key`, else the back.
        let next = if self.front > 0 {
            self.far.first_key_value().map(|(&k, &h)| (k, h))
        } else {
            let from = if key < self.base { self.base } else { key + 1 };
            match self.scan_window(from) {
                Some(k) => Some((k, self.slots[(k & self.mask) as usize])),
                None => self.far.first_key_value().map(|(&k, &h)| (k, h)),
            }
        };
        (self.best, self.best_handle) = next.unwrap_or((NO_BEST, NIL));
        self.follow_best();
    }

    /// Re-centres the window on the best level when the rules in the module
    /// documentation say so.
    #[inline]
    fn follow_best(&mut self) {
        if self.best == NO_BEST || self.in_window(self.best) {
            return;
        }
        if self.win == 0 || self.front >= self.win.max(MIN_FRONT) {
            self.recenter(self.best);
        }
    }

    /// The key of the next level after `key` (worse price), if any. `key` need
    /// not be a level itself.
    pub(crate) fn next_after(&self, key: u64) -> Option<u64> {
        let end = self.base + self.len;
        if key < self.base {
            if let Some((&k, _)) = self
                .far
                .range((Bound::Excluded(key), Bound::Excluded(self.base)))
                .next()
            {
                return Some(k);
            }
            if let Some(k) = self.scan_window(self.base) {
                return Some(k);
            }
        } else if self.in_window(key) {
            if let Some(k) = self.scan_window(key + 1) {
                return Some(k);
            }
        } else {
            return self
                .far
                .range((Bound::Excluded(key), Bound::Unbounded))
                .next()
                .map(|(k, _)| *k);
        }
        self.far.range(end..).next().map(|(k, _)| *k)
    }

    /// Moves the window so that `new_best` (the smallest key) sits a quarter
    /// into it. Only levels crossing the window's edges move.
    fn recenter(&mut self, new_best: u64) {
        let new_base = new_best.saturating_sub(self.len / 4);
        let new_end = new_base + self.len;
        if self.win > 0 {
            // Every key is at or after `new_best`, so the window only moves
            // towards better keys here: evict its part beyond the new end.
            debug_assert!(new_base < self.base);
            let old_end = self.base + self.len;
            let mut key = new_end.max(self.base);
            while let Some(k) = self.scan_range(key, old_end) {
                let handle = self.slots[(k & self.mask) as usize];
                self.clear_slot(k);
                self.far.insert(k, handle);
                self.win -= 1;
                self.count_move();
                key = k + 1;
            }
        }
        self.base = new_base;
        self.front = 0;
        while let Some((&k, &handle)) = self.far.first_key_value() {
            if k >= new_end {
                break;
            }
            self.far.remove(&k);
            self.set_slot(k, handle);
            self.win += 1;
            self.count_move();
        }
    }

    #[inline]
    fn count_move(&mut self) {
        #[cfg(test)]
        {
            self.moved += 1;
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
        if from >= to || self.win == 0 {
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
        let mut win = 0usize;
        let mut min = NO_BEST;
        for pos in 0..self.len as usize {
            let bit = self.bits[pos >> 6] >> (pos & 63) & 1 == 1;
            let slot = self.slots[pos];
            if bit != (slot != NIL) {
                return Err(format!("ladder slot {pos}: bit {bit} but handle {slot}"));
            }
            if bit {
                win += 1;
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
        if win != self.win {
            return Err(format!(
                "ladder counts {} window levels, holds {win}",
                self.win
            ));
        }
        let mut front = 0;
        for &k in self.far.keys() {
            if self.in_window(k) {
                return Err(format!("far key {k} inside the window at {}", self.base));
            }
            front += usize::from(k < self.base);
            min = min.min(k);
        }
        if front != self.front {
            return Err(format!(
                "ladder counts {} front levels, holds {front}",
                self.front
            ));
        }
        if min != self.best || self.get(min) != self.best_handle && min != NO_BEST {
            return Err(format!(
                "ladder best {}/{} but smallest key {min}/{}",
                self.best,
                self.best_handle,
                self.get(min)
            ));
        }
        if min == NO_BEST && self.best_handle != NIL {
            return Err("empty ladder with a best handle".into());
        }
        if self.win == 0 && !self.far.is_empty() {
            return Err("empty window while levels remain".into());
        }
        if self.best != NO_BEST
            && !self.in_window(self.best)
            && self.front >= self.win.max(MIN_FRONT)
        {
            return Err(format!("best {} left outside the window", self.best));
        }
        Ok(())
    }
}

impl std::fmt::Debug for Ladder {
    /// A summary: the slot arrays are thousands of entries long.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ladder")
            .field("best", &self.best())
            .field("base", &self.base)
            .field("len", &self.len)
            .field("window_levels", &self.win)
            .field("front_levels", &self.front)
            .field("far_levels", &self.far.len())
            .finish()
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
    fn a_better_level_far_before_the_window_is_found_without_moving_it() {
        let mut l = Ladder::new(64);
        for k in 500u64..540 {
            l.insert(k, k as u32);
        }
        l.insert(470, 470);
        l.check().unwrap();
        l.insert(3, 3);
        l.check().unwrap();
        assert_eq!(l.best(), Some(3));
        assert_eq!(l.best_handle(), 3);
        let mut expect: Vec<u64> = vec![3, 470];
        expect.extend(500..540);
        assert_eq!(keys(&l), expect);
        for k in expect {
            assert_eq!(l.get(k), k as u32);
        }
        assert_eq!(l.moved, 0);
        l.remove(3);
        l.remove(470);
        l.check().unwrap();
        assert_eq!(l.best(), Some(500));
    }

    #[test]
    fn placing_and_cancelling_far_beyond_the_best_never_moves_the_window() {
        let mut l = Ladder::new(64);
        for k in 1000u64..1040 {
            l.insert(k, k as u32);
        }
        let moved = l.moved;
        for i in 0..1000u64 {
            let far = if i % 2 == 0 { 10 } else { 900 - i % 300 };
            l.insert(far, 1);
            assert_eq!(l.best(), Some(far));
            l.remove(far);
            assert_eq!(l.best(), Some(1000));
        }
        l.check().unwrap();
        assert_eq!(l.moved, moved);
    }

    #[test]
    fn a_market_moving_to_better_prices_pulls_the_window_along() {
        let mut l = Ladder::new(64);
        // Stale levels stay behind while new levels keep improving on the
        // best, far beyond the window's start.
        for k in 10_000u64..10_010 {
            l.insert(k, 1);
        }
        let mut moved_per_insert = Vec::new();
        for i in 0..2000u64 {
            let before = l.moved;
            l.insert(9_000 - i * 3, 2);
            l.check().unwrap();
            moved_per_insert.push(l.moved - before);
        }
        assert_eq!(l.best(), Some(9_000 - 1999 * 3));
        // The window is on the action again, and moving it cost O(1) levels
        // per insert on average.
        assert!(l.in_window(l.best().unwrap()) || l.front < l.win.max(MIN_FRONT));
        assert!(l.moved <= 2 * 2010, "moved {}", l.moved);
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
