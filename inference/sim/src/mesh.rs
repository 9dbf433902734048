//! The simulated mesh: chips, the one allocator they share, the buffers on them, and the
//! trace they report through a [`Recorder`].

use super::cache::{InFlight, OpCache};
use super::canary::CanaryTracker;
use super::chip::{par_chips, Chip};
use super::config::{DetectMode, MeshConfig};
use super::error::{SimError, SimResult};
use super::fault::{Fault, FaultPlan};
use super::guard::GuardTracker;
use super::memory::ChipMemory;
use super::placement::Placement;
use super::tensor::{MemoryConfig, Tensor, TensorSpec};
use super::write_log::WriteLog;
use std::collections::HashMap;
use std::sync::Arc;
use ttsan_alloc_model::{AllocError, AllocRequest, Allocator, AllocatorConfig};
use ttsan_events::{
    Arch, BufferAlloc, BufferFree, CaptureStart, CoreCoord, CoreRange, Event, Geometry, MeshDesc, Role, Unit,
};
use ttsan_shim::{IdAllocator, Recorder};

/// What the trace header names as producer.
pub const PRODUCER: &str = concat!("ttsan-sim ", env!("CARGO_PKG_VERSION"));

pub(crate) struct BufState {
    pub(crate) live: bool,
}

/// Counts of a finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStats {
    /// Ops run.
    pub ops: u64,
    /// Buffers allocated.
    pub buffers: u64,
    /// Host bytes the sparse chip memories hold.
    pub resident_bytes: u64,
}

/// A simulated R x C mesh of Tenstorrent chips.
pub struct Mesh {
    pub(crate) config: MeshConfig,
    pub(crate) geometry: Geometry,
    pub(crate) desc: MeshDesc,
    pub(crate) alloc: Allocator,
    pub(crate) chips: Vec<ChipMemory>,
    pub(crate) recorder: Arc<dyn Recorder>,
    pub(crate) ids: IdAllocator,
    pub(crate) next_op: u64,
    pub(crate) buffers: HashMap<u64, BufState>,
    pub(crate) guards: GuardTracker,
    pub(crate) canaries: CanaryTracker,
    pub(crate) faults: FaultPlan,
    pub(crate) calls: HashMap<String, u64>,
    pub(crate) cache: OpCache,
    pub(crate) open_ops: Vec<u64>,
    pub(crate) in_flight: Vec<InFlight>,
    ended: bool,
}

/// The allocator configuration for a mesh: the measured mock geometry where there is one;
/// otherwise the closest measured board (n300-style Wormhole chips keep a dispatch row,
/// a lone Blackhole p150 grid), because mesh shapes beyond the measured ones are still useful.
fn allocator_config(arch: Arch, chips: u32) -> AllocatorConfig {
    AllocatorConfig::mock(arch, chips).unwrap_or_else(|_| {
        let geometry = match arch {
            Arch::WormholeB0 => Geometry::mock(arch, 8).unwrap_or_else(|_| Geometry::wormhole_b0()),
            Arch::Blackhole => Geometry::blackhole(),
        };
        AllocatorConfig { geometry, chips }
    })
}

impl Mesh {
    /// Opens a mesh and writes the trace header.
    pub fn new(config: MeshConfig, recorder: Arc<dyn Recorder>) -> SimResult<Mesh> {
        if config.rows == 0 || config.cols == 0 {
            return Err(SimError::EmptyMesh { rows: config.rows, cols: config.cols });
        }
        let chips = config.rows * config.cols;
        let alloc_config = allocator_config(config.arch, chips);
        let geometry = alloc_config.geometry.clone();
        let desc = MeshDesc::grid(config.rows, config.cols);
        let guards = GuardTracker::new(&config.guards)?;
        let canaries = CanaryTracker::new(config.guards.canaries);
        let mesh = Mesh {
            faults: FaultPlan::new(config.faults.clone()),
            alloc: Allocator::new(alloc_config),
            chips: (0..chips).map(|_| ChipMemory::new()).collect(),
            recorder,
            ids: IdAllocator::starting_at(1),
            next_op: 0,
            buffers: HashMap::new(),
            guards,
            canaries,
            calls: HashMap::new(),
            cache: OpCache::default(),
            open_ops: Vec::new(),
            in_flight: Vec::new(),
            ended: false,
            geometry,
            desc,
            config,
        };
        mesh.emit(vec![Event::CaptureStart(CaptureStart {
            producer: PRODUCER.to_string(),
            geometry: mesh.geometry.clone(),
            mesh: mesh.desc.clone(),
            command: mesh.config.command.clone(),
        })]);
        Ok(mesh)
    }

