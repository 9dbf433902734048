//! A generator of large traces with the shape of a long inference run.

use super::rng::Rng;
use crate::events::{free, interleaved, op_begin};
use std::collections::VecDeque;
use ttsan_events::{
    Arch, BufferAlloc, CaptureStart, CbAlloc, CoreCoord, CoreRange, Event, Geometry, Layout, MeshDesc, Role, ShardSpec,
    Space, Unit, Write,
};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigTraceOptions {
    /// Allocations in total (buffers and circular buffers).
    pub allocations: u64,
    /// Ops the allocations are spread over.
    pub ops: u64,
    /// Model layers the names cycle through.
    pub layers: u64,
    /// Seed of the generator.
    pub seed: u64,
    /// Whether to plant one use-after-free in the middle of the run.
    pub plant_use_after_free: bool,
}

impl Default for BigTraceOptions {
    fn default() -> Self {
        BigTraceOptions { allocations: 1_000_000, ops: 10_000, layers: 36, seed: 1, plant_use_after_free: true }
    }
}

const MODULES: [&str; 6] = ["attn.q", "attn.kv", "attn.out", "mlp.up", "mlp.gate", "mlp.down"];
const OP_NAMES: [&str; 6] = [
    "ttnn.matmul",
    "ttnn.experimental.all_gather_async",
    "ttnn.softmax",
    "ttnn.add",
    "ttnn.experimental.reduce_scatter_async",
    "ttnn.rms_norm",
];
const STACKS: [&str; 3] = [
    "model.py:212 Attention.forward\nttnn/decorators.py:88 __call__",
    "model.py:311 MLP.forward\nttnn/decorators.py:88 __call__",
    "model.py:95 Decoder.forward\nccl.py:40 all_gather",
];

/// Streams the events of a big trace (without holding them): weights and KV cache first, then
/// ops that each allocate activations in DRAM and L1 and place circular buffers, freeing the
/// previous op's activations.
pub struct BigTrace {
    opts: BigTraceOptions,
    rng: Rng,
    geometry: Geometry,
    queue: VecDeque<Event>,
    next_id: u64,
    allocated: u64,
    op: u64,
    per_op: u64,
    dram_cursor: u64,
    dram_ring: (u64, u64),
    l1_ring: (u64, u64),
    l1_cursor: u64,
    live_prev: Vec<u64>,
    live_now: Vec<u64>,
    started: bool,
    done: bool,
    victim_scratch: Option<(u64, u64)>,
}

impl BigTrace {
    /// A generator for `opts` on a 2x4 Wormhole B0 mesh (a T3K).
    pub fn new(opts: BigTraceOptions) -> Self {
        let geometry = Geometry::mock(Arch::WormholeB0, 8).unwrap_or_else(|_| Geometry::wormhole_b0());
        let base = geometry.dram_unreserved_base.next_multiple_of(4096);
        let dram_ring = (base + (256 << 20), base + (768 << 20));
        let l1_ring = (geometry.l1_unreserved_base + 256 * 1024, geometry.l1_size - geometry.l1_small_size);
        let per_op = opts.allocations.div_ceil(opts.ops.max(1)).max(1);
        BigTrace {
            rng: Rng::new(opts.seed),
            geometry,
            queue: VecDeque::new(),
            next_id: 1,
            allocated: 0,
            op: 0,
            per_op,
            dram_cursor: base,
            dram_ring,
            l1_ring,
            l1_cursor: l1_ring.1,
            live_prev: Vec::new(),
            live_now: Vec::new(),
            started: false,
            done: false,
            victim_scratch: None,
            opts,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.allocated += 1;
        self.next_id
    }

    fn start(&mut self) {
        self.queue.push_back(Event::CaptureStart(CaptureStart {
            producer: "ttsan-viz gen_big_trace".into(),
            geometry: self.geometry.clone(),
            mesh: MeshDesc::grid(2, 4),
            command: format!("synthetic: {} allocations over {} ops", self.opts.allocations, self.opts.ops),
        }));
        // Weights and KV cache: about 2% of the allocations, alive to the end.
        let persistent = (self.opts.allocations / 50).max(2);
        let banks = u64::from(self.geometry.dram_banks);
        for i in 0..persistent {
            let layer = i % self.opts.layers.max(1);
            let (role, name) = if i % 10 == 9 {
                (Role::KvCache, format!("layers.{layer}.attn.kv_cache.{}", i / 10))
            } else {
                (Role::Weight, format!("layers.{layer}.{}.weight{}", MODULES[(i % 6) as usize], i / 6))
            };
            let per_bank = 2048 * self.rng.range(1, 8);
            let id = self.id();
            let address = self.dram_cursor;
            self.dram_cursor += per_bank;
            self.queue.push_back(buffer(id, Space::Dram, address, per_bank * banks, name, role, None, None));
        }
    }

    fn next_op(&mut self) {
        let op = self.op;
        self.op += 1;
        let name = OP_NAMES[(op % OP_NAMES.len() as u64) as usize];
        let layer = (op / 6) % self.opts.layers.max(1);
        self.queue.push_back(Event::OpBegin(op_begin(op, name)));
        let banks = u64::from(self.geometry.dram_banks);
        let grid = self.geometry.worker_grid;
        let remaining = self.opts.allocations.saturating_sub(self.allocated);
        let count = self.per_op.min(remaining);
        let mut cb_addr = self.geometry.l1_unreserved_base;
        for k in 0..count {
            let id = self.id();
            let module = MODULES[(k % 6) as usize];
            let tensor = format!("layers.{layer}.{module}.t{k}");
            let stack = Some(STACKS[(k % 3) as usize].to_string());
            let mut pick = self.rng.range(0, 100);
            let cb_size = 2048 * self.rng.range(1, 4);
            if pick >= 85 && cb_addr + cb_size > self.l1_ring.0 {
                // The program's circular-buffer region is full: this one becomes a DRAM tensor
                // rather than clash with the L1 buffers above it.
                pick = 0;
            }
            let event = if pick < 60 {
                let per_bank = 2048 * self.rng.range(1, 64);
                let bounds = self.dram_ring;
                let address = ring(self.dram_cursor_ring(), per_bank, bounds);
                buffer(id, Space::Dram, address, per_bank * banks, tensor, Role::Activation, Some(op), stack)
            } else if pick < 85 {
                let pages = self.rng.range(1, 8) as u32;
                let per_core = u64::from(pages) * 2048;
                self.l1_cursor =
                    if self.l1_cursor < self.l1_ring.0 + per_core + 4096 { self.l1_ring.1 } else { self.l1_cursor };
                self.l1_cursor -= per_core;
                let x0 = self.rng.range(0, u64::from(grid.x)) as u16;
                let y0 = self.rng.range(0, u64::from(grid.y)) as u16;
                let range = CoreRange::new(CoreCoord::new(x0, y0), CoreCoord::new((x0 + 1).min(grid.x - 1), y0));
                let units: Vec<Unit> = range.cores().map(Unit::Core).collect();
                let spec = ShardSpec::height(units.clone(), pages * units.len() as u32, pages);
                Event::BufferAlloc(BufferAlloc {
                    id,
                    device: None,
                    space: Space::L1,
                    address: self.l1_cursor,
                    size: u64::from(pages) * units.len() as u64 * 2048,
                    page_size: 2048,
                    layout: Layout::Sharded(spec),
                    name: tensor,
                    role: Role::Activation,
                    op: Some(op),
                    stack,
                    stack_id: None,
                })
            } else {
                let size = cb_size;
                let cb = Event::CbAlloc(CbAlloc {
                    id,
                    device: None,
                    cores: vec![CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(grid.x - 1, grid.y - 1))],
                    address: cb_addr,
                    size,
                    globally_allocated: false,
                    name: format!("cb_{k}"),
                    op: Some(op),
                });
                cb_addr += size;
                self.queue.push_back(cb);
                continue;
            };
            self.queue.push_back(event);
            self.live_now.push(id);
        }
        if self.opts.plant_use_after_free {
            self.plant(op);
        }
        for id in std::mem::take(&mut self.live_prev) {
            self.queue.push_back(free(id, Some(op)));
        }
        self.live_prev = std::mem::take(&mut self.live_now);
        self.queue.push_back(Event::CbDeallocAll { device: None });
        self.queue.push_back(Event::OpEnd { index: op });
    }

