//! Checking a write against what the writing op owns.

use super::Context;
use crate::attribution::{self, Damage};
use crate::finding::{BufferRef, Culprit, Finding, FindingKind, Related, Relation};
use crate::registry::Hit;
pub use ttsan_events::ranges::subtract;
use ttsan_events::{Unit, Write};

/// Checks one write; `None` when the op owns every byte it wrote.
///
/// - bytes in buffers the op declares are fine;
/// - a write that covers a declared buffer and runs past it is an `oob-write`;
/// - otherwise bytes in the quarantine of recent frees make a `use-after-free`,
///   bytes of another live buffer a `foreign-write`, and bytes of nothing a `wild-write`.
///
/// Host writes (no op) may write any live buffer; only freed or unallocated bytes are flagged.
pub fn check(ctx: &Context<'_>, w: &Write) -> Option<Finding> {
    let range = w.address..w.address.saturating_add(w.len);
    if range.is_empty() {
        return None;
    }
    let op = w.op.and_then(|i| ctx.ops.get(i));
    let live = ctx.registry.live_at(w.device, w.space, w.unit, range.clone());
    // An op may write what it declares as output or scratch; its inputs it only reads.
    let owned = |id: u64| op.is_none_or(|o| o.writes(id));
    // The common case, one owned buffer covering the whole write, needs no further work.
    if live.iter().any(|h| h.range == range && owned(h.id)) {
        return None;
    }
    let (mine, others): (Vec<&Hit>, Vec<&Hit>) = live.iter().partition(|h| owned(h.id));
    let uncovered = subtract(range.clone(), mine.iter().map(|h| h.range.clone()));
    if uncovered.is_empty() {
        return None;
    }
    let bad_bytes: u64 = uncovered.iter().map(|r| r.end - r.start).sum();
    let first_bad = uncovered[0].start;
    let in_uncovered = |h: &&&Hit| uncovered.iter().any(|u| u.start < h.range.end && h.range.start < u.end);
    let victim_hit = others.iter().find(in_uncovered).copied();
    let freed: Vec<Hit> =
        uncovered.iter().flat_map(|u| ctx.registry.freed_at(w.device, w.space, w.unit, u.clone())).collect();

    let label = |i: u64| attribution::op_label(ctx.ops, i);
    let buffer_ref = |id: u64| {
        let info = ctx.registry.get(id)?;
        let per_unit = ctx.registry.footprint_of(id).map(|f| f.max_len()).unwrap_or(0);
        Some(BufferRef::new(info, per_unit, label))
    };
    let victim = victim_hit.and_then(|h| buffer_ref(h.id));

    let (kind, related) = if let Some(anchor) = mine.first() {
        // The write started or ended inside a buffer the op owns and ran past it.
        let fp = ctx.registry.footprint_of(anchor.id);
        let own = fp.and_then(|f| f.on_unit(w.unit)).unwrap_or(anchor.range.clone());
        let (relation, distance) = if first_bad >= own.end {
            (Relation::PastEnd, first_bad - own.end)
        } else {
            (Relation::BeforeStart, own.start.saturating_sub(uncovered[uncovered.len() - 1].end))
        };
        let related = buffer_ref(anchor.id).map(|buffer| Related { buffer, relation, distance, peer_device: None });
        (FindingKind::OobWrite, related)
    } else if let Some(f) = freed.iter().find(|f| op.is_some_and(|o| o.declares(f.id))).or(freed.first()) {
        // Of the freed buffers that were there, the one the op itself declared explains it best.
        let related = buffer_ref(f.id).map(|buffer| Related {
            buffer,
            relation: Relation::StaleAddress,
            distance: 0,
            peer_device: None,
        });
        (FindingKind::UseAfterFree, related)
    } else {
        let damage = [Damage { device: w.device, space: w.space, unit: w.unit, range: first_bad..range.end }];
        let related = op.and_then(|o| attribution::rank(o, ctx.ops, ctx.registry, &damage, victim_hit.map(|h| h.id)));
        let kind = if victim.is_some() { FindingKind::ForeignWrite } else { FindingKind::WildWrite };
        (kind, related)
    };

    let mut f = Finding::at(kind, Some(w.device), w.space, Some(w.unit), first_bad, bad_bytes);
    f.culprit = op.map(Culprit::of);
    let victim_is_input = op.zip(victim_hit).is_some_and(|(o, h)| o.declares(h.id) && !o.writes(h.id));
    f.mechanism = match (op, &victim) {
        (Some(o), Some(v)) if victim_is_input && kind == FindingKind::ForeignWrite => {
            format!("op {} wrote into its input '{}' ({}), which it declares only as read", o.label(), v.name, v.role)
        }
        (Some(o), _) => attribution::mechanism(o, related.as_ref(), victim.as_ref()),
        (None, _) => host_mechanism(kind, victim.as_ref(), related.as_ref()),
    };
    if !unit_exists(ctx, w.unit, w.space) || range.end > ctx.registry.geometry().unit_size(w.space) {
        f.mechanism.push_str(" (the address is outside the device's memory)");
    }
    f.victim = victim;
    f.related = related;
    Some(f)
}

fn host_mechanism(kind: FindingKind, victim: Option<&BufferRef>, related: Option<&Related>) -> String {
    match (kind, related) {
        (FindingKind::UseAfterFree, Some(r)) => format!(
            "the host wrote to the stale address of '{}'{}",
            r.buffer.name,
            victim.map(|v| format!(", now '{}'", v.name)).unwrap_or_default()
        ),
        _ => "the host wrote where no buffer is allocated".to_string(),
    }
}

fn unit_exists(ctx: &Context<'_>, unit: Unit, space: ttsan_events::Space) -> bool {
    let g = ctx.registry.geometry();
    match unit {
        Unit::Bank(b) => space.is_dram() && b < g.dram_banks,
        Unit::Core(c) => !space.is_dram() && c.x < g.worker_grid.x.max(1) && c.y < g.worker_grid.y.max(1),
    }
}
