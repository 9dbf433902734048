//! Canary digests: watched free memory must not change across an op.
//!
//! A producer that cannot see writes (real hardware) can still read back free memory before and
//! after an op: the bytes just past the op's outputs, the regions of recently freed buffers, or
//! all of it. A change there is a write by someone into memory nobody owns. The digests say
//! which pages changed, not which bytes or who wrote; the culprit is the op the digests were
//! taken across, unless one of its own buffers or a late writer (an op whose writes can land
//! after it ended, as the op semantics declare) explains it better.
//! Kinds follow what writes mode would say about the same bytes, so that the two modes agree:
//! an overrun right past a buffer the op writes is an `oob-write`, bytes of a quarantined
//! (freed) buffer a `use-after-free`, anything else a `wild-write`.

use super::guard::{explains, late_writer};
use super::Context;
use crate::attribution::NEAR_BYTES;
use crate::attribution::{self, Damage};
use crate::finding::{BufferRef, Culprit, Finding, FindingKind, Related, Relation};
use crate::ops::OpInfo;
use ttsan_events::CanaryDigest;

/// Judges one canary digest; `None` when no watched page changed or the change is legitimate.
pub fn check(ctx: &Context<'_>, c: &CanaryDigest) -> Option<Finding> {
    let page = c.page_size.max(1);
    let n = c.before.len().max(c.after.len()) as u64;
    let changed: Vec<u64> = (0..n).filter(|&i| c.before.get(i as usize) != c.after.get(i as usize)).collect();
    let (&first, &last) = (changed.first()?, changed.last()?);
    let end = c.address.saturating_add(c.len.max(1));
    let range = c.address + first * page..(c.address + (last + 1) * page).min(end).max(c.address + first * page + 1);
    let damage = [Damage { device: c.device, space: c.space, unit: c.unit, range: range.clone() }];
    let op = c.after_op.and_then(|i| ctx.ops.get(i));
    if owned(ctx, op, &damage[0]) {
        return None;
    }
    let label = |i: u64| attribution::op_label(ctx.ops, i);
    let pages_text = format!(
        "{} watched free page(s) of {page} bytes in [{:#x}, {:#x}) on {} of device {} changed across {} ({}); \
         the digests have page granularity: at least one byte of each changed page was written",
        changed.len(),
        range.start,
        range.end,
        unit_text(c),
        c.device,
        op.map(|o| format!("op {}", o.label())).unwrap_or_else(|| "the end of the run".into()),
        c.reason,
    );
    let mut f = Finding::at(
        FindingKind::WildWrite,
        Some(c.device),
        c.space,
        Some(c.unit),
        range.start,
        range.end - range.start,
    );
    let Some(op) = op else {
        // After the last op only a late writer can have done it.
        let (writer, stale) = late_writer(ctx, &damage, u64::MAX).filter(|(w, _)| w.writes_after_end())?;
        f.kind = FindingKind::UseAfterFree;
        f.mechanism = late_text(writer, &stale, &pages_text);
        f.culprit = Some(culprit(writer));
        f.related = Some(stale);
        return Some(f);
    };
    f.culprit = Some(culprit(op));
    if let Some(adjacent) = adjacent_own(ctx, op, &damage[0]) {
        // The op's own live buffer ends (or starts) right at the damage: an overrun, as writes
        // mode says when the write starts inside the buffer.
        f.kind = FindingKind::OobWrite;
        f.mechanism = format!("{}; {pages_text}", attribution::mechanism(op, Some(&adjacent), None));
        f.related = Some(adjacent);
        return Some(f);
    }
    let related = attribution::rank(op, ctx.ops, ctx.registry, &damage, None);
    if explains(related.as_ref()) {
        let rel = related.as_ref().map(|r| r.relation);
        f.kind = match rel {
            Some(Relation::StaleAddress) => FindingKind::UseAfterFree,
            Some(Relation::PastEnd | Relation::BeforeStart) => FindingKind::OobWrite,
            _ => FindingKind::WildWrite,
        };
        f.mechanism = format!("{}; {pages_text}", attribution::mechanism(op, related.as_ref(), None));
        f.related = related;
        return Some(f);
    }
    // Free memory is written late only by an op whose writes can land after it ended (a
    // collective's fabric writes into a peer, as the op semantics declare) and whose freed
    // buffer was there; any other op that once allocated those bytes is long done, and blaming
    // it would hide the op that really wrote.
    let late = late_writer(ctx, &damage, op.index).filter(|(w, _)| w.index != op.index && w.writes_after_end());
    if let Some((writer, stale)) = late {
        f.kind = FindingKind::UseAfterFree;
        f.mechanism = late_text(writer, &stale, &pages_text);
        f.culprit = Some(culprit(writer));
        f.related = Some(stale);
        return Some(f);
    }
    let freed = ctx.registry.freed_at(c.device, c.space, c.unit, range.clone());
    if let Some(info) = freed.first().and_then(|h| ctx.registry.get(h.id)) {
        let per_unit = ctx.registry.footprint_of(info.id).map(|fp| fp.max_len()).unwrap_or(0);
        let buffer = BufferRef::new(info, per_unit, label);
        f.kind = FindingKind::UseAfterFree;
        f.mechanism = format!(
            "op {} wrote into the freed bytes of '{}' ({}, allocated by {}, freed by {}), into unallocated memory; \
             {pages_text}",
            op.label(),
            buffer.name,
            buffer.role,
            buffer.allocated_by.as_deref().unwrap_or("the host"),
            buffer.freed_by.as_deref().unwrap_or("the host"),
        );
        f.related = Some(Related { buffer, relation: Relation::StaleAddress, distance: 0, peer_device: None });
        return Some(f);
    }
    f.mechanism = format!("{}; {pages_text}", attribution::mechanism(op, related.as_ref(), None));
    f.related = related;
    Some(f)
}

