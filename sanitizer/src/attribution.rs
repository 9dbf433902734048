//! Attribution: which of the culprit op's buffers explains the damage, and how.
//!
//! With write events the writer is known, but a report is still more useful when it says
//! *why* the op wrote there. With digests only (real hardware), the culprit is the op after
//! which the digest changed, and this ranking is all there is to go on.

use crate::buffer::BufferInfo;
use crate::finding::{BufferRef, Related, Relation};
use crate::ops::{OpInfo, OpTable};
use crate::registry::Registry;
use std::ops::Range;
use ttsan_events::{Space, Unit};

/// Damaged bytes on one unit of one chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Chip.
    pub device: u32,
    /// Space.
    pub space: Space,
    /// Bank or core.
    pub unit: Unit,
    /// Bytes.
    pub range: Range<u64>,
}

/// Ordering key: relation class, then distance; smaller is more likely.
fn score(relation: Relation, distance: u64) -> (u8, u64) {
    let class = match relation {
        Relation::Overlap => 0,
        Relation::StaleAddress => 1,
        Relation::PeerAddress => 2,
        Relation::PastEnd | Relation::BeforeStart => 3,
        Relation::Declared => 4,
    };
    (class, distance)
}

/// How `buffer` relates to `damage`, if spatially at all.
pub fn relate(
    buffer: &BufferInfo,
    fp: &crate::model::Footprint,
    damage: &Damage,
) -> Option<(Relation, u64, Option<u32>)> {
    if buffer.space != damage.space {
        return None;
    }
    let range = fp.on_unit(damage.unit)?;
    let overlaps = range.start < damage.range.end && damage.range.start < range.end;
    if !buffer.on_device(damage.device) {
        return overlaps.then_some((Relation::PeerAddress, 0, buffer.device));
    }
    if overlaps {
        let rel = if buffer.freed { Relation::StaleAddress } else { Relation::Overlap };
        return Some((rel, 0, None));
    }
    if range.end <= damage.range.start {
        Some((Relation::PastEnd, damage.range.start - range.end, None))
    } else {
        Some((Relation::BeforeStart, range.start - damage.range.end, None))
    }
}

/// Ranks the buffers `op` writes (and, for program-cache state, buffers earlier calls of the
/// same op declared) by how well they explain `damage`, its inputs only as a last resort; returns the best, skipping `exclude`
/// (the victim itself).
///
/// What this call declares comes first: when one of those shares, used to own, or sits right
/// next to the damage, an earlier call's buffer that happens to have lived there is a worse
/// explanation (its bytes are reused all the time).
pub fn rank(
    op: &OpInfo,
    ops: &OpTable,
    registry: &Registry,
    damage: &[Damage],
    exclude: Option<u64>,
) -> Option<Related> {
    let mut own: Vec<u64> = op.declared.keys().copied().collect();
    own.sort_unstable();
    if let Some(best) = rank_among(op, ops, registry, damage, exclude, &own).filter(close) {
        return Some(best);
    }
    let mut candidates = own;
    candidates.extend(ops.history(&op.name));
    candidates.sort_unstable();
    candidates.dedup();
    rank_among(op, ops, registry, damage, exclude, &candidates)
}

/// Bytes within which an overrun or underrun of a buffer explains damage.
pub const NEAR_BYTES: u64 = 4096;

/// Whether a relation is a real explanation: the buffer shares, used to own, or sits right next
/// to the damaged bytes. A buffer that is merely declared, or kilobytes away, explains nothing.
pub fn close(related: &Related) -> bool {
    match related.relation {
        Relation::Overlap | Relation::StaleAddress | Relation::PeerAddress => true,
        Relation::PastEnd | Relation::BeforeStart => related.distance <= NEAR_BYTES,
        Relation::Declared => false,
    }
}

