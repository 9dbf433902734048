//! [`MapData`]: what the page and the plots need from a trace, collected one event at a time.

mod columns;
mod layer;
mod strings;
mod usage;

pub use columns::{flags, AllocColumns, Kind, OpColumns, ALL_CHIPS, ALL_UNITS, NO_LAYER, NO_OP, OPEN};
pub use layer::parse_layer;
pub use strings::StringTable;
pub use usage::{CoreBytes, Usage};

use std::collections::HashMap;
use ttsan_events::{CaptureStart, CoreCoord, DeviceSel, Event, Role, Space, Unit};
use ttsan_sanitizer::BufferInfo;
use ttsan_sanitizer::{footprint, Footprint};

/// Top-level ops between usage samples when the trace has no ops at all (every this many
/// allocations and frees a sample is taken instead).
const EVENTS_PER_SAMPLE_WITHOUT_OPS: u64 = 1024;

/// What a live allocation added to the usage counters, to take back at its free.
type LiveUsage = (Option<usize>, usize, u64, CoreBytes);

/// The allocation history of a trace in compact columns, built by feeding events in order.
///
/// Time on the map is a logical clock that ticks on every allocation, free, circular-buffer
/// placement and release, and op begin and end. Wall time is not recorded by every backend, and
/// a clock of events keeps every rectangle at least one tick wide.
#[derive(Debug, Clone, Default)]
pub struct MapData {
    capture: Option<CaptureStart>,
    strings: StringTable,
    allocs: AllocColumns,
    ops: OpColumns,
    layers: Vec<u32>,
    layer_index: HashMap<u32, u16>,
    unit_sets: Vec<Vec<u32>>,
    unit_set_index: HashMap<Vec<u32>, u32>,
    rows_by_id: HashMap<u64, u32>,
    op_rows: HashMap<u64, i32>,
    open_ops: Vec<i32>,
    live_cbs: Vec<u32>,
    chip_slots: HashMap<u32, usize>,
    core_slots: HashMap<CoreCoord, usize>,
    usage: Usage,
    live_usage: HashMap<u32, LiveUsage>,
    clock: u32,
    since_sample: u64,
    ignored: u64,
}

impl MapData {
    /// An empty map.
    pub fn new() -> Self {
        MapData { unit_sets: vec![Vec::new()], ..MapData::default() }
    }

    /// Takes in one event. Events before the `capture_start` record are counted and ignored.
    pub fn feed(&mut self, event: &Event) {
        if let Event::CaptureStart(start) = event {
            if self.capture.is_none() {
                self.start(start);
            }
            return;
        }
        if self.capture.is_none() {
            self.ignored += 1;
            return;
        }
        match event {
            Event::BufferAlloc(a) => {
                let info = BufferInfo::from_alloc(a);
                let kind = match &a.layout {
                    ttsan_events::Layout::Interleaved => Kind::Interleaved,
                    ttsan_events::Layout::Sharded(_) => Kind::Sharded,
                };
                self.add(&info, kind, a.op, a.stack.as_deref());
            }
            Event::CbAlloc(cb) => {
                let info = BufferInfo::from_cb(cb);
                let kind = if cb.globally_allocated { Kind::GlobalCircularBuffer } else { Kind::CircularBuffer };
                self.add(&info, kind, cb.op, None);
            }
            Event::BufferFree(f) => {
                self.tick();
                if let Some(&row) = self.rows_by_id.get(&f.id) {
                    self.close(row, f.op, f.stack.as_deref());
                }
            }
            Event::CbDeallocAll { device } => {
                self.tick();
                let chip = self.chip_column(*device);
                let (closing, keep): (Vec<u32>, Vec<u32>) = std::mem::take(&mut self.live_cbs)
                    .into_iter()
                    .partition(|&row| device.is_none() || self.allocs.chip.get(row as usize) == Some(&chip));
                self.live_cbs = keep;
                for row in closing {
                    self.close(row, None, None);
                }
            }
            Event::OpBegin(begin) => {
                self.tick();
                let row = i32::try_from(self.ops.len()).unwrap_or(i32::MAX);
                let parent = begin.parent.and_then(|p| self.op_rows.get(&p).copied()).unwrap_or(NO_OP);
                let name = self.strings.intern(&begin.name);
                self.ops.index.push(begin.index as f64);
                self.ops.name.push(name);
                self.ops.t0.push(self.clock);
                self.ops.t1.push(OPEN);
                self.ops.parent.push(parent);
                self.op_rows.insert(begin.index, row);
                self.open_ops.push(row);
            }
            Event::OpEnd { index } => {
                self.tick();
                let Some(&row) = self.op_rows.get(index) else { return };
                if let Some(t1) = self.ops.t1.get_mut(row as usize) {
                    *t1 = self.clock;
                }
                self.open_ops.retain(|&r| r != row);
                if self.ops.parent.get(row as usize) == Some(&NO_OP) {
                    self.usage.sample(self.clock);
                }
            }
            _ => {}
        }
    }

