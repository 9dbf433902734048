//! Collecting findings, merging repeats.

use crate::finding::{Finding, FindingKind};
use rustc_hash::FxHashMap as HashMap;

type Key = (FindingKind, Option<String>, Option<String>, Option<String>);

/// Findings so far, with repeats of the same kind, culprit op name, victim and related buffer
/// merged into one with a count (a stray write on 8 chips is one finding seen 8 times).
#[derive(Debug)]
pub struct FindingSet {
    findings: Vec<Finding>,
    index: HashMap<Key, usize>,
    limit: usize,
    dropped: u64,
}

impl FindingSet {
    /// An empty set keeping at most `limit` distinct findings.
    pub fn new(limit: usize) -> Self {
        FindingSet { findings: Vec::new(), index: HashMap::default(), limit, dropped: 0 }
    }

    /// Adds a finding, merging it into an earlier one with the same key.
    pub fn push(&mut self, finding: Finding) {
        let key = finding.dedup_key();
        if let Some(&i) = self.index.get(&key) {
            let existing = &mut self.findings[i];
            existing.count += finding.count;
            for d in finding.devices {
                if !existing.devices.contains(&d) {
                    existing.devices.push(d);
                }
            }
            existing.devices.sort_unstable();
            existing.confirmed_by_digest |= finding.confirmed_by_digest;
            return;
        }
        if self.findings.len() >= self.limit {
            self.dropped += finding.count;
            return;
        }
        self.index.insert(key, self.findings.len());
        self.findings.push(finding);
    }

    /// Marks the write finding of `op_index` on `victim` as confirmed by a digest; false if none.
    pub fn confirm_by_digest(&mut self, op_index: u64, victim: u64) -> bool {
        let hit = self.findings.iter_mut().find(|f| {
            f.culprit.as_ref().is_some_and(|c| c.op_index == op_index)
                && f.victim.as_ref().is_some_and(|v| v.id == victim)
                && matches!(
                    f.kind,
                    FindingKind::OobWrite
                        | FindingKind::UseAfterFree
                        | FindingKind::ForeignWrite
                        | FindingKind::WildWrite
                )
        });
        match hit {
            Some(f) => {
                f.confirmed_by_digest = true;
                true
            }
            None => false,
        }
    }

    /// Occurrences not stored because the distinct-finding limit was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The findings, worst kind first, then in order of discovery.
    pub fn into_sorted(self) -> Vec<Finding> {
        let mut v = self.findings;
        v.sort_by_key(|f| f.kind.severity());
        v
    }

    /// Number of distinct findings.
    pub fn len(&self) -> usize {
        self.findings.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }
}