fn rank_among(
    op: &OpInfo,
    ops: &OpTable,
    registry: &Registry,
    damage: &[Damage],
    exclude: Option<u64>,
    candidates: &[u64],
) -> Option<Related> {
    let candidates = candidates.iter().copied();
    let mut best: Option<(u8, u64, u64, Relation, u64, Option<u32>)> = None;
    for id in candidates {
        if Some(id) == exclude {
            continue;
        }
        let (Some(info), Some(fp)) = (registry.get(id), registry.footprint_of(id)) else { continue };
        // An op only reads its inputs: they cannot explain damage, however close they sit. What
        // it writes (outputs, scratch) and what earlier calls of it wrote (cached state) can.
        let input_only = op.declares(id) && !op.writes(id);
        let mut found = false;
        for d in damage.iter().filter(|_| !input_only) {
            let Some((rel, dist, peer)) = relate(info, fp, d) else { continue };
            found = true;
            let (c, s) = score(rel, dist);
            if best.as_ref().is_none_or(|b| (c, s, id) < (b.0, b.1, b.2)) {
                best = Some((c, s, id, rel, dist, peer));
            }
        }
        if !found && op.declared.contains_key(&id) {
            let (c, s) = score(Relation::Declared, 0);
            if best.as_ref().is_none_or(|b| (c, s, id) < (b.0, b.1, b.2)) {
                best = Some((c, s, id, Relation::Declared, 0, None));
            }
        }
    }
    let (_, _, id, relation, distance, peer_device) = best?;
    let info = registry.get(id)?;
    let per_unit = registry.footprint_of(id).map(|f| f.max_len()).unwrap_or(0);
    Some(Related { buffer: BufferRef::new(info, per_unit, |i| op_label(ops, i)), relation, distance, peer_device })
}

/// `#index name` for an op index (or `#index` when unknown).
pub fn op_label(ops: &OpTable, index: u64) -> String {
    ops.get(index).map(|o| o.label()).unwrap_or_else(|| format!("#{index}"))
}

/// The one-sentence mechanism for a finding whose culprit is `op`.
pub fn mechanism(op: &OpInfo, related: Option<&Related>, victim: Option<&BufferRef>) -> String {
    let op_name = op.label();
    let victim_text = match victim {
        Some(v) => format!("'{}' ({})", v.name, v.role),
        None => "unallocated memory".to_string(),
    };
    let Some(rel) = related else {
        return format!("op {op_name} wrote into {victim_text}, and none of its own buffers explains why");
    };
    // Buffers found through the op's history belong to an earlier call (program-cache state).
    let how = op.declared.get(&rel.buffer.id).map(|d| d.as_str()).unwrap_or("cached (earlier call)");
    let b = &rel.buffer.name;
    match rel.relation {
        Relation::Overlap => format!(
            "op {op_name}'s {how} buffer '{b}' shares these bytes with {victim_text}: the two allocations overlap"
        ),
        Relation::StaleAddress => format!(
            "op {op_name} wrote through the stale address of its {how} buffer '{b}', freed by {}; the bytes now belong to {victim_text}",
            rel.buffer.freed_by.as_deref().unwrap_or("the host")
        ),
        Relation::PastEnd if rel.distance == 0 => {
            format!("op {op_name} overran the end of its {how} buffer '{b}' into {victim_text}")
        }
        Relation::PastEnd => format!(
            "op {op_name} wrote {} bytes past the end of its {how} buffer '{b}', into {victim_text}",
            rel.distance
        ),
        Relation::BeforeStart => format!(
            "op {op_name} wrote {} bytes before the start of its {how} buffer '{b}', into {victim_text}",
            rel.distance
        ),
        Relation::PeerAddress => format!(
            "'{b}' lives at these addresses on device {}: op {op_name} wrote to the wrong chip, into {victim_text}",
            rel.peer_device.map(|d| d.to_string()).unwrap_or_else(|| "?".into())
        ),
        Relation::Declared => {
            format!("op {op_name} wrote into {victim_text}, where none of its own buffers is (it declares '{b}')")
        }
    }
}