    fn start(&mut self, start: &CaptureStart) {
        self.chip_slots = start.mesh.device_ids.iter().enumerate().map(|(i, &d)| (d, i)).collect();
        self.core_slots = start.geometry.l1_bank_cores.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        self.usage = Usage::new(start.mesh.device_ids.len().max(1), start.geometry.l1_bank_cores.len());
        self.capture = Some(start.clone());
    }

    fn tick(&mut self) {
        self.clock = self.clock.saturating_add(1);
    }

    fn chip_column(&self, device: DeviceSel) -> u16 {
        match device {
            None => ALL_CHIPS,
            // A chip outside the mesh still gets drawn: its id stands in for a slot past the end.
            Some(d) => self.chip_slots.get(&d).map_or(d, |&s| s as u32).min(u32::from(ALL_CHIPS) - 1) as u16,
        }
    }

    fn current_op(&self, op: Option<u64>) -> i32 {
        match op {
            Some(index) => self.op_rows.get(&index).copied().unwrap_or(NO_OP),
            None => self.open_ops.last().copied().unwrap_or(NO_OP),
        }
    }

    fn add(&mut self, info: &BufferInfo, kind: Kind, op: Option<u64>, stack: Option<&str>) {
        let Some(capture) = self.capture.as_ref() else { return };
        let fp = footprint(info, &capture.geometry);
        self.tick();
        let units = match &fp {
            Footprint::AllUnits(_) => ALL_UNITS,
            Footprint::Units(list) => {
                let mut keys: Vec<u32> = list.iter().map(|(u, _)| u.key()).collect();
                keys.sort_unstable();
                keys.dedup();
                self.unit_set(keys)
            }
        };
        let (addr, per_unit) = match &fp {
            Footprint::AllUnits(r) => (r.start, r.end - r.start),
            Footprint::Units(list) => (list.first().map_or(info.address, |(_, r)| r.start), fp.max_len()),
        };
        let space = space_index(info.space);
        let layer = match parse_layer(&info.name) {
            Some(n) => self.layer(n),
            None => NO_LAYER,
        };
        let row = u32::try_from(self.allocs.len()).unwrap_or(u32::MAX);
        let name = self.strings.intern(&info.name);
        let astack = self.strings.intern_opt(stack);
        let aop = self.current_op(op);
        let chip = self.chip_column(info.device);
        let a = &mut self.allocs;
        a.id.push(info.id as f64);
        a.t0.push(self.clock);
        a.t1.push(OPEN);
        a.addr.push(addr as f64);
        a.size.push(per_unit as f64);
        a.total.push(info.size as f64);
        a.name.push(name);
        a.flags.push(role_index(info.role) | (space << flags::SPACE_SHIFT) | ((kind as u32) << flags::KIND_SHIFT));
        a.chip.push(chip);
        a.layer.push(layer);
        a.units.push(units);
        a.aop.push(aop);
        a.fop.push(NO_OP);
        a.astack.push(astack);
        a.fstack.push(0);
        self.rows_by_id.insert(info.id, row);
        if matches!(kind, Kind::CircularBuffer | Kind::GlobalCircularBuffer) {
            self.live_cbs.push(row);
        }
        // Aliasing circular buffers take no memory of their own: counting them would double it.
        if kind != Kind::GlobalCircularBuffer {
            let (slot, bytes, cores) = self.usage_delta(info, &fp);
            self.usage.alloc(slot, space as usize, bytes, &cores, self.clock, aop);
            self.live_usage.insert(row, (slot, space as usize, bytes, cores));
        }
        self.count_for_sample();
    }

    fn close(&mut self, row: u32, op: Option<u64>, stack: Option<&str>) {
        let r = row as usize;
        if self.allocs.t1.get(r) != Some(&OPEN) {
            // A double free: the analysis reports it; the map keeps the first free.
            return;
        }
        let fop = self.current_op(op);
        let fstack = self.strings.intern_opt(stack);
        self.allocs.t1[r] = self.clock;
        self.allocs.fop[r] = fop;
        self.allocs.fstack[r] = fstack;
        if let Some((slot, space, bytes, cores)) = self.live_usage.remove(&row) {
            self.usage.free(slot, space, bytes, &cores);
        }
        self.count_for_sample();
    }