fn culprit(op: &OpInfo) -> Culprit {
    Culprit::of(op)
}

fn late_text(writer: &OpInfo, stale: &Related, pages_text: &str) -> String {
    format!(
        "op {} wrote through the stale address of '{}' ({}), freed by {}, after the free (a write that landed \
         late), into unallocated memory; {pages_text}",
        writer.label(),
        stale.buffer.name,
        stale.buffer.role,
        stale.buffer.freed_by.as_deref().unwrap_or("the host"),
    )
}

fn unit_text(c: &CanaryDigest) -> String {
    match c.unit {
        ttsan_events::Unit::Bank(b) => format!("bank {b}"),
        ttsan_events::Unit::Core(core) => format!("core ({},{})", core.x, core.y),
    }
}

/// Whether the damaged bytes belong to buffers the op may write (a producer's view of "free"
/// can lag: an op's temporaries are freed as it ends), or to a live buffer, which the guards
/// judge instead.
fn owned(ctx: &Context<'_>, op: Option<&OpInfo>, d: &Damage) -> bool {
    let live = ctx.registry.live_at(d.device, d.space, d.unit, d.range.clone());
    let freed = ctx.registry.freed_at(d.device, d.space, d.unit, d.range.clone());
    // Only what the op itself freed (its temporaries) was its own to write; a buffer freed
    // earlier is not, even when the op still declares it through a stale cached address.
    let freed_by_op =
        |id: u64| op.is_some_and(|o| o.writes(id) && ctx.registry.get(id).is_some_and(|b| b.free_op == Some(o.index)));
    let mine = freed.iter().filter(|h| freed_by_op(h.id));
    let cover = live.iter().chain(mine).map(|h| h.range.clone());
    super::writes::subtract(d.range.clone(), cover).is_empty()
}

/// A live buffer the op writes that ends or starts within [`NEAR_BYTES`] of the damage, the
/// closest first.
fn adjacent_own(ctx: &Context<'_>, op: &OpInfo, d: &Damage) -> Option<Related> {
    let mut best: Option<(u64, u64, Relation)> = None;
    for &id in op.declared.keys().filter(|&&id| op.writes(id)) {
        let (Some(info), Some(fp)) = (ctx.registry.live(id), ctx.registry.footprint_of(id)) else { continue };
        let Some((rel, dist, _)) = attribution::relate(info, fp, d) else { continue };
        if matches!(rel, Relation::PastEnd | Relation::BeforeStart)
            && dist <= NEAR_BYTES
            && best.is_none_or(|(bd, bid, _)| (dist, id) < (bd, bid))
        {
            best = Some((dist, id, rel));
        }
    }
    let (distance, id, relation) = best?;
    let info = ctx.registry.get(id)?;
    let per_unit = ctx.registry.footprint_of(id).map(|fp| fp.max_len()).unwrap_or(0);
    let buffer = BufferRef::new(info, per_unit, |i| attribution::op_label(ctx.ops, i));
    Some(Related { buffer, relation, distance, peer_device: None })
}
