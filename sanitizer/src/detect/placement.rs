//! Checking a new allocation against the live ones: overlaps and circular-buffer clashes.

use super::Context;
use crate::attribution;
use crate::buffer::{AllocKind, BufferInfo};
use crate::finding::{BufferRef, Culprit, Finding, FindingKind, Related, Relation};
use crate::model::Footprint;
use ttsan_events::{CoreRange, Unit};

/// A circular buffer of a program sharing bytes with an L1 buffer. Clashes are collected while a
/// program places its circular buffers and reported once it is complete, because tt-metal checks
/// the whole CB region of a program at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    /// The program (op) owning the circular buffer.
    pub program: Option<u64>,
    /// The L1 buffer hit.
    pub buffer: u64,
    /// Chip, `None` for every chip.
    pub device: Option<u32>,
    /// First core where they meet.
    pub unit: Unit,
    /// First shared byte there.
    pub start: u64,
    /// End of the shared bytes there.
    pub end: u64,
}

/// Findings for `new` sharing bytes with each of `others` (ids of live allocations): `overlap`
/// for two buffers, right away; circular buffer against L1 buffer as [`Clash`]es for later.
/// Two circular buffers, or a globally allocated one (which aliases a buffer on purpose), are fine.
pub fn check(ctx: &Context<'_>, new: &BufferInfo, others: &[u64]) -> (Vec<Finding>, Vec<Clash>) {
    let mut findings = Vec::new();
    let mut clashes = Vec::new();
    let label = |i: u64| attribution::op_label(ctx.ops, i);
    let units = ctx.registry.geometry().units(new.space);
    for &other_id in others {
        let Some(other) = ctx.registry.live(other_id) else { continue };
        if globally_allocated(new) || globally_allocated(other) || (new.is_cb() && other.is_cb()) {
            continue;
        }
        let (Some(fp_new), Some(fp_other)) = (ctx.registry.footprint_of(new.id), ctx.registry.footprint_of(other_id))
        else {
            continue;
        };
        let Some((unit, start, end)) = first_shared(fp_new, fp_other, &units) else { continue };
        let device = new.device.or(other.device);
        if new.is_cb() || other.is_cb() {
            let (cb, buf) = if new.is_cb() { (new, other) } else { (other, new) };
            clashes.push(Clash { program: cb.alloc_op, buffer: buf.id, device, unit, start, end });
            continue;
        }
        let mut f = Finding::at(FindingKind::Overlap, device, new.space, Some(unit), start, end - start);
        let victim = BufferRef::new(other, fp_other.max_len(), label);
        let newer = BufferRef::new(new, fp_new.max_len(), label);
        let op = new.alloc_op.and_then(|i| ctx.ops.get(i));
        f.culprit = op.map(Culprit::of);
        f.mechanism = format!(
            "'{}' was allocated over bytes of live '{}': two live allocations share [{:#x}, {:#x}) on {}",
            newer.name, victim.name, start, end, unit
        );
        f.victim = Some(victim);
        f.related = Some(Related { buffer: newer, relation: Relation::Overlap, distance: 0, peer_device: None });
        findings.push(f);
    }
    (findings, clashes)
}

/// The CB region of one program: where its static circular buffers end and on which cores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CbRegion {
    /// End of the highest circular buffer.
    pub end: u64,
    /// Core ranges of its circular buffers.
    pub cores: Vec<CoreRange>,
}

impl CbRegion {
    /// Adds a circular buffer.
    pub fn add(&mut self, address: u64, size: u64, cores: &[CoreRange]) {
        self.end = self.end.max(address + size);
        for c in cores {
            if !self.cores.contains(c) {
                self.cores.push(*c);
            }
        }
    }
}

/// One `cb-clash` finding per L1 buffer a program's CB region clashes with, worded as tt-metal
/// words the error it raises at dispatch.
pub fn clash_findings(ctx: &Context<'_>, clashes: &[Clash], region: &CbRegion) -> Vec<Finding> {
    let label = |i: u64| attribution::op_label(ctx.ops, i);
    let mut seen: Vec<u64> = Vec::new();
    let mut out = Vec::new();
    for c in clashes {
        if seen.contains(&c.buffer) {
            continue;
        }
        seen.push(c.buffer);
        let Some(buf) = ctx.registry.get(c.buffer) else { continue };
        let per_unit = ctx.registry.footprint_of(c.buffer).map(|f| f.max_len()).unwrap_or(0);
        let mut f = Finding::at(
            FindingKind::CbClash,
            c.device,
            buf.space,
            Some(c.unit),
            c.start,
            region.end.saturating_sub(buf.address).min(per_unit),
        );
        let op = c.program.and_then(|i| ctx.ops.get(i));
        f.culprit = op.map(Culprit::of);
        f.mechanism = format!(
            "Statically allocated circular buffers in program {} clash with L1 buffers on core range {}. \
             L1 buffer allocated at {} and static circular buffer region ends at {}",
            op.map(|o| o.label()).unwrap_or_else(|| "?".into()),
            core_range_set(&region.cores),
            buf.address,
            region.end
        );
        f.victim = Some(BufferRef::new(buf, per_unit, label));
        out.push(f);
    }
    out
}

/// A core range set as tt-metal's `CoreRangeSet::str()` prints it.
pub fn core_range_set(ranges: &[CoreRange]) -> String {
    let parts: Vec<String> =
        ranges.iter().map(|r| format!("[(x={},y={}) - (x={},y={})]", r.start.x, r.start.y, r.end.x, r.end.y)).collect();
    format!("{{{}}}", parts.join(", "))
}

fn globally_allocated(b: &BufferInfo) -> bool {
    matches!(b.kind, AllocKind::CircularBuffer { globally_allocated: true, .. })
}

fn first_shared(a: &Footprint, b: &Footprint, space_units: &[Unit]) -> Option<(Unit, u64, u64)> {
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