    /// The chip geometry (all chips are alike).
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The mesh shape and device ids.
    pub fn desc(&self) -> &MeshDesc {
        &self.desc
    }

    /// Number of chips.
    pub fn num_devices(&self) -> usize {
        self.chips.len()
    }

    /// The detection mode.
    pub fn detect_mode(&self) -> DetectMode {
        self.config.detect
    }

    /// Whether ops only place their buffers and run no kernel ([`MeshConfig::placement_only`]).
    pub fn placement_only(&self) -> bool {
        self.config.placement_only
    }

    /// The allocator model (for address checks).
    pub fn allocator(&self) -> &Allocator {
        &self.alloc
    }

    /// The whole compute grid of a chip.
    pub fn compute_grid(&self) -> CoreRange {
        let g = self.geometry.worker_grid;
        CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(g.x.saturating_sub(1), g.y.saturating_sub(1)))
    }

    /// Whether events are built at all.
    pub(crate) fn recording(&self) -> bool {
        self.config.detect.enabled() && self.recorder.enabled()
    }

    pub(crate) fn emit(&self, events: Vec<Event>) {
        if self.recording() && !events.is_empty() {
            self.recorder.record_all(events);
        }
    }

    /// Adds a free-form note to the trace (module boundaries, phases).
    pub fn mark(&self, text: &str) {
        self.emit(vec![Event::Mark { text: text.to_string() }]);
    }

    /// The placement a spec would get at `address`, and the allocator request for it.
    fn plan(&self, spec: &TensorSpec) -> SimResult<(Placement, AllocRequest)> {
        let f = spec.format();
        let (page_size, pages) = (f.page_size(), f.num_pages());
        if pages == 0 || page_size == 0 {
            return Err(SimError::invalid("allocate", format!("tensor of shape {:?} holds no pages", spec.shape)));
        }
        let space = spec.memory.space();
        let stride = page_size.div_ceil(self.geometry.alignment(space)) * self.geometry.alignment(space);
        let size = pages * page_size;
        let (units, shard_pages, req) = match &spec.memory {
            MemoryConfig::DramInterleaved | MemoryConfig::L1Interleaved => {
                (self.geometry.units(space), None, AllocRequest::interleaved(space, size, page_size))
            }
            MemoryConfig::L1HeightSharded { cores } => {
                let grid = self.geometry.worker_grid;
                if cores.end.x >= grid.x
                    || cores.end.y >= grid.y
                    || cores.start.x > cores.end.x
                    || cores.start.y > cores.end.y
                {
                    return Err(SimError::invalid(
                        "allocate",
                        format!("shard grid {cores:?} is not inside the {}x{} compute grid", grid.x, grid.y),
                    ));
                }
                let units: Vec<Unit> = cores.cores().map(Unit::Core).collect();
                let n = units.len() as u64;
                if f.page_rows() % n != 0 {
                    return Err(SimError::invalid(
                        "allocate",
                        format!("{} page rows do not split evenly over {n} shard cores", f.page_rows()),
                    ));
                }
                let pps = f.page_rows() / n * f.pages_per_row();
                (units, Some(pps), AllocRequest::sharded(space, size, page_size, n as u32))
            }
        };
        Ok((Placement { space, address: 0, page_size, stride, pages, units, shard_pages }, req))
    }

    /// Allocates a buffer for `spec` (during op `op`, if any) and records it.
    pub(crate) fn alloc_buffer(
        &mut self,
        spec: &TensorSpec,
        name: &str,
        role: Role,
        op: Option<u64>,
    ) -> SimResult<Tensor> {
        let (mut placement, req) = self.plan(spec)?;
        placement.address = self.alloc.allocate(&req).map_err(|e| match e {
            // tt-metal's message names sizes, not the tensor: say which buffer it refused.
            AllocError::OutOfMemory(msg) => AllocError::OutOfMemory(format!("'{name}': {msg}")),
            other => other,
        })?;
        let id = self.ids.next();
        let placement = Arc::new(placement);
        self.emit(vec![Event::BufferAlloc(BufferAlloc {
            id,
            device: None,
            space: placement.space,
            address: placement.address,
            size: placement.size(),
            page_size: placement.page_size,
            layout: placement.layout(),
            name: name.to_string(),
            role,
            op,
            stack: None,
            stack_id: None,
        })]);
        self.buffers.insert(id, BufState { live: true });
        Ok(Tensor { id, name: Arc::from(name), role, spec: spec.clone(), placement })
    }

    /// Frees a buffer (during op `op`, if any) and records it.
    pub(crate) fn free_buffer(&mut self, t: &Tensor, op: Option<u64>) -> SimResult<()> {
        self.check_live(t)?;
        if let Some(b) = self.buffers.get_mut(&t.id) {
            b.live = false;
        }
        self.alloc.deallocate(t.space(), t.address());
        self.guards.forget(t.id);
        self.canaries.freed(t.id, t.placement.clone());
        self.emit(vec![Event::BufferFree(BufferFree { id: t.id, op, stack: None, stack_id: None })]);
        Ok(())
    }

    /// An error unless `t`'s buffer is live.
    pub(crate) fn check_live(&self, t: &Tensor) -> SimResult<()> {
        match self.buffers.get(&t.id) {
            Some(b) if b.live => Ok(()),
            Some(_) => Err(SimError::Deallocated { name: t.name().to_string(), id: t.id }),
            None => Err(SimError::UnknownBuffer(t.id)),
        }
    }

    /// Whether `t`'s buffer is still allocated.
    pub fn is_live(&self, t: &Tensor) -> bool {
        self.check_live(t).is_ok()
    }

    /// Allocates an uninitialised tensor on every chip (`ttnn.allocate_tensor_on_device`).
    pub fn allocate(&mut self, spec: &TensorSpec, name: &str, role: Role) -> SimResult<Tensor> {
        let op = self.open_ops.last().copied();
        self.alloc_buffer(spec, name, role, op)
    }

    /// Frees a tensor (`ttnn.deallocate`).
    pub fn deallocate(&mut self, t: &Tensor) -> SimResult<()> {
        let op = self.open_ops.last().copied();
        self.free_buffer(t, op)
    }

    /// Runs `f` on every chip in parallel outside any op (host transfers) and reports the
    /// writes as host writes.
    pub(crate) fn host_pass<D: Send, T: Send>(
        &mut self,
        data: Vec<D>,
        f: &(dyn Fn(&mut Chip<'_>, D) -> SimResult<T> + Sync),
    ) -> SimResult<Vec<T>> {
        let track = self.recording();
        let mut logs = vec![WriteLog::new(); self.chips.len()];
        let out = par_chips(&mut self.chips, &mut logs, &self.geometry, track, data, f)?;
        let mut events = Vec::new();
        if self.config.detect.writes() {
            events.extend(write_events(&logs, None));
        }
        if self.config.detect.digests() {
            events.extend(self.guards.check(None, &logs, &self.chips, false));
        }
        self.emit(events);
        Ok(out)
    }

    /// Starts the chips' journals of pre-op bytes (digest modes: first guard digests and
    /// canaries take the bytes from before the op there).
    pub(crate) fn start_journals(&mut self) {
        if self.config.detect.digests() && self.recording() {
            self.chips.iter_mut().for_each(ChipMemory::start_journal);
        }
    }

    /// Drops the journals.
    pub(crate) fn stop_journals(&mut self) {
        if self.config.detect.digests() && self.recording() {
            self.chips.iter_mut().for_each(ChipMemory::stop_journal);
        }
    }

    /// Starts guarding `t` if the selection picks it.
    pub(crate) fn maybe_guard(&mut self, t: &Tensor) {
        if !self.config.detect.digests() || !self.recording() {
            return;
        }
        if let Some(reason) = self.guards.reason(t.name(), t.role()) {
            let events = self.guards.register(t.id, reason, t.placement.clone(), self.chips.len());
            self.emit(events);
        }
    }

    /// Ends the run: reports faults that never took effect, and closes the trace.
    pub fn finish(mut self) -> SimResult<RunStats> {
        // Writes still in flight land before the device closes.
        self.land_in_flight(u64::MAX)?;
        self.end_capture();
        let stats = RunStats {
            ops: self.next_op,
            buffers: self.buffers.len() as u64,
            resident_bytes: self.chips.iter().map(ChipMemory::resident_bytes).sum(),
        };
        if let Some(f) = self.faults.unfired().next() {
            let calls = self.calls.get(f.op()).copied().unwrap_or(0);
            let why = match f {
                Fault::Stale { .. } if calls > 0 => {
                    format!("{} ran {calls} time(s) without a cached scratch address being reused", f.op())
                }
                Fault::Overrun { at, out: Some(glob), .. } => {
                    format!(
                        "{} ran {calls} time(s), but not {} time(s) with an output named like `{glob}`",
                        f.op(),
                        at.call
                    )
                }
                Fault::StrayWrite { at, .. } | Fault::Overrun { at, .. } if at.call > calls => {
                    format!("{} ran {calls} time(s), so call #{} never came", f.op(), at.call)
                }
                Fault::Overrun { at, .. } => format!("call #{} of {} had no output to overrun", at.call, f.op()),
                _ => format!("{} ran {calls} time(s)", f.op()),
            };
            return Err(SimError::NeverRan { spec: f.to_string(), why });
        }
        Ok(stats)
    }

    fn end_capture(&mut self) {
        if !self.ended {
            self.ended = true;
            self.emit(vec![Event::CaptureEnd { dropped: 0 }]);
        }
    }

    /// Frees every buffer the op cache still holds (persistent CCL intermediates and
    /// semaphores), as closing and reopening a device would; for hygiene between test cases.
    pub fn release_op_cache(&mut self) -> SimResult<()> {
        for t in self.cache.drain_live() {
            if self.is_live(&t) {
                self.free_buffer(&t, None)?;
            }
        }
        Ok(())
    }

    /// Lands the late fabric writes (the `deferred` fault) due by op index `now`: per issuing
    /// op, sending peer and receiving chip, one record of their own, an op of the issuing
    /// op's name on the peer chip (`devices`), whose `Write`s and digest checks name the
    /// receiving chip. The record stands for the tail of the issuing op on the peer, so the
    /// analysis names both chips.
    pub(crate) fn land_in_flight(&mut self, now: u64) -> SimResult<()> {
        if !self.in_flight.iter().any(|w| w.due <= now) {
            return Ok(());
        }
        let (due, later): (Vec<InFlight>, Vec<InFlight>) =
            std::mem::take(&mut self.in_flight).into_iter().partition(|w| w.due <= now);
        self.in_flight = later;
        let mut groups: Vec<((u64, usize, usize), Vec<InFlight>)> = Vec::new();
        for w in due {
            let key = (w.op, w.peer, w.device);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, ws)) => ws.push(w),
                None => groups.push((key, vec![w])),
            }
        }
        for ((op, peer, device), writes) in groups {
            let name = writes.first().map(|w| w.name.clone()).unwrap_or_default();
            // The record declares the receiver's buffer the peer sent into, as the op did: the
            // analysis then relates the damage to it (freed by now, or not).
            let mut buffers: Vec<u64> = writes.iter().map(|w| w.buffer).collect();
            buffers.dedup();
            let index = self.next_op;
            self.next_op += 1;
            self.emit(vec![Event::OpBegin(ttsan_events::OpBegin {
                index,
                name,
                devices: vec![peer as u32],
                args: format!("late fabric write of op #{op} from chip {peer} into chip {device}"),
                inputs: Vec::new(),
                outputs: Vec::new(),
                scratch: buffers,
                parent: Some(op),
            })]);
            self.start_journals();
            let mut logs = vec![WriteLog::new(); self.chips.len()];
            for w in &writes {
                let (Some(mem), Some(log)) = (self.chips.get_mut(w.device), logs.get_mut(w.device)) else { continue };
                let mut chip = Chip { device: w.device as u32, mem, log, geometry: &self.geometry, track: true };
                chip.write_bytes(w.space, w.unit, w.address, &w.bytes)?;
            }
            if self.config.detect.writes() {
                self.emit(write_events(&logs, Some(index)));
            }
            self.emit(vec![Event::OpEnd { index }]);
            if self.config.detect.digests() && self.recording() {
                let mut events = self.guards.check(Some(index), &logs, &self.chips, true);
                events.extend(self.canaries.check(
                    Some(index),
                    &[&logs],
                    &[],
                    &self.alloc,
                    &self.geometry,
                    &self.chips,
                ));
                self.emit(events);
            }
            self.stop_journals();
        }
        Ok(())
    }

    /// Host bytes held by the chip memories.
    pub fn resident_bytes(&self) -> u64 {
        self.chips.iter().map(ChipMemory::resident_bytes).sum()
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.end_capture();
    }
}

/// One `Write` per coalesced run, chips in order.
pub(crate) fn write_events(logs: &[WriteLog], op: Option<u64>) -> Vec<Event> {
    let mut events = Vec::new();
    for (device, log) in logs.iter().enumerate() {
        for (space, unit, r) in log.runs() {
            events.push(Event::Write(ttsan_events::Write {
                device: device as u32,
                space,
                unit,
                address: r.start,
                len: r.end - r.start,
                op,
            }));
        }
    }
    events
}
