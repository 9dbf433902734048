//! The byte ranges an op (or the host) wrote on one chip, coalesced.
//!
//! Kernels write element by element or page by page; the trace wants one `Write` per
//! contiguous run per unit, and the digest checker wants to know which pages changed. Both
//! read this log.

use std::collections::BTreeMap;
use std::ops::Range;
use ttsan_events::{Space, Unit};

/// Written ranges per (space, unit), each set kept sorted, disjoint and non-adjacent.
#[derive(Debug, Default, Clone)]
pub struct WriteLog {
    runs: BTreeMap<(Space, Unit), BTreeMap<u64, u64>>,
}

impl WriteLog {
    /// An empty log.
    pub fn new() -> Self {
        WriteLog::default()
    }

    /// Adds `[start, start + len)` on `unit`, merging with touching runs.
    pub fn add(&mut self, space: Space, unit: Unit, start: u64, len: u64) {
        if len == 0 {
            return;
        }
        let set = self.runs.entry((space, unit)).or_default();
        let (mut s, mut e) = (start, start + len);
        // A run starting at or before `s` may touch it.
        if let Some((&ps, &pe)) = set.range(..=s).next_back() {
            if pe >= s {
                s = ps;
                e = e.max(pe);
                set.remove(&ps);
            }
        }
        // Runs starting inside (or right at the end of) the new one are swallowed.
        let swallowed: Vec<(u64, u64)> = set.range(s..=e).map(|(&a, &b)| (a, b)).collect();
        for (a, b) in swallowed {
            e = e.max(b);
            set.remove(&a);
        }
        set.insert(s, e);
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Every run, ordered by space, unit and address.
    pub fn runs(&self) -> impl Iterator<Item = (Space, Unit, Range<u64>)> + '_ {
        self.runs.iter().flat_map(|(&(space, unit), set)| set.iter().map(move |(&s, &e)| (space, unit, s..e)))
    }

    /// The runs on one unit.
    pub fn runs_on(&self, space: Space, unit: Unit) -> impl Iterator<Item = Range<u64>> + '_ {
        self.runs.get(&(space, unit)).into_iter().flat_map(|set| set.iter().map(|(&s, &e)| s..e))
    }

    /// Units with at least one run in `space`.
    pub fn units(&self, space: Space) -> impl Iterator<Item = Unit> + '_ {
        self.runs.keys().filter(move |(s, _)| *s == space).map(|&(_, u)| u)
    }

    /// Forgets whatever was written in `[start, end)` on `unit` (writes the op reports later).
    pub fn remove(&mut self, space: Space, unit: Unit, start: u64, end: u64) {
        let Some(set) = self.runs.get_mut(&(space, unit)) else { return };
        let hit: Vec<(u64, u64)> = set.range(..end).filter(|(_, &e)| e > start).map(|(&a, &b)| (a, b)).collect();
        for (a, b) in hit {
            set.remove(&a);
            if a < start {
                set.insert(a, start);
            }
            if b > end {
                set.insert(end, b);
            }
        }
        if set.is_empty() {
            self.runs.remove(&(space, unit));
        }
    }

    /// Moves everything of `other` into this log.
    pub fn absorb(&mut self, other: WriteLog) {
        for (space, unit, r) in other.runs() {
            self.add(space, unit, r.start, r.end - r.start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_cuts_runs() {
        let u = Unit::Bank(0);
        let mut log = WriteLog::new();
        log.add(Space::Dram, u, 0, 100);
        log.add(Space::Dram, u, 200, 10);
        log.remove(Space::Dram, u, 50, 205);
        let runs: Vec<_> = log.runs_on(Space::Dram, u).collect();
        assert_eq!(runs, vec![0..50, 205..210]);
        log.remove(Space::Dram, u, 0, 300);
        assert!(log.is_empty());
    }

    #[test]
    fn adjacent_and_overlapping_writes_become_one_run() {
        let mut log = WriteLog::new();
        let b = Unit::Bank(0);
        log.add(Space::Dram, b, 100, 10);
        log.add(Space::Dram, b, 120, 10);
        log.add(Space::Dram, b, 110, 10);
        log.add(Space::Dram, b, 50, 5);
        log.add(Space::Dram, b, 52, 60);
        log.add(Space::Dram, Unit::Bank(1), 0, 4);
        let runs: Vec<_> = log.runs().collect();
        assert_eq!(runs, vec![(Space::Dram, b, 50..130), (Space::Dram, Unit::Bank(1), 0..4)]);
    }

    #[test]
    fn gaps_stay_separate() {
        let mut log = WriteLog::new();
        for i in 0..4 {
            log.add(Space::L1, Unit::Bank(0), i * 64, 40);
        }
        assert_eq!(log.runs().count(), 4);
    }
}