    /// Chip slot, bytes per chip, and L1 bytes per core of an allocation.
    fn usage_delta(&self, info: &BufferInfo, fp: &Footprint) -> (Option<usize>, u64, CoreBytes) {
        let Some(capture) = self.capture.as_ref() else { return (None, 0, CoreBytes::NotL1) };
        let geometry = &capture.geometry;
        let slot = info.device.map(|d| self.chip_slots.get(&d).copied().unwrap_or(usize::MAX));
        let (bytes, cores) = match (fp, info.space) {
            (Footprint::AllUnits(r), Space::L1) => {
                ((r.end - r.start) * u64::from(geometry.l1_banks()), CoreBytes::Every(r.end - r.start))
            }
            (Footprint::AllUnits(r), space) => ((r.end - r.start) * u64::from(geometry.banks(space)), CoreBytes::NotL1),
            (Footprint::Units(list), Space::L1) => {
                let cores = list
                    .iter()
                    .filter_map(|(u, r)| match u {
                        Unit::Core(c) => self.core_slots.get(c).map(|&s| (s, r.end - r.start)),
                        Unit::Bank(_) => None,
                    })
                    .collect();
                (fp.total(0), CoreBytes::Some(cores))
            }
            (Footprint::Units(_), _) => (fp.total(0), CoreBytes::NotL1),
        };
        (slot, bytes, cores)
    }

    fn count_for_sample(&mut self) {
        if !self.ops.is_empty() {
            return;
        }
        self.since_sample += 1;
        if self.since_sample >= EVENTS_PER_SAMPLE_WITHOUT_OPS {
            self.since_sample = 0;
            self.usage.sample(self.clock);
        }
    }

    fn unit_set(&mut self, keys: Vec<u32>) -> u32 {
        if let Some(&i) = self.unit_set_index.get(&keys) {
            return i;
        }
        let i = u32::try_from(self.unit_sets.len()).unwrap_or(u32::MAX);
        self.unit_set_index.insert(keys.clone(), i);
        self.unit_sets.push(keys);
        i
    }

    fn layer(&mut self, n: u32) -> u16 {
        if let Some(&i) = self.layer_index.get(&n) {
            return i;
        }
        // Past 65535 distinct layers the rest share "no layer" rather than alias a real one.
        let Ok(i) = u16::try_from(self.layers.len()) else { return NO_LAYER };
        if i == NO_LAYER {
            return NO_LAYER;
        }
        self.layers.push(n);
        self.layer_index.insert(n, i);
        i
    }

    /// The capture's first record, once seen.
    pub fn capture(&self) -> Option<&CaptureStart> {
        self.capture.as_ref()
    }

    /// The allocation rows.
    pub fn allocs(&self) -> &AllocColumns {
        &self.allocs
    }

    /// The op rows.
    pub fn ops(&self) -> &OpColumns {
        &self.ops
    }

    /// The string table the rows index into.
    pub fn strings(&self) -> &StringTable {
        &self.strings
    }

    /// Layer numbers, indexed by the `layer` column.
    pub fn layers(&self) -> &[u32] {
        &self.layers
    }

    /// Unit sets, indexed by the `units` column: sorted [`Unit::key`]s; set 0 (every unit) is empty.
    pub fn unit_sets(&self) -> &[Vec<u32>] {
        &self.unit_sets
    }

    /// Usage counters and samples.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// The current time of the map clock (the end of the map once every event was fed).
    pub fn end_time(&self) -> u32 {
        self.clock.saturating_add(1)
    }

    /// The row of the allocation with trace id `id` (the latest, if the id was reused).
    pub fn row_of(&self, id: u64) -> Option<u32> {
        self.rows_by_id.get(&id).copied()
    }

    /// The op row of trace op index `index`.
    pub fn op_row(&self, index: u64) -> Option<i32> {
        self.op_rows.get(&index).copied()
    }

    /// The chip slot of device id `device` (its position in the mesh's device list).
    pub fn chip_slot(&self, device: u32) -> Option<usize> {
        self.chip_slots.get(&device).copied()
    }

    /// Events that came before the capture started and were ignored.
    pub fn ignored_events(&self) -> u64 {
        self.ignored
    }
}

/// Position of `space` in [`Space::ALL`].
pub fn space_index(space: Space) -> u32 {
    Space::ALL.iter().position(|&s| s == space).unwrap_or(0) as u32
}

/// Position of `role` in [`Role::ALL`].
pub fn role_index(role: Role) -> u32 {
    Role::ALL.iter().position(|&r| r == role).unwrap_or(Role::ALL.len() - 1) as u32
}

#[cfg(test)]
mod tests;
