//! Sets of sequence numbers stored as sorted, disjoint, non-adjacent inclusive ranges — the shape
//! of a device's ledger and of what an agent has had acknowledged: usually one range `1..=N`, a
//! few more where reports are missing or were acknowledged out of order.

use serde::{Deserialize, Serialize};

/// An inclusive range of sequence numbers, as carried by acknowledgements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeqRange {
    /// First number.
    pub first: u64,
    /// Last number (≥ `first`).
    pub last: u64,
}

impl SeqRange {
    /// `first..=last`.
    pub fn new(first: u64, last: u64) -> Self {
        Self { first, last }
    }

    /// How many numbers.
    pub fn len(self) -> u64 {
        self.last.saturating_sub(self.first).saturating_add(1)
    }

    /// True for an inverted (invalid) range.
    pub fn is_empty(self) -> bool {
        self.first > self.last
    }
}

/// A set of `u64` as inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqSet {
    ranges: Vec<(u64, u64)>,
}

impl SeqSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from values in ascending order (duplicates allowed).
    pub fn from_sorted(values: impl IntoIterator<Item = u64>) -> Self {
        let mut s = Self::new();
        for v in values {
            match s.ranges.last_mut() {
                Some((_, end)) if v <= end.saturating_add(1) => *end = (*end).max(v),
                _ => s.ranges.push((v, v)),
            }
        }
        s
    }

    /// The set `lo..=hi` (empty when `lo > hi`).
    pub fn span(lo: u64, hi: u64) -> Self {
        Self { ranges: if lo <= hi { vec![(lo, hi)] } else { Vec::new() } }
    }

    /// Adds one value.
    pub fn insert(&mut self, v: u64) {
        self.insert_range(v, v);
    }

    /// Adds every value of `lo..=hi`.
    pub fn insert_range(&mut self, lo: u64, hi: u64) {
        if lo > hi {
            return;
        }
        // Ranges that overlap or touch [lo, hi] form one contiguous run [first, last).
        let first = self.ranges.partition_point(|&(_, end)| end.saturating_add(1) < lo);
        let last = self.ranges.partition_point(|&(start, _)| start <= hi.saturating_add(1));
        let (mut new_lo, mut new_hi) = (lo, hi);
        if first < last {
            new_lo = new_lo.min(self.ranges[first].0);
            new_hi = new_hi.max(self.ranges[last - 1].1);
        }
        self.ranges.splice(first..last, [(new_lo, new_hi)]);
    }

    /// Adds every value of `other`.
    pub fn union_with(&mut self, other: &SeqSet) {
        for &(lo, hi) in &other.ranges {
            self.insert_range(lo, hi);
        }
    }

    /// Whether `v` is in the set.
    pub fn contains(&self, v: u64) -> bool {
        let i = self.ranges.partition_point(|&(_, end)| end < v);
        self.ranges.get(i).is_some_and(|&(start, _)| start <= v)
    }

    /// Largest `n` such that every value `1..=n` is in the set (0 if 1 is missing).
    pub fn contiguous_from_one(&self) -> u64 {
        match self.ranges.first() {
            Some(&(1, end)) => end,
            _ => 0,
        }
    }

    /// Largest value, 0 when empty.
    pub fn max(&self) -> u64 {
        self.ranges.last().map_or(0, |r| r.1)
    }

    /// Number of values.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s + 1).sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges, ascending.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// The ranges as [`SeqRange`]s.
    pub fn seq_ranges(&self) -> Vec<SeqRange> {
        self.ranges.iter().map(|&(a, b)| SeqRange::new(a, b)).collect()
    }

    /// Removes every value of `lo..=hi`.
    pub fn remove_range(&mut self, lo: u64, hi: u64) {
        if lo > hi {
            return;
        }
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        for &(a, b) in &self.ranges {
            if b < lo || a > hi {
                out.push((a, b));
                continue;
            }
            if a < lo {
                out.push((a, lo - 1));
            }
            if b > hi {
                out.push((hi + 1, b));
            }
        }
        self.ranges = out;
    }

    /// Removes one value.
    pub fn remove(&mut self, v: u64) {
        self.remove_range(v, v);
    }

    /// Smallest value, if any.
    pub fn min(&self) -> Option<u64> {
        self.ranges.first().map(|r| r.0)
    }

    /// The smallest value ≥ `v` that is NOT in the set.
    pub fn next_absent(&self, v: u64) -> u64 {
        let i = self.ranges.partition_point(|&(_, end)| end < v);
        match self.ranges.get(i) {
            Some(&(start, end)) if start <= v => end.saturating_add(1),
            _ => v,
        }
    }

    /// Whether every value of `lo..=hi` is in the set.
    pub fn contains_range(&self, lo: u64, hi: u64) -> bool {
        if lo > hi {
            return true;
        }
        let i = self.ranges.partition_point(|&(_, end)| end < lo);
        self.ranges.get(i).is_some_and(|&(start, end)| start <= lo && end >= hi)
    }

    /// Drops every value below `v` and replaces it by the single range `1..v` when the set held
    /// everything below `v` — keeps the set small as old history is forgotten.
    pub fn collapse_below(&mut self, v: u64) {
        let i = self.ranges.partition_point(|&(_, end)| end < v);
        self.ranges.drain(..i);
        if v > 1 {
            self.insert_range(1, v - 1);
        }
    }

    /// How many values both sets hold.
    pub fn intersection_len(&self, other: &SeqSet) -> u64 {
        let (mut i, mut j, mut n) = (0, 0, 0u64);
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a0, a1) = self.ranges[i];
            let (b0, b1) = other.ranges[j];
            let (lo, hi) = (a0.max(b0), a1.min(b1));
            if lo <= hi {
                n += hi - lo + 1;
            }
            if a1 < b1 { i += 1 } else { j += 1 }
        }
        n
    }

    /// The values of `lo..=hi` that are in the set.
    pub fn within(&self, lo: u64, hi: u64) -> SeqSet {
        let mut out = self.clone();
        out.remove_range(0, lo.saturating_sub(1));
        if hi < u64::MAX {
            out.remove_range(hi + 1, u64::MAX);
        }
        out
    }

    /// Missing values between 1 and [`Self::max`], as inclusive ranges.
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut next = 1u64;
        for &(s, e) in &self.ranges {
            if s > next {
                out.push((next, s - 1));
            }
            next = e.saturating_add(1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_and_contains() {
        let mut s = SeqSet::new();
        for v in [5, 1, 3, 2, 7, 4, 10, 8] {
            s.insert(v);
        }
        assert_eq!(s.ranges(), &[(1, 5), (7, 8), (10, 10)]);
        assert!(s.contains(4) && !s.contains(6) && s.contains(10) && !s.contains(11));
        s.insert(9);
        s.insert(6);
        assert_eq!(s.ranges(), &[(1, 10)]);
        assert_eq!(s.contiguous_from_one(), 10);
        assert_eq!(s.len(), 10);
    }

    #[test]
    fn insert_range_merges_overlapping_and_touching() {
        let mut s = SeqSet::from_sorted([1, 2, 5, 9, 10, 20]);
        s.insert_range(3, 4);
        assert_eq!(s.ranges(), &[(1, 5), (9, 10), (20, 20)]);
        s.insert_range(8, 19);
        assert_eq!(s.ranges(), &[(1, 5), (8, 20)]);
        s.insert_range(30, 29);
        assert_eq!(s.ranges(), &[(1, 5), (8, 20)]);
        let mut u = SeqSet::span(100, 200);
        u.union_with(&s);
        assert_eq!(u.ranges(), &[(1, 5), (8, 20), (100, 200)]);
    }

    #[test]
    fn remove_split_and_queries() {
        let mut s = SeqSet::span(1, 10);
        s.remove_range(4, 6);
        assert_eq!(s.ranges(), &[(1, 3), (7, 10)]);
        s.remove(10);
        s.remove(1);
        assert_eq!(s.ranges(), &[(2, 3), (7, 9)]);
        assert_eq!(s.next_absent(2), 4);
        assert_eq!(s.next_absent(5), 5);
        assert_eq!(s.next_absent(7), 10);
        assert!(s.contains_range(7, 9) && !s.contains_range(3, 7));
        assert_eq!(s.min(), Some(2));
        s.collapse_below(8);
        assert_eq!(s.ranges(), &[(1, 9)]);
    }

    #[test]
    fn intersections() {
        let a = SeqSet::from_sorted([1, 2, 3, 10, 11, 12, 20]);
        let b = SeqSet::from_sorted([2, 3, 4, 11, 20, 21]);
        assert_eq!(a.intersection_len(&b), 4);
        assert_eq!(a.within(3, 11).ranges(), &[(3, 3), (10, 11)]);
        assert_eq!(SeqSet::new().intersection_len(&a), 0);
    }

    #[test]
    fn gaps_and_prefix() {
        let s = SeqSet::from_sorted([2, 3, 3, 4, 8, 9]);
        assert_eq!(s.ranges(), &[(2, 4), (8, 9)]);
        assert_eq!(s.gaps(), [(1, 1), (5, 7)]);
        assert_eq!(s.contiguous_from_one(), 0);
        assert_eq!(s.max(), 9);
        assert!(SeqSet::new().gaps().is_empty());
    }

    #[test]
    fn matches_a_plain_set_on_random_inserts() {
        use std::collections::BTreeSet;
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut s = SeqSet::new();
        let mut reference = BTreeSet::new();
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = x % 300;
            s.insert(v);
            reference.insert(v);
        }
        assert_eq!(s, SeqSet::from_sorted(reference.iter().copied()));
        for v in 0..320 {
            assert_eq!(s.contains(v), reference.contains(&v), "{v}");
        }
        assert!(s.ranges().windows(2).all(|w| w[0].1 + 1 < w[1].0));
    }
}
