//! Guard digests: a guarded buffer must not change across an op that does not write it.

use super::Context;
use crate::attribution::{self, Damage};
use crate::finding::{BufferRef, Culprit, Finding, FindingKind};
use crate::model::page_location;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use ttsan_events::{Digest, GuardDigest};

/// Page numbers listed in a finding at most; the count is always complete.
const MAX_LISTED_PAGES: usize = 256;

/// Guard bookkeeping: the last readable digest of each (buffer, chip).
#[derive(Debug, Default)]
pub struct GuardState {
    registered: HashSet<u64>,
    last: HashMap<u64, HashMap<u32, Vec<Digest>>>,
    /// Digests that were compared.
    pub checks: u64,
    /// Digests the backend could not take (the bytes were unreadable).
    pub unreadable: u64,
}

impl GuardState {
    /// A buffer becomes guarded.
    pub fn register(&mut self, buffer: u64) {
        self.registered.insert(buffer);
    }

    /// A buffer stops being guarded (or is freed).
    pub fn unregister(&mut self, buffer: u64) {
        self.registered.remove(&buffer);
        self.last.remove(&buffer);
    }

    /// Number of guarded buffers.
    pub fn guarded(&self) -> usize {
        self.registered.len()
    }

    /// Compares a digest with the previous one of the same buffer and chip.
    pub fn check(&mut self, ctx: &Context<'_>, g: &GuardDigest) -> Option<Finding> {
        if !g.readable {
            // An unreadable digest proves nothing; it must never count as "unchanged".
            self.unreadable += 1;
            return None;
        }
        let prev = self.last.entry(g.buffer).or_default().insert(g.device, g.pages.clone())?;
        self.checks += 1;
        let changed: Vec<u64> =
            (0..prev.len().max(g.pages.len())).filter(|&i| prev.get(i) != g.pages.get(i)).map(|i| i as u64).collect();
        if changed.is_empty() {
            return None;
        }
        let op = ctx.ops.get(g.after_op?)?;
        if op.writes(g.buffer) {
            return None;
        }
        let info = ctx.registry.get(g.buffer)?;
        let geometry = ctx.registry.geometry();
        let page_size = info.page_size();
        let damage: Vec<Damage> = changed
            .iter()
            .filter_map(|&p| page_location(info, geometry, p))
            .map(|(unit, addr)| Damage {
                device: g.device,
                space: info.space,
                unit,
                range: addr..addr + page_size.max(1),
            })
            .collect();
        let first = damage.first();
        let mut f = Finding::at(
            FindingKind::GuardCorruption,
            Some(g.device),
            info.space,
            first.map(|d| d.unit),
            first.map(|d| d.range.start).unwrap_or(info.address),
            changed.len() as u64 * page_size,
        );
        let label = |i: u64| attribution::op_label(ctx.ops, i);
        let per_unit = ctx.registry.footprint_of(g.buffer).map(|fp| fp.max_len()).unwrap_or(0);
        let victim = BufferRef::new(info, per_unit, label);
        let related = attribution::rank(op, ctx.ops, ctx.registry, &damage, Some(g.buffer));
        f.culprit = Some(Culprit { op: op.name.to_string(), op_index: op.index, call: op.call });
        f.mechanism = format!(
            "{} of {} page(s) of guarded '{}' changed across op {}, which does not write it; {}",
            changed.len(),
            prev.len().max(g.pages.len()),
            victim.name,
            op.label(),
            attribution::mechanism(op, related.as_ref(), Some(&victim))
        );
        f.pages = changed.into_iter().take(MAX_LISTED_PAGES).collect();
        f.victim = Some(victim);
        f.related = related;
        Some(f)
    }
}
