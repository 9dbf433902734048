//! The byte ranges an allocation reserves on each unit.

use super::align_up;
use super::pages::{num_pages, page_stride};
use crate::buffer::{AllocKind, BufferInfo};
use std::ops::Range;
use ttsan_events::{Geometry, Layout, Unit};

/// The bytes an allocation owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Footprint {
    /// The same range on every unit of the space: an interleaved buffer, which the allocator
    /// reserves in lock step on all banks.
    AllUnits(Range<u64>),
    /// Ranges on particular units: shards and circular buffers.
    Units(Vec<(Unit, Range<u64>)>),
}

impl Footprint {
    /// The range on `unit`, if the allocation has one there.
    pub fn on_unit(&self, unit: Unit) -> Option<Range<u64>> {
        match self {
            Footprint::AllUnits(r) => Some(r.clone()),
            Footprint::Units(list) => list.iter().find(|(u, _)| *u == unit).map(|(_, r)| r.clone()),
        }
    }

    /// Every (unit, range) pair, expanding [`Footprint::AllUnits`] over `units`.
    pub fn expand(&self, units: &[Unit]) -> Vec<(Unit, Range<u64>)> {
        match self {
            Footprint::AllUnits(r) => units.iter().map(|u| (*u, r.clone())).collect(),
            Footprint::Units(list) => list.clone(),
        }
    }

    /// Bytes reserved on one chip, given how many units the space has.
    pub fn total(&self, units_in_space: u64) -> u64 {
        match self {
            Footprint::AllUnits(r) => (r.end - r.start) * units_in_space,
            Footprint::Units(list) => list.iter().map(|(_, r)| r.end - r.start).sum(),
        }
    }

    /// Bytes per unit at most.
    pub fn max_len(&self) -> u64 {
        match self {
            Footprint::AllUnits(r) => r.end - r.start,
            Footprint::Units(list) => list.iter().map(|(_, r)| r.end - r.start).max().unwrap_or(0),
        }
    }
}

/// The bytes `buffer` reserves, per unit.
///
/// An interleaved buffer reserves `ceil(pages / banks) * stride` bytes on every bank, as
/// tt-metal's `BankManager` sizes it, even on banks that hold one page fewer. A sharded buffer
/// reserves a whole shard on each of its cores; a circular buffer its size on each of its cores.
pub fn footprint(buffer: &BufferInfo, geometry: &Geometry) -> Footprint {
    let start = buffer.address;
    match &buffer.kind {
        AllocKind::Buffer { layout: Layout::Interleaved, page_size } => {
            let banks = u64::from(geometry.banks(buffer.space).max(1));
            let pages = num_pages(buffer.size, *page_size);
            let per_bank = pages.div_ceil(banks) * page_stride(geometry, buffer.space, *page_size);
            Footprint::AllUnits(start..start.saturating_add(per_bank))
        }
        AllocKind::Buffer { layout: Layout::Sharded(spec), page_size } => {
            let per_unit = spec.shard_pages() * page_stride(geometry, buffer.space, *page_size);
            let end = start.saturating_add(per_unit);
            Footprint::Units(spec.units.iter().map(|u| (*u, start..end)).collect())
        }
        AllocKind::CircularBuffer { cores, .. } => {
            let end = start.saturating_add(align_up(buffer.size, 1));
            let mut units: Vec<(Unit, Range<u64>)> =
                cores.iter().flat_map(|r| r.cores()).map(|c| (Unit::Core(c), start..end)).collect();
            units.sort_by_key(|(u, _)| *u);
            units.dedup_by_key(|(u, _)| *u);
            Footprint::Units(units)
        }
    }
}
