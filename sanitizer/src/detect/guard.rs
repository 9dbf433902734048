//! Guard digests: a guarded buffer must not change across an op that does not write it.

use super::Context;
use crate::attribution::{self, Damage};
use crate::finding::{BufferRef, Culprit, Finding, FindingKind, Related, Relation};
use crate::model::page_location;
use crate::ops::OpInfo;
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
        let summary = format!(
            "{} of {} page(s) of guarded '{}' changed across op {}, which does not write it{}",
            changed.len(),
            prev.len().max(g.pages.len()),
            victim.name,
            op.label(),
            changed_bytes(&damage)
        );
        if let (false, Some((writer, stale))) = (explains(related.as_ref()), late_writer(ctx, &damage, op.index)) {
            // The op the digest changed across owns nothing near the damage, but the bytes are a
            // freed buffer's stale address: the op that used that buffer wrote after the free (an
            // op whose writes landed late, or a cached address reused).
            f.mechanism = format!(
                "{summary}, and none of its buffers explains it; the changed bytes are the stale address of '{}' \
                 ({}), freed by {}: op {}, which used it, wrote there after it was freed (a write that landed late)",
                stale.buffer.name,
                stale.buffer.role,
                stale.buffer.freed_by.as_deref().unwrap_or("the host"),
                writer.label()
            );
            f.culprit = Some(Culprit::of(writer));
            f.related = Some(stale);
        } else {
            f.culprit = Some(Culprit::of(op));
            f.mechanism = format!("{summary}; {}", attribution::mechanism(op, related.as_ref(), Some(&victim)));
            f.related = related;
        }
        f.pages = changed.into_iter().take(MAX_LISTED_PAGES).collect();
        f.victim = Some(victim);
        Some(f)
    }
}

/// The changed bytes as far as page digests tell: the span of the first unit's changed pages.
fn changed_bytes(damage: &[Damage]) -> String {
    let Some(first) = damage.first() else { return String::new() };
    let on_unit = damage.iter().filter(|d| d.unit == first.unit);
    let (start, end) = on_unit.fold((u64::MAX, 0), |(s, e), d| (s.min(d.range.start), e.max(d.range.end)));
    let unit = match first.unit {
        ttsan_events::Unit::Bank(b) => format!("bank {b}"),
        ttsan_events::Unit::Core(c) => format!("core ({},{})", c.x, c.y),
    };
    format!(
        " (within [{start:#x}, {end:#x}) on {unit}; digests have page granularity: at least one byte of each changed \
         page was written)"
    )
}

/// Whether a relation found among the culprit's own buffers is a real explanation (see
/// [`attribution::close`]).
pub(super) fn explains(related: Option<&Related>) -> bool {
    related.is_some_and(attribution::close)
}

/// The most recent call of the op that allocated the most recently freed buffer whose old bytes
/// the damage hits, and that buffer, related as a stale address.
pub(super) fn late_writer<'a>(ctx: &'a Context<'_>, damage: &[Damage], before: u64) -> Option<(&'a OpInfo, Related)> {
    let label = |i: u64| attribution::op_label(ctx.ops, i);
    for d in damage {
        for hit in ctx.registry.freed_at(d.device, d.space, d.unit, d.range.clone()) {
            let Some(freed) = ctx.registry.get(hit.id) else { continue };
            let Some(alloc_op) = freed.alloc_op.and_then(|i| ctx.ops.get(i)) else { continue };
            let Some(writer) = ctx.ops.last_call(&alloc_op.name).filter(|w| w.index <= before) else { continue };
            let per_unit = ctx.registry.footprint_of(hit.id).map(|f| f.max_len()).unwrap_or(0);
            let related = Related {
                buffer: BufferRef::new(freed, per_unit, label),
                relation: Relation::StaleAddress,
                distance: 0,
                peer_device: None,
            };
            return Some((writer, related));
        }
    }
    None
}
