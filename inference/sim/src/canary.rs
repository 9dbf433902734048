//! Canaries: free memory digested before and after each op, so that digest mode sees writes
//! where no buffer lives (ASan's quarantine poisoning, without changing a byte).
//!
//! What is watched (see [`Canaries`]): the free bytes just past each buffer the op writes, the
//! regions of recently freed buffers, and all free memory. Real hardware would read those
//! pages back before and after the op and compare digests. The simulator gets the same answer
//! from what it knows: free bytes can only change where the op's write log says it wrote
//! outside its own buffers, so only those pages are digested, the "before" bytes coming from
//! the chip's journal of chunks as they were before the op first wrote them. A clean op writes
//! only its own buffers and costs one range subtraction per written run.

use super::config::Canaries;
use super::memory::ChipMemory;
use super::placement::Placement;
use super::write_log::WriteLog;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use ttsan_alloc_model::Allocator;
use ttsan_events::ranges::subtract;
use ttsan_events::{CanaryDigest, Digest, Event, Geometry, Space, Unit};

/// Bytes per canary page: one bf16 tile. Digests say which pages changed, not which bytes.
pub const CANARY_PAGE: u64 = 2048;

/// How far past the end of a buffer an op writes the past-end canary watches, per bank or core.
pub const PAST_END_BYTES: u64 = 4 * CANARY_PAGE;

/// Freed buffers whose regions stay watched: the analyzer's default quarantine.
const QUARANTINE: usize = 4096;

/// A buffer an op may write: its id and where it lives.
pub(crate) type Owned = (u64, Arc<Placement>);

/// The canary selection and the quarantine of recently freed buffers.
pub(crate) struct CanaryTracker {
    select: Canaries,
    quarantine: VecDeque<Owned>,
}

/// A watched region a dirty free range falls in.
struct Watch {
    region: Range<u64>,
    reason: &'static str,
    buffer: Option<u64>,
}

impl CanaryTracker {
    /// A tracker for `select`.
    pub(crate) fn new(select: Canaries) -> Self {
        CanaryTracker { select, quarantine: VecDeque::new() }
    }

    /// Whether any canary is on.
    pub(crate) fn enabled(&self) -> bool {
        self.select.any()
    }

    /// A buffer was freed: its region joins the quarantine (the oldest leaves when full).
    pub(crate) fn freed(&mut self, id: u64, placement: Arc<Placement>) {
        if !self.select.quarantine {
            return;
        }
        if self.quarantine.len() >= QUARANTINE {
            self.quarantine.pop_front();
        }
        self.quarantine.push_back((id, placement));
    }

    /// The canary digests of one op (`after_op`; `None` at the end of the run): for every run
    /// in `logs` (one per chip) outside the buffers in `owned` and outside every live
    /// allocation, the watched pages it touched whose digests differ before and after.
    pub(crate) fn check(
        &self,
        after_op: Option<u64>,
        logs: &[&[WriteLog]],
        owned: &[Owned],
        alloc: &Allocator,
        geometry: &Geometry,
        chips: &[ChipMemory],
    ) -> Vec<Event> {
        let mut events = Vec::new();
        if !self.enabled() {
            return events;
        }
        let mut live: Option<[Vec<Range<u64>>; 2]> = None;
        for per_chip in logs {
            for (device, log) in per_chip.iter().enumerate() {
                let Some(mem) = chips.get(device) else { continue };
                for (space, unit, run) in log.runs() {
                    let own = owned
                        .iter()
                        .filter(|(_, p)| same_plane(p.space, space) && p.units.contains(&unit))
                        .map(|(_, p)| p.address..p.address + p.per_unit());
                    let stray = subtract(run, own);
                    if stray.is_empty() {
                        continue;
                    }
                    // Only an op that wrote outside its own buffers gets here; then the
                    // allocator says which of those bytes are free.
                    let live = live.get_or_insert_with(|| live_ranges(alloc));
                    let taken = &live[plane(space)];
                    for piece in stray {
                        for free in subtract(piece, taken.iter().cloned()) {
                            let span = free_span(taken, free.start, geometry.unit_size(space));
                            let watches = self.watches(space, unit, &span, owned);
                            events.extend(digest_watched(mem, device as u32, space, unit, &free, &watches, after_op));
                        }
                    }
                }
            }
        }
        events
    }

    /// The watched regions of a free span on one unit, in priority order (a byte is reported
    /// under the first that covers it).
    fn watches(&self, space: Space, unit: Unit, span: &Range<u64>, owned: &[Owned]) -> Vec<Watch> {
        let mut out = Vec::new();
        let on_unit = |p: &Placement| same_plane(p.space, space) && p.units.contains(&unit);
        if self.select.past_end {
            for (id, p) in owned.iter().filter(|(_, p)| on_unit(p)) {
                let end = p.address + p.per_unit();
                let region = clip(end..end + PAST_END_BYTES, span);
                if !region.is_empty() {
                    out.push(Watch { region, reason: "past-end", buffer: Some(*id) });
                }
            }
        }
        if self.select.quarantine {
            for (id, p) in self.quarantine.iter().rev().filter(|(_, p)| on_unit(p)) {
                let region = clip(p.address..p.address + p.per_unit(), span);
                if !region.is_empty() {
                    out.push(Watch { region, reason: "quarantine", buffer: Some(*id) });
                }
            }
        }
        if self.select.free {
            out.push(Watch { region: span.clone(), reason: "free", buffer: None });
        }
        out
    }
}

