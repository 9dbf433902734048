//! Interval maps of one (device or mesh, space): which allocations own which bytes of each unit.

use super::ids::Ids;
use crate::model::Footprint;
use rangemap::RangeMap;
use rustc_hash::FxHashMap as HashMap;
use std::ops::Range;
use ttsan_events::Unit;

/// Query results: almost always zero to two hits, kept inline to spare the allocator on the
/// hot path (one query per write event).
pub type Hits = smallvec::SmallVec<[Hit; 4]>;

/// A byte range of one unit and an allocation that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The allocation.
    pub id: u64,
    /// The bytes of the queried range it owns.
    pub range: Range<u64>,
}

/// Who owns which bytes, for one device (or the whole mesh) and one space.
///
/// Interleaved buffers reserve the same range on every bank, so they go into one map shared by
/// all units (`all`); shards and circular buffers go into per-unit maps. A query consults both.
/// This keeps an interleaved allocation O(log n) however many banks or chips it spans.
#[derive(Debug, Default)]
pub struct SpaceMap {
    all: RangeMap<u64, Ids>,
    units: HashMap<u32, RangeMap<u64, Ids>>,
    /// Bounding range of everything ever put in a per-unit map, so that a lock-step query can
    /// skip scanning per-unit maps it cannot touch.
    unit_extent: Option<Range<u64>>,
}

impl SpaceMap {
    /// Records that `id` owns `footprint`.
    pub fn add(&mut self, footprint: &Footprint, id: u64) {
        match footprint {
            Footprint::AllUnits(r) => add_range(&mut self.all, r.clone(), id),
            Footprint::Units(list) => {
                for (unit, r) in list {
                    add_range(self.units.entry(unit.key()).or_default(), r.clone(), id);
                    self.unit_extent = Some(match self.unit_extent.take() {
                        Some(e) => e.start.min(r.start)..e.end.max(r.end),
                        None => r.clone(),
                    });
                }
            }
        }
    }

    /// Forgets that `id` owns `footprint` (bytes now owned by others are left alone).
    pub fn remove(&mut self, footprint: &Footprint, id: u64) {
        match footprint {
            Footprint::AllUnits(r) => remove_range(&mut self.all, r.clone(), id),
            Footprint::Units(list) => {
                for (unit, r) in list {
                    if let Some(map) = self.units.get_mut(&unit.key()) {
                        remove_range(map, r.clone(), id);
                        if map.is_empty() {
                            self.units.remove(&unit.key());
                        }
                    }
                }
            }
        }
    }

    /// Owners of bytes of `range` on `unit`.
    pub fn query(&self, unit: Unit, range: Range<u64>, out: &mut Hits) {
        collect(&self.all, range.clone(), out);
        if let Some(map) = self.units.get(&unit.key()) {
            collect(map, range, out);
        }
    }

    /// Owners of bytes of `range` on any unit (for lock-step footprints).
    pub fn query_any_unit(&self, range: Range<u64>, out: &mut Hits) {
        collect(&self.all, range.clone(), out);
        let touches = self.unit_extent.as_ref().is_some_and(|e| e.start < range.end && range.start < e.end);
        if touches {
            for map in self.units.values() {
                collect(map, range.clone(), out);
            }
        }
    }

    /// Owners of any byte of `footprint`.
    pub fn query_footprint(&self, footprint: &Footprint, out: &mut Hits) {
        match footprint {
            Footprint::AllUnits(r) => self.query_any_unit(r.clone(), out),
            Footprint::Units(list) => {
                for (unit, r) in list {
                    self.query(*unit, r.clone(), out);
                }
            }
        }
    }
}

fn collect(map: &RangeMap<u64, Ids>, range: Range<u64>, out: &mut Hits) {
    if range.start >= range.end {
        return;
    }
    for (r, ids) in map.overlapping(&range) {
        let clipped = r.start.max(range.start)..r.end.min(range.end);
        for &id in ids.as_slice() {
            out.push(Hit { id, range: clipped.clone() });
        }
    }
}

fn add_range(map: &mut RangeMap<u64, Ids>, range: Range<u64>, id: u64) {
    if range.start >= range.end {
        return;
    }
    let existing: Vec<(Range<u64>, Ids)> = map.overlapping(&range).map(|(r, v)| (r.clone(), v.clone())).collect();
    if existing.is_empty() {
        map.insert(range, Ids::One(id));
        return;
    }
    let mut cursor = range.start;
    for (r, ids) in existing {
        let s = r.start.max(range.start);
        let e = r.end.min(range.end);
        if cursor < s {
            map.insert(cursor..s, Ids::One(id));
        }
        map.insert(s..e, ids.with(id));
        cursor = e;
    }
    if cursor < range.end {
        map.insert(cursor..range.end, Ids::One(id));
    }
}

fn remove_range(map: &mut RangeMap<u64, Ids>, range: Range<u64>, id: u64) {
    if range.start >= range.end {
        return;
    }
    let existing: Vec<(Range<u64>, Ids)> = map.overlapping(&range).map(|(r, v)| (r.clone(), v.clone())).collect();
    for (r, ids) in existing {
        if !ids.as_slice().contains(&id) {
            continue;
        }
        let s = r.start.max(range.start);
        let e = r.end.min(range.end);
        match ids.without(id) {
            Some(rest) => map.insert(s..e, rest),
            None => map.remove(s..e),
        }
    }
}
