//! Sets of sequence numbers stored as sorted, disjoint, non-adjacent inclusive ranges — the shape
//! of a device's ledger: usually one range `1..=N`, a few more where reports are missing.

use serde::Serialize;

/// A set of `u64` as inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
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
    pub fn union_with(&mut self, other: &RangeSet) {
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
        let mut s = RangeSet::new();
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
        let mut s = RangeSet::from_sorted([1, 2, 5, 9, 10, 20]);
        s.insert_range(3, 4);
        assert_eq!(s.ranges(), &[(1, 5), (9, 10), (20, 20)]);
        s.insert_range(8, 19);
        assert_eq!(s.ranges(), &[(1, 5), (8, 20)]);
        s.insert_range(30, 29);
        assert_eq!(s.ranges(), &[(1, 5), (8, 20)]);
        let mut u = RangeSet::span(100, 200);
        u.union_with(&s);
        assert_eq!(u.ranges(), &[(1, 5), (8, 20), (100, 200)]);
    }

    #[test]
    fn gaps_and_prefix() {
        let s = RangeSet::from_sorted([2, 3, 3, 4, 8, 9]);
        assert_eq!(s.ranges(), &[(2, 4), (8, 9)]);
        assert_eq!(s.gaps(), [(1, 1), (5, 7)]);
        assert_eq!(s.contiguous_from_one(), 0);
        assert_eq!(s.max(), 9);
        assert!(RangeSet::new().gaps().is_empty());
    }

    #[test]
    fn matches_a_plain_set_on_random_inserts() {
        use std::collections::BTreeSet;
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut s = RangeSet::new();
        let mut reference = BTreeSet::new();
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = x % 300;
            s.insert(v);
            reference.insert(v);
        }
        assert_eq!(s, RangeSet::from_sorted(reference.iter().copied()));
        for v in 0..320 {
            assert_eq!(s.contains(v), reference.contains(&v), "{v}");
        }
        assert!(s.ranges().windows(2).all(|w| w[0].1 + 1 < w[1].0));
    }
}
