//! Checking a new allocation against the live ones: overlaps and circular-buffer clashes.

use super::Context;
use crate::attribution;
use crate::buffer::{AllocKind, BufferInfo};
use crate::finding::{BufferRef, Culprit, Finding, FindingKind, Related, Relation};
use crate::model::Footprint;

/// Findings for `new` sharing bytes with each of `others` (ids of live allocations).
///
/// Two buffers: `overlap`. A circular buffer and an L1 buffer: `cb-clash`, worded as tt-metal
/// words its own check. Two circular buffers, or a globally allocated one (which aliases a buffer
/// on purpose): nothing.
pub fn check(ctx: &Context<'_>, new: &BufferInfo, others: &[u64]) -> Vec<Finding> {
    let mut out = Vec::new();
    let label = |i: u64| attribution::op_label(ctx.ops, i);
    for &other_id in others {
        let Some(other) = ctx.registry.live(other_id) else { continue };
        if globally_allocated(new) || globally_allocated(other) {
            continue;
        }
        let (kind, cb, buf) = match (new.is_cb(), other.is_cb()) {
            (false, false) => (FindingKind::Overlap, None, None),
            (true, false) => (FindingKind::CbClash, Some(new), Some(other)),
            (false, true) => (FindingKind::CbClash, Some(other), Some(new)),
            (true, true) => continue,
        };
        let (Some(fp_new), Some(fp_other)) = (ctx.registry.footprint_of(new.id), ctx.registry.footprint_of(other_id))
        else {
            continue;
        };
        let Some((unit, start, end)) = first_shared(fp_new, fp_other, &ctx.registry.geometry().units(new.space)) else {
            continue;
        };
        let device = new.device.or(other.device);
        let mut f = Finding::at(kind, device, new.space, Some(unit), start, end - start);
        let victim = BufferRef::new(other, fp_other.max_len(), label);
        let newer = BufferRef::new(new, fp_new.max_len(), label);
        let op_index = match (cb, new.alloc_op) {
            (Some(cb), _) => cb.alloc_op.or(new.alloc_op),
            (None, op) => op,
        };
        let op = op_index.and_then(|i| ctx.ops.get(i));
        f.culprit = op.map(|o| Culprit { op: o.name.to_string(), op_index: o.index, call: o.call });
        f.mechanism = match (cb, buf) {
            (Some(cb), Some(buf)) => format!(
                "Statically allocated circular buffers in program {} clash with L1 buffers on core range {}. \
                 L1 buffer allocated at {:#x} and static circular buffer region ends at {:#x}",
                op.map(|o| o.label()).unwrap_or_else(|| "?".into()),
                core_text(unit),
                buf.address,
                cb.address + cb.size
            ),
            _ => format!(
                "'{}' was allocated over bytes of live '{}': two live allocations share [{:#x}, {:#x}) on {}",
                newer.name, victim.name, start, end, unit
            ),
        };
        f.victim = Some(victim);
        f.related = Some(Related { buffer: newer, relation: Relation::Overlap, distance: 0, peer_device: None });
        out.push(f);
    }
    out
}

fn globally_allocated(b: &BufferInfo) -> bool {
    matches!(b.kind, AllocKind::CircularBuffer { globally_allocated: true, .. })
}

fn core_text(unit: ttsan_events::Unit) -> String {
    match unit {
        ttsan_events::Unit::Core(c) => format!("{{[(x={},y={}) - (x={},y={})]}}", c.x, c.y, c.x, c.y),
        other => other.to_string(),
    }
}

fn first_shared(
    a: &Footprint,
    b: &Footprint,
    space_units: &[ttsan_events::Unit],
) -> Option<(ttsan_events::Unit, u64, u64)> {
    let units = |fp: &Footprint| match fp {
        Footprint::AllUnits(_) => Vec::new(),
        Footprint::Units(list) => list.iter().map(|(u, _)| *u).collect(),
    };
    let mut candidates = units(a);
    candidates.extend(units(b));
    if candidates.is_empty() {
        // Both lock-step over every bank: they meet on every unit; name the first.
        candidates = space_units.to_vec();
    }
    candidates.sort();
    candidates.into_iter().find_map(|u| {
        let (ra, rb) = (a.on_unit(u)?, b.on_unit(u)?);
        let (s, e) = (ra.start.max(rb.start), ra.end.min(rb.end));
        (s < e).then_some((u, s, e))
    })
}