    /// A CCL scratch on chip 3 freed one op after it was made, then written by the op after.
    fn plant(&mut self, op: u64) {
        let middle = self.opts.ops / 2;
        let banks = u64::from(self.geometry.dram_banks);
        if op == middle {
            let id = self.id();
            let address = self.dram_ring.0 - (8 << 20);
            self.queue.push_back(Event::BufferAlloc(BufferAlloc {
                device: Some(3),
                stack: Some(STACKS[2].to_string()),
                ..interleaved(
                    id,
                    Space::Dram,
                    address,
                    16 * 2048 * banks,
                    2048,
                    format!("ccl.all_gather.scratch{op}"),
                    Role::CclScratch,
                    Some(op),
                )
            }));
            self.victim_scratch = Some((id, address));
        } else if op == middle + 1 {
            if let Some((id, _)) = self.victim_scratch {
                self.queue.push_back(free(id, Some(op)));
            }
        } else if op == middle + 2 {
            if let Some((_, address)) = self.victim_scratch.take() {
                self.queue.push_back(Event::Write(Write {
                    device: 3,
                    space: Space::Dram,
                    unit: Unit::Bank(5),
                    address: address + 1024,
                    len: 4096,
                    op: Some(op),
                }));
            }
        }
    }

    fn dram_cursor_ring(&mut self) -> &mut u64 {
        if self.dram_cursor < self.dram_ring.0 {
            self.dram_cursor = self.dram_ring.0;
        }
        &mut self.dram_cursor
    }
}

/// Takes `len` bytes from a ring buffer `[lo, hi)`, wrapping to `lo` when the end is reached.
/// Activations live two ops at most, far less than a lap of the ring, so nothing overlaps.
fn ring(cursor: &mut u64, len: u64, (lo, hi): (u64, u64)) -> u64 {
    if *cursor + len > hi {
        *cursor = lo;
    }
    let at = *cursor;
    *cursor += len;
    at
}

/// An interleaved DRAM or L1 buffer of 2 KiB pages, with the allocating code's stack.
#[allow(clippy::too_many_arguments)]
fn buffer(
    id: u64,
    space: Space,
    address: u64,
    size: u64,
    name: String,
    role: Role,
    op: Option<u64>,
    stack: Option<String>,
) -> Event {
    Event::BufferAlloc(BufferAlloc { stack, ..interleaved(id, space, address, size, 2048, name, role, op) })
}

impl Iterator for BigTrace {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            if !self.started {
                self.started = true;
                self.start();
            } else if self.op < self.opts.ops {
                self.next_op();
            } else {
                for id in std::mem::take(&mut self.live_prev) {
                    self.queue.push_back(free(id, None));
                }
                self.queue.push_back(Event::CaptureEnd { dropped: 0 });
                self.done = true;
            }
        }
    }
}
