//! The op framework: what every simulated ttnn op does around its kernel.
//!
//! An op is begun with the buffers it reads, writes and uses as scratch (`OpBegin`), allocates
//! its outputs during the op, places its circular buffers (failing as tt-metal fails on a
//! clash with L1 buffers), runs its kernel on every chip through [`Chip`] accessors, and at
//! the end frees its temporaries, releases its circular buffers and reports what it wrote:
//! one `Write` per contiguous run per unit, and guard digests where guarded pages changed.
//! Injected faults are applied here, so every op gets them for free.

use super::cache::{CacheEntry, InFlight};
use super::canary::Owned;
use super::chip::{par_chips, Chip};
use super::error::{SimError, SimResult};
use super::fault::Fault;
use super::guard::{digest_on_chips, DigestJob};
use super::host::HostTensor;
use super::mesh::{write_events, Mesh};
use super::tensor::{Tensor, TensorSpec};
use super::write_log::WriteLog;
use ttsan_events::{CbAlloc, CoreRange, Declared, Event, OpBegin, OutputDigest, Role, Space};

/// A small deterministic generator for the skew (the simulator does not depend on the model's).
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Bytes a fault writes where the op had no business writing.
const FAULT_BYTE: u8 = 0xA5;

/// A circular buffer an op asks for: name and bytes per core.
pub type CbRequest<'a> = (&'a str, u64);

/// A running op. Dropping it without [`OpRun::finish`] (an error path) still ends it in
/// the trace and frees what it allocated.
pub struct OpRun<'m> {
    mesh: &'m mut Mesh,
    index: u64,
    name: String,
    call: u64,
    logs: Vec<WriteLog>,
    has_cbs: bool,
    temps: Vec<Tensor>,
    outputs: Vec<Tensor>,
    stale_frees: Vec<(String, Tensor)>,
    faults: Vec<(usize, Fault)>,
    cached: Vec<Tensor>,
    /// Live buffers the op may write (outputs, scratch, temporaries): canaries skip them.
    owned: Vec<Owned>,
    done: bool,
}

impl Mesh {
    /// Begins op `name` (as ttnn spells it) reading `inputs`, writing the existing `outputs`
    /// and using `scratch` (e.g. semaphores, persistent buffers).
    pub fn begin_op(
        &mut self,
        name: &str,
        args: String,
        inputs: &[&Tensor],
        outputs: &[&Tensor],
        scratch: &[&Tensor],
    ) -> SimResult<OpRun<'_>> {
        for t in inputs.iter().chain(outputs).chain(scratch) {
            self.check_live(t)?;
        }
        // Late fabric writes due by now land first, each as a record of its own (the peer
        // chip that sent them), before this op begins.
        let due = self.next_op;
        self.land_in_flight(due)?;
        self.start_journals();
        let index = self.next_op;
        self.next_op += 1;
        let call = {
            let c = self.calls.entry(name.to_string()).or_insert(0);
            *c += 1;
            *c
        };
        let parent = self.open_ops.last().copied();
        self.open_ops.push(index);
        let ids = |ts: &[&Tensor]| ts.iter().map(|t| t.id).collect::<Vec<u64>>();
        self.emit(vec![Event::OpBegin(OpBegin {
            index,
            name: name.to_string(),
            devices: Vec::new(),
            args,
            inputs: ids(inputs),
            outputs: ids(outputs),
            scratch: ids(scratch),
            parent,
        })]);
        let faults = self.faults.for_call(name, call);
        let n = self.chips.len();
        let owned = outputs.iter().chain(scratch).map(|t| (t.id, t.placement.clone())).collect();
        Ok(OpRun {
            index,
            name: name.to_string(),
            call,
            logs: vec![WriteLog::new(); n],
            has_cbs: false,
            temps: Vec::new(),
            outputs: outputs.iter().map(|t| (*t).clone()).collect(),
            stale_frees: Vec::new(),
            faults,
            cached: Vec::new(),
            owned,
            done: false,
            mesh: self,
        })
    }
}

