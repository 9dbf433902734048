//! Collecting findings, merging repeats.

use crate::finding::{Finding, FindingKind, Relation};
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

    /// Marks a write finding of an op named `op` into unallocated memory (no victim) as confirmed
    /// by a canary digest; false if there is none. Canary pages cannot place the bytes as
    /// exactly as the write did, so the op and "no victim" are what must agree.
    pub fn confirm_by_canary(&mut self, op: &str) -> bool {
        let hit = self.findings.iter_mut().find(|f| {
            f.culprit.as_ref().is_some_and(|c| c.op == op)
                && f.victim.is_none()
                && matches!(f.kind, FindingKind::OobWrite | FindingKind::UseAfterFree | FindingKind::WildWrite)
        });
        match hit {
            Some(f) => {
                f.confirmed_by_digest = true;
                true
            }
            None => false,
        }
    }

    /// Marks the write finding of `op_index` that buffer `related` of the op explains (an
    /// overrun past it, a write through its stale address) as confirmed by a digest; false if
    /// there is none. A write that ran across several buffers is one write finding naming the
    /// first; the digests of the others confirm it too.
    pub fn confirm_related(&mut self, op_index: u64, related: u64) -> bool {
        let hit = self.findings.iter_mut().find(|f| {
            matches!(f.kind, FindingKind::OobWrite | FindingKind::UseAfterFree)
                && f.culprit.as_ref().is_some_and(|c| c.op_index == op_index)
                && f.related.as_ref().is_some_and(|r| r.buffer.id == related)
        });
        match hit {
            Some(f) => {
                f.confirmed_by_digest = true;
                true
            }
            None => false,
        }
    }

    /// Folds a guard corruption into an earlier one by the same op call that an overrun of the
    /// same buffer of the op explains: one overrun that ran across several guarded buffers is one
    /// finding, as writes mode reports its one write, and its victim is the buffer closest to
    /// the overrun's start (the first one hit). Returns whether it was folded.
    pub fn fold_overrun(&mut self, f: &Finding) -> bool {
        let overrun = |g: &Finding| {
            g.kind == FindingKind::GuardCorruption
                && g.related.as_ref().is_some_and(|r| matches!(r.relation, Relation::PastEnd | Relation::BeforeStart))
        };
        let (Some(c), Some(r), Some(v)) = (&f.culprit, &f.related, &f.victim) else { return false };
        if !overrun(f) {
            return false;
        }
        let same = |g: &Finding| {
            overrun(g)
                && g.culprit.as_ref().is_some_and(|gc| gc.op_index == c.op_index)
                && g.related.as_ref().is_some_and(|gr| gr.buffer.id == r.buffer.id && gr.relation == r.relation)
                && g.victim.as_ref().is_some_and(|gv| gv.id != v.id)
        };
        let Some(i) = self.findings.iter().position(same) else { return false };
        let g = &mut self.findings[i];
        g.count += f.count;
        for &d in &f.devices {
            if !g.devices.contains(&d) {
                g.devices.push(d);
            }
        }
        g.devices.sort_unstable();
        let closer = g.related.as_ref().is_some_and(|gr| r.distance < gr.distance);
        let other = if closer {
            let old = g.victim.as_ref().map(|x| x.name.clone()).unwrap_or_default();
            let (devices, count) = (std::mem::take(&mut g.devices), g.count);
            *g = f.clone();
            g.devices = devices;
            g.count = count;
            old
        } else {
            v.name.clone()
        };
        let note = format!("; the same overrun also changed '{other}'");
        if !g.mechanism.contains(&note) {
            g.mechanism.push_str(&note);
        }
        let key = g.dedup_key();
        self.index.insert(key, i);
        true
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
}