/// Digests the pages of the watched regions that `free` touches, before and after; one event
/// per region with at least one changed page (only the changed pages' run is sent).
fn digest_watched(
    mem: &ChipMemory,
    device: u32,
    space: Space,
    unit: Unit,
    free: &Range<u64>,
    watches: &[Watch],
    after_op: Option<u64>,
) -> Vec<Event> {
    let mut events = Vec::new();
    let mut left = vec![free.clone()];
    for w in watches {
        let hit: Vec<Range<u64>> = left.iter().map(|r| clip(r.clone(), &w.region)).filter(|r| !r.is_empty()).collect();
        if hit.is_empty() {
            continue;
        }
        left = left.into_iter().flat_map(|r| subtract(r, std::iter::once(w.region.clone()))).collect();
        // Pages are counted from the region's start, so a past-end page starts at the end of
        // the buffer it follows.
        let page_of = |a: u64| (a - w.region.start) / CANARY_PAGE;
        let (Some(first), Some(last)) = (hit.first(), hit.last()) else { continue };
        let (first, last) = (page_of(first.start), page_of(last.end - 1));
        let mut changed: Vec<(u64, Digest, Digest)> = Vec::new();
        for page in first..=last {
            let start = w.region.start + page * CANARY_PAGE;
            let len = CANARY_PAGE.min(w.region.end - start);
            let (before, after) = (
                digest(|f| mem.visit_before(space, unit, start, len, f)),
                digest(|f| mem.visit(space, unit, start, len, f)),
            );
            if before != after {
                changed.push((page, before, after));
            }
        }
        let (Some(&(p0, ..)), Some(&(p1, ..))) = (changed.first(), changed.last()) else { continue };
        // One event over the changed pages' run; unchanged pages inside it are sent as equal.
        let start = w.region.start + p0 * CANARY_PAGE;
        let end = (w.region.start + (p1 + 1) * CANARY_PAGE).min(w.region.end);
        let mut before = Vec::new();
        let mut after = Vec::new();
        for page in p0..=p1 {
            let s = w.region.start + page * CANARY_PAGE;
            let len = CANARY_PAGE.min(w.region.end - s);
            match changed.iter().find(|(p, ..)| *p == page) {
                Some(&(_, b, a)) => {
                    before.push(b);
                    after.push(a);
                }
                None => {
                    let same = digest(|f| mem.visit(space, unit, s, len, f));
                    before.push(same);
                    after.push(same);
                }
            }
        }
        events.push(Event::CanaryDigest(CanaryDigest {
            device,
            space,
            unit,
            address: start,
            page_size: CANARY_PAGE,
            len: end - start,
            after_op,
            reason: w.reason.to_string(),
            buffer: w.buffer,
            before,
            after,
        }));
    }
    events
}

fn digest(visit: impl FnOnce(&mut dyn FnMut(&[u8]))) -> Digest {
    let mut hasher = blake3::Hasher::new();
    visit(&mut |bytes: &[u8]| {
        hasher.update(bytes);
    });
    ttsan_events::digest_of(&hasher.finalize())
}

/// DRAM and the trace region share the DRAM banks; L1 and L1_SMALL share a core's SRAM.
fn plane(space: Space) -> usize {
    usize::from(!space.is_dram())
}

fn same_plane(a: Space, b: Space) -> bool {
    plane(a) == plane(b)
}

/// Every allocated range per plane, sorted and merged.
fn live_ranges(alloc: &Allocator) -> [Vec<Range<u64>>; 2] {
    let mut out: [Vec<Range<u64>>; 2] = [Vec::new(), Vec::new()];
    for space in [Space::Dram, Space::Trace, Space::L1, Space::L1Small] {
        out[plane(space)].extend(alloc.manager(space).allocated_ranges().into_iter().map(|(s, e)| s..e));
    }
    for ranges in &mut out {
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
        for r in ranges.drain(..) {
            match merged.last_mut() {
                Some(m) if r.start <= m.end => m.end = m.end.max(r.end),
                _ => merged.push(r),
            }
        }
        *ranges = merged;
    }
    out
}

/// The free span around `at`: from the end of the allocation below to the start of the one
/// above (or the end of the unit).
fn free_span(taken: &[Range<u64>], at: u64, unit_end: u64) -> Range<u64> {
    let start = taken.iter().map(|r| r.end).filter(|&e| e <= at).max().unwrap_or(0);
    let end = taken.iter().map(|r| r.start).filter(|&s| s > at).min().unwrap_or(unit_end).max(at + 1);
    start..end
}

fn clip(r: Range<u64>, to: &Range<u64>) -> Range<u64> {
    r.start.max(to.start)..r.end.min(to.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_and_free_span() {
        assert_eq!(subtract(0..10, [2..4, 3..6].into_iter()), vec![0..2, 6..10]);
        assert_eq!(subtract(0..10, std::iter::once(0..10)), Vec::<Range<u64>>::new());
        let taken = vec![0..100, 200..300];
        assert_eq!(free_span(&taken, 150, 1000), 100..200);
        assert_eq!(free_span(&taken, 400, 1000), 300..1000);
    }
}