impl OpRun<'_> {
    /// The op's sequence index in the trace.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Which call of this op name this is (1-based).
    pub fn call(&self) -> u64 {
        self.call
    }

    /// The mesh (read-only while the op runs).
    pub fn mesh(&self) -> &Mesh {
        self.mesh
    }

    /// The whole compute grid.
    pub fn compute_grid(&self) -> CoreRange {
        self.mesh.compute_grid()
    }

    /// Allocates an output of the op.
    pub fn alloc_output(&mut self, spec: &TensorSpec, name: &str, role: Role) -> SimResult<Tensor> {
        let t = self.mesh.alloc_buffer(spec, name, role, Some(self.index))?;
        self.owned.push((t.id, t.placement.clone()));
        self.outputs.push(t.clone());
        Ok(t)
    }

    /// Allocates a temporary the op frees when it ends.
    pub fn alloc_temp(&mut self, spec: &TensorSpec, name: &str, role: Role) -> SimResult<Tensor> {
        let t = self.mesh.alloc_buffer(spec, name, role, Some(self.index))?;
        self.owned.push((t.id, t.placement.clone()));
        self.temps.push(t.clone());
        Ok(t)
    }

    /// A persistent scratch buffer from the op cache: allocated on the first call with this
    /// `key`, declared as scratch on later calls. Under a `stale` fault the buffer is freed at
    /// the end of the first call while the cache keeps its address, which later calls use.
    pub fn cached_scratch(&mut self, key: &str, spec: &TensorSpec, name: &str, role: Role) -> SimResult<Tensor> {
        match self.mesh.cache.get(&self.name, key).cloned() {
            None => {
                let t = self.mesh.alloc_buffer(spec, name, role, Some(self.index))?;
                self.mesh.cache.insert(&self.name, key, CacheEntry { tensor: t.clone(), stale: false });
                if self.mesh.faults.stale(&self.name).is_some() {
                    self.stale_frees.push((key.to_string(), t.clone()));
                }
                self.cached.push(t.clone());
                self.owned.push((t.id, t.placement.clone()));
                Ok(t)
            }
            Some(entry) => {
                if entry.stale {
                    if let Some(i) = self.mesh.faults.stale(&self.name) {
                        self.mesh.faults.fired(i);
                    }
                }
                self.declare(&[&entry.tensor], Declared::Scratch);
                self.cached.push(entry.tensor.clone());
                Ok(entry.tensor)
            }
        }
    }

    /// Declares more buffers the op uses (`OpDeclare`).
    pub fn declare(&mut self, tensors: &[&Tensor], relation: Declared) {
        if tensors.is_empty() {
            return;
        }
        if relation != Declared::Input {
            // A freed buffer behind a stale cached address is not the op's to write.
            let live = tensors.iter().filter(|t| self.mesh.is_live(t));
            let owned: Vec<Owned> = live.map(|t| (t.id, t.placement.clone())).collect();
            self.owned.extend(owned);
        }
        self.mesh.emit(vec![Event::OpDeclare {
            index: self.index,
            buffers: tensors.iter().map(|t| t.id).collect(),
            relation,
        }]);
    }

    /// Places the program's static circular buffers on `cores`, from the L1 unreserved base
    /// upward, and fails as tt-metal does when the region reaches an L1 buffer. Returns where
    /// the region ends (plan mode reports the L1 peak from it).
    pub fn circular_buffers(&mut self, cores: CoreRange, cbs: &[CbRequest<'_>]) -> SimResult<u64> {
        let g = &self.mesh.geometry;
        let align = g.l1_alignment.max(1);
        let mut addr = g.l1_unreserved_base;
        let mut events = Vec::with_capacity(cbs.len());
        for (name, size) in cbs {
            addr = addr.div_ceil(align) * align;
            events.push(Event::CbAlloc(CbAlloc {
                id: self.mesh.ids.next(),
                device: None,
                cores: vec![cores],
                address: addr,
                size: *size,
                globally_allocated: false,
                name: (*name).to_string(),
                op: Some(self.index),
            }));
            addr += size;
        }
        let region_end = addr;
        let l1_size = g.l1_size;
        self.has_cbs |= !events.is_empty();
        self.mesh.emit(events);
        let core_text = format!("[(x={},y={}) - (x={},y={})]", cores.start.x, cores.start.y, cores.end.x, cores.end.y);
        if region_end > l1_size {
            return Err(SimError::CbBeyondL1 { cores: core_text, region_end, l1_size });
        }
        if let Some(low) = self.mesh.alloc.manager(Space::L1).lowest_occupied_address() {
            if low < region_end {
                return Err(SimError::CbClash { program: self.index, cores: core_text, buffer_at: low, region_end });
            }
        }
        Ok(region_end)
    }

    /// The op's device work: reads, kernels, writes and semaphore signals, all in `work`. The
    /// one place placement-only meshes are honoured: there `work` is skipped, so every op
    /// (per-chip or collective) places exactly its buffers, circular buffers and semaphores
    /// and writes nothing, as plan mode needs.
    pub fn compute(&mut self, work: impl FnOnce(&mut Self) -> SimResult<()>) -> SimResult<()> {
        if self.mesh.placement_only() {
            return Ok(());
        }
        work(self)
    }

    /// Runs `kernel` on every chip (in parallel) and returns its results in device order.
    pub fn run<T: Send>(&mut self, kernel: impl Fn(&mut Chip<'_>) -> SimResult<T> + Sync) -> SimResult<Vec<T>> {
        let n = self.logs.len();
        self.run_with(vec![(); n], move |chip, ()| kernel(chip))
    }

    /// Runs `kernel` on every chip with that chip's element of `data` (device order).
    pub fn run_with<D: Send, T: Send>(
        &mut self,
        data: Vec<D>,
        kernel: impl Fn(&mut Chip<'_>, D) -> SimResult<T> + Sync,
    ) -> SimResult<Vec<T>> {
        let track = self.mesh.recording();
        let m = &mut *self.mesh;
        par_chips(&mut m.chips, &mut self.logs, &m.geometry, track, data, &kernel)
    }

    /// Every chip's values of `t`.
    pub fn read(&mut self, t: &Tensor) -> SimResult<Vec<HostTensor>> {
        self.run(|chip| Ok(chip.read(t)))
    }

    /// Writes one host tensor per chip into `t`.
    pub fn write(&mut self, t: &Tensor, values: Vec<HostTensor>) -> SimResult<()> {
        self.run_with(values, |chip, v| chip.write(t, &v)).map(|_| ())
    }

    /// Ends the op.
    pub fn finish(mut self) -> SimResult<()> {
        self.done = true;
        self.complete(false)
    }

    fn apply_faults(&mut self) -> SimResult<()> {
        for (i, fault) in std::mem::take(&mut self.faults) {
            match fault {
                Fault::StrayWrite { device, space, unit, address, len, .. } => {
                    let (rows, cols) = (self.mesh.desc.rows, self.mesh.desc.cols);
                    let d = device as usize;
                    if d >= self.logs.len() {
                        return Err(SimError::NoSuchDevice { device, rows, cols });
                    }
                    let data = vec![FAULT_BYTE; len as usize];
                    self.chip(d).write_bytes(space, unit, address, &data)?;
                    self.mesh.faults.fired(i);
                }
                Fault::Overrun { bytes, .. } => {
                    let Some(out) = self.outputs.first().cloned() else { continue };
                    if !self.mesh.faults.matches(i, out.name()) {
                        continue;
                    }
                    let p = out.placement().clone();
                    let Some((unit, end)) = p.last_unit_end() else { continue };
                    // The kernel rewrites its last page slot and runs on past the end, so the
                    // write starts inside the output, as a real overrun does.
                    let start = end - p.stride;
                    for d in 0..self.logs.len() {
                        let mut chip = self.chip(d);
                        let mut data = vec![0u8; p.stride as usize];
                        chip.read_bytes(p.space, unit, start, &mut data);
                        data.resize(data.len() + bytes as usize, FAULT_BYTE);
                        chip.write_bytes(p.space, unit, start, &data)?;
                    }
                    self.mesh.faults.fired(i);
                }
                Fault::Stale { .. } => {}
                Fault::Deferred { scratch, seed, .. } => {
                    if self.defer_scratch_writes(&scratch, seed)? {
                        self.mesh.faults.fired(i);
                    }
                }
            }
        }
        Ok(())
    }

    /// Cross-chip skew: holds back what a peer chip wrote into the receiver's copy of this
    /// call's scratch or intermediate buffers named like `glob`; the bytes land some ops later
    /// (see [`Fault::Deferred`]). The receiver's ring predecessor in the mesh row is the
    /// peer, as a ring reduce-scatter forwards partial sums to the next chip. The whole
    /// per-unit extent is taken, because the op's last step writes every page of it.
    fn defer_scratch_writes(&mut self, glob: &str, seed: Option<u64>) -> SimResult<bool> {
        let matcher = globset::Glob::new(glob)
            .map_err(|e| SimError::invalid(&self.name, format!("bad scratch glob `{glob}`: {e}")))?
            .compile_matcher();
        let n = self.logs.len();
        let cols = (self.mesh.desc.cols as usize).max(1);
        // Which receivers are late, and by how many ops.
        let late: Vec<(usize, u64)> = match seed {
            None => (0..n).map(|d| (d, 2)).collect(),
            Some(seed) => {
                let mut rng = SplitMix::new(seed ^ self.call.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let receiver = (rng.next() % n.max(1) as u64) as usize;
                let delay = rng.next() % 3;
                if delay == 0 {
                    // On time: the seed decided, the fault took effect and nothing is late.
                    return Ok(self.cached.iter().chain(&self.temps).any(|t| matcher.is_match(t.name())));
                }
                vec![(receiver, delay)]
            }
        };
        let mut any = false;
        let buffers: Vec<Tensor> = self.cached.iter().chain(&self.temps).cloned().collect();
        for t in buffers.iter().filter(|t| matcher.is_match(t.name())) {
            let p = t.placement().clone();
            let extent = p.per_unit();
            for &(d, delay) in &late {
                let (row, col) = (d / cols, d % cols);
                let peer = row * cols + (col + cols - 1) % cols;
                for &unit in &p.units {
                    let mut bytes = vec![0u8; extent as usize];
                    self.mesh.chips[d].read(p.space, unit, p.address, &mut bytes);
                    self.logs[d].remove(p.space, unit, p.address, p.address + extent);
                    self.mesh.in_flight.push(InFlight {
                        op: self.index,
                        name: self.name.clone(),
                        peer,
                        buffer: t.id,
                        device: d,
                        due: self.index + delay,
                        space: p.space,
                        unit,
                        address: p.address,
                        bytes,
                    });
                    any = true;
                }
            }
        }
        Ok(any)
    }

    /// Every live output's pages on every chip, as the op leaves them.
    fn output_digests(&self) -> Vec<Event> {
        let m = &*self.mesh;
        let mut events = Vec::new();
        for t in self.outputs.iter().filter(|t| m.is_live(t)) {
            let p = t.placement();
            let all: Vec<u64> = (0..p.pages).collect();
            let jobs: Vec<DigestJob<'_>> = m.chips.iter().map(|mem| (mem, all.as_slice(), None)).collect();
            for (device, pages) in digest_on_chips(p, &jobs).into_iter().enumerate() {
                events.push(Event::OutputDigest(OutputDigest {
                    op: self.index,
                    buffer: t.id,
                    device: device as u32,
                    pages,
                }));
            }
        }
        events
    }

    /// The buffer a cached program's runtime arguments name for `t` (the program hash
    /// `key`): on a cache miss the program is built for `t`; on a hit tt-metal's override
    /// callback re-patches the argument to `t`, unless a `stale` fault keeps the address the
    /// program was built for, whose buffer may be freed and its space reallocated by now.
    pub fn runtime_arg(&mut self, key: &str, t: &Tensor) -> Tensor {
        let baked = self.mesh.cache.program_arg(&self.name, key).cloned();
        match (baked, self.mesh.faults.stale(&self.name)) {
            (Some(old), Some(i)) if old.id != t.id => {
                self.mesh.faults.fired(i);
                old
            }
            _ => {
                self.mesh.cache.set_program_arg(&self.name, key, t.clone());
                t.clone()
            }
        }
    }

    fn chip(&mut self, d: usize) -> Chip<'_> {
        let track = self.mesh.recording();
        let m = &mut *self.mesh;
        Chip { device: d as u32, mem: &mut m.chips[d], log: &mut self.logs[d], geometry: &m.geometry, track }
    }

    fn complete(&mut self, failed: bool) -> SimResult<()> {
        let fault_result = if failed { Ok(()) } else { self.apply_faults() };
        let mut events = Vec::new();
        if self.mesh.config.detect.writes() {
            events.extend(write_events(&self.logs, Some(self.index)));
        }
        self.mesh.emit(events);
        let mut frees: Vec<Tensor> = std::mem::take(&mut self.temps);
        for (key, t) in std::mem::take(&mut self.stale_frees) {
            self.mesh.cache.mark_stale(&self.name, &key);
            frees.push(t);
        }
        if failed {
            frees.extend(self.outputs.iter().filter(|t| t.role() != Role::Weight).cloned());
        }
        for t in &frees {
            if self.mesh.is_live(t) {
                self.mesh.free_buffer(t, Some(self.index))?;
            }
        }
        let mut tail = Vec::new();
        if self.has_cbs {
            tail.push(Event::CbDeallocAll { device: None });
        }
        tail.push(Event::OpEnd { index: self.index });
        self.mesh.emit(tail);
        self.mesh.open_ops.retain(|&i| i != self.index);
        if self.mesh.config.detect.digests() && self.mesh.recording() {
            let mut events = self.mesh.guards.check(Some(self.index), &self.logs, &self.mesh.chips, true);
            let m = &*self.mesh;
            let logs = [self.logs.as_slice()];
            events.extend(m.canaries.check(Some(self.index), &logs, &self.owned, &m.alloc, &m.geometry, &m.chips));
            self.mesh.emit(events);
        }
        if self.mesh.config.digest_outputs && !self.mesh.config.placement_only && self.mesh.recording() && !failed {
            let events = self.output_digests();
            self.mesh.emit(events);
        }
        // New outputs are guarded after the check: their first digests are taken now, so the
        // check would only hash their pages a second time.
        if !failed {
            for t in self.outputs.clone() {
                if self.mesh.is_live(&t) && !self.mesh.guards.contains(t.id) {
                    self.mesh.maybe_guard(&t);
                }
            }
        }
        self.mesh.stop_journals();
        fault_result
    }
}

impl Drop for OpRun<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            let _ = self.complete(true);
        }
    }
}
