//! Hand-built traces, one per finding kind, on a one-chip Wormhole B0.
//!
//! They are the inputs of the golden report tests and of the CLI's end-to-end tests, and a
//! compact illustration of which event sequences each detector reacts to.

use ttsan_events::{
    Arch, BufferAlloc, BufferFree, CaptureStart, CbAlloc, CoreCoord, CoreRange, Declared, Digest, Event, Geometry,
    GuardDigest, Layout, MeshDesc, OpBegin, Role, ShardSpec, Space, Unit, Write,
};

/// Builds event sequences with little ceremony.
#[derive(Debug)]
pub struct TraceBuilder {
    events: Vec<Event>,
    next_op: u64,
}

impl TraceBuilder {
    /// A trace on a `rows` x `cols` mesh of Wormhole B0 chips.
    pub fn wormhole(rows: u32, cols: u32) -> Self {
        let geometry = Geometry::mock(Arch::WormholeB0, rows * cols).unwrap_or_else(|_| Geometry::wormhole_b0());
        let start = CaptureStart {
            producer: "ttsan fixtures".into(),
            geometry,
            mesh: MeshDesc::grid(rows, cols),
            command: "hand-built".into(),
        };
        TraceBuilder { events: vec![Event::CaptureStart(start)], next_op: 0 }
    }

    /// Allocates an interleaved buffer on every chip of the mesh.
    #[allow(clippy::too_many_arguments)]
    pub fn alloc(
        &mut self,
        id: u64,
        name: &str,
        role: Role,
        space: Space,
        address: u64,
        size: u64,
        page_size: u64,
        op: Option<u64>,
    ) -> &mut Self {
        self.events.push(Event::BufferAlloc(BufferAlloc {
            id,
            device: None,
            space,
            address,
            size,
            page_size,
            layout: Layout::Interleaved,
            name: name.into(),
            role,
            op,
            stack: None,
        }));
        self
    }

    /// Appends any event.
    pub fn push(&mut self, event: Event) -> &mut Self {
        self.events.push(event);
        self
    }

    /// Allocates an interleaved buffer on one chip only.
    pub fn alloc_on(&mut self, device: u32, id: u64, name: &str, address: u64, size: u64) -> &mut Self {
        self.events.push(Event::BufferAlloc(BufferAlloc {
            id,
            device: Some(device),
            space: Space::Dram,
            address,
            size,
            page_size: 2048,
            layout: Layout::Interleaved,
            name: name.into(),
            role: Role::CclScratch,
            op: None,
            stack: None,
        }));
        self
    }

    /// Allocates a height-sharded L1 buffer over `cores`.
    pub fn alloc_sharded(&mut self, id: u64, name: &str, cores: &[CoreCoord], address: u64, page: u64) -> &mut Self {
        let units: Vec<Unit> = cores.iter().copied().map(Unit::Core).collect();
        let pages = cores.len() as u32;
        self.events.push(Event::BufferAlloc(BufferAlloc {
            id,
            device: None,
            space: Space::L1,
            address,
            size: u64::from(pages) * page,
            page_size: page,
            layout: Layout::Sharded(ShardSpec::height(units, pages, 1)),
            name: name.into(),
            role: Role::Activation,
            op: None,
            stack: None,
        }));
        self
    }

    /// Frees a buffer.
    pub fn free(&mut self, id: u64, op: Option<u64>) -> &mut Self {
        self.events.push(Event::BufferFree(BufferFree { id, op, stack: None }));
        self
    }

    /// Starts an op and returns its index.
    pub fn op(&mut self, name: &str, inputs: &[u64], outputs: &[u64], scratch: &[u64]) -> u64 {
        let index = self.next_op;
        self.next_op += 1;
        self.events.push(Event::OpBegin(OpBegin {
            index,
            name: name.into(),
            devices: Vec::new(),
            args: String::new(),
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            scratch: scratch.to_vec(),
            parent: None,
        }));
        index
    }

    /// Ends an op.
    pub fn end(&mut self, index: u64) -> &mut Self {
        self.events.push(Event::OpEnd { index });
        self
    }

    /// Declares more buffers for an op.
    pub fn declare(&mut self, index: u64, buffers: &[u64], relation: Declared) -> &mut Self {
        self.events.push(Event::OpDeclare { index, buffers: buffers.to_vec(), relation });
        self
    }

    /// A write to a DRAM bank.
    pub fn write_dram(&mut self, device: u32, bank: u32, address: u64, len: u64, op: Option<u64>) -> &mut Self {
        self.events.push(Event::Write(Write { device, space: Space::Dram, unit: Unit::Bank(bank), address, len, op }));
        self
    }

    /// A write to a core's L1.
    pub fn write_l1(&mut self, device: u32, core: CoreCoord, address: u64, len: u64, op: Option<u64>) -> &mut Self {
        self.events.push(Event::Write(Write { device, space: Space::L1, unit: Unit::Core(core), address, len, op }));
        self
    }

    /// Places a circular buffer for an op.
    pub fn cb(&mut self, id: u64, op: u64, cores: CoreRange, address: u64, size: u64) -> &mut Self {
        self.events.push(Event::CbAlloc(CbAlloc {
            id,
            device: None,
            cores: vec![cores],
            address,
            size,
            globally_allocated: false,
            name: format!("cb{id}"),
            op: Some(op),
        }));
        self
    }

    /// Guards a buffer.
    pub fn guard(&mut self, buffer: u64) -> &mut Self {
        self.events.push(Event::GuardRegister { buffer, reason: "fixture".into() });
        self
    }

    /// A digest of a guarded buffer on one chip: one digest per page, each page's digest
    /// derived from `seed` and the page number (change `seed` for a page to "change" it).
    pub fn digest(&mut self, buffer: u64, device: u32, after_op: Option<u64>, seeds: &[u8]) -> &mut Self {
        let pages: Vec<Digest> = seeds
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let mut d = [0u8; 16];
                d[0] = s;
                d[1] = i as u8;
                d
            })
            .collect();
        self.events.push(Event::GuardDigest(GuardDigest { buffer, device, after_op, pages, readable: true }));
        self
    }

    /// Ends the capture and returns the events.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.events);
        events.push(Event::CaptureEnd { dropped: 0 });
        events
    }
}

/// First allocatable DRAM address of the fixture chips.
pub const DRAM_BASE: u64 = 0x10_0040;

/// Every fixture, by name.
pub fn all() -> Vec<(&'static str, Vec<Event>)> {
    vec![
        ("oob-write", oob_write()),
        ("use-after-free", use_after_free()),
        ("foreign-write", foreign_write()),
        ("wild-write", wild_write()),
        ("guard-corruption", guard_corruption()),
        ("overlap", overlap()),
        ("cb-clash", cb_clash()),
        ("double-free", double_free()),
        ("unknown-free", unknown_free()),
        ("leak", leak()),
        ("clean", clean()),
    ]
}

/// An all-gather whose output is 12 pages of 2 KiB (one page per bank) overruns by 1 KiB into
/// the next buffer, on bank 0 of chip 0.
pub fn oob_write() -> Vec<Event> {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "x", Role::Activation, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    let op = b.op("ttnn.all_gather", &[1], &[], &[]);
    b.alloc(2, "x.gathered", Role::Activation, Space::Dram, DRAM_BASE + 2048, 12 * 2048, 2048, Some(op));
    b.alloc(3, "layer1.attn.sinks", Role::Weight, Space::Dram, DRAM_BASE + 4096, 12 * 2048, 2048, None);
    b.write_dram(0, 0, DRAM_BASE + 2048 + 1024, 2048, Some(op));
    b.end(op);
    b.finish()
}

/// The field bug in miniature: a reduce-scatter's cached intermediate is freed, the sinks are
/// allocated where it was, and the next reduce-scatter call writes through the stale address.
pub fn use_after_free() -> Vec<Event> {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "experts.out", Role::Activation, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    let rs1 = b.op("ttnn.experimental.reduce_scatter_minimal_async", &[1], &[], &[]);
    b.alloc(
        2,
        "experts.tp_allreduce.rs_intermediate",
        Role::CclScratch,
        Space::Dram,
        DRAM_BASE + 2048,
        12 * 2048,
        2048,
        Some(rs1),
    );
    b.write_dram(0, 3, DRAM_BASE + 2048, 2048, Some(rs1));
    b.end(rs1);
    let dealloc = b.op("ttnn.deallocate", &[2], &[], &[]);
    b.free(2, Some(dealloc));
    b.end(dealloc);
    b.alloc(3, "layer1.attn.sinks", Role::Weight, Space::Dram, DRAM_BASE + 2048, 12 * 2048, 2048, None);
    let rs2 = b.op("ttnn.experimental.reduce_scatter_minimal_async", &[1], &[], &[]);
    b.write_dram(0, 3, DRAM_BASE + 2048, 2048, Some(rs2));
    b.end(rs2);
    b.finish()
}

/// A matmul writes into a live KV cache it does not declare.
pub fn foreign_write() -> Vec<Event> {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "a", Role::Activation, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    b.alloc(2, "layer0.attn.kv_cache", Role::KvCache, Space::Dram, DRAM_BASE + 8192, 12 * 2048, 2048, None);
    let op = b.op("ttnn.matmul", &[1], &[], &[]);
    b.alloc(3, "a.out", Role::Activation, Space::Dram, DRAM_BASE + 2048, 12 * 2048, 2048, Some(op));
    b.write_dram(0, 5, DRAM_BASE + 8192 + 256, 512, Some(op));
    b.end(op);
    b.finish()
}

/// A write lands in DRAM that nothing owns.
pub fn wild_write() -> Vec<Event> {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "a", Role::Activation, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    let op = b.op("ttnn.embedding", &[1], &[], &[]);
    b.write_dram(0, 7, 0x4000_0000 - 0x10_0000, 64, Some(op));
    b.end(op);
    b.finish()
}

/// Digests only (what real hardware allows): the sinks change across the second reduce-scatter
/// call, whose program-cached intermediate used to live exactly there.
pub fn guard_corruption() -> Vec<Event> {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "experts.out", Role::Activation, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    let rs1 = b.op("ttnn.experimental.reduce_scatter_minimal_async", &[1], &[], &[]);
    b.alloc(
        2,
        "experts.tp_allreduce.rs_intermediate",
        Role::CclScratch,
        Space::Dram,
        DRAM_BASE + 2048,
        12 * 2048,
        2048,
        Some(rs1),
    );
    b.end(rs1);
    let dealloc = b.op("ttnn.deallocate", &[2], &[], &[]);
    b.free(2, Some(dealloc));
    b.end(dealloc);
    b.alloc(3, "layer1.attn.sinks", Role::Weight, Space::Dram, DRAM_BASE + 2048, 24 * 2048, 2048, None);
    b.guard(3);
    let seeds = [1u8; 24];
    b.digest(3, 0, None, &seeds);
    let rs2 = b.op("ttnn.experimental.reduce_scatter_minimal_async", &[1], &[], &[]);
    b.end(rs2);
    let mut changed = seeds;
    changed[3] = 9;
    changed[15] = 9;
    b.digest(3, 0, Some(rs2), &changed);
    let sdpa = b.op("ttnn.transformer.scaled_dot_product_attention", &[3], &[], &[]);
    b.end(sdpa);
    b.digest(3, 0, Some(sdpa), &changed);
    b.finish()
}

/// Two live buffers share DRAM.
pub fn overlap() -> Vec<Event> {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "weights.w1", Role::Weight, Space::Dram, DRAM_BASE, 24 * 2048, 2048, None);
    let op = b.op("ttnn.to_layout", &[1], &[], &[]);
    b.alloc(2, "w1.tilized", Role::Activation, Space::Dram, DRAM_BASE + 2048, 12 * 2048, 2048, Some(op));
    b.end(op);
    b.finish()
}

/// A matmul's circular buffers grow up into an L1 buffer allocated top-down.
pub fn cb_clash() -> Vec<Event> {
    let mut b = TraceBuilder::wormhole(1, 1);
    let base = Geometry::wormhole_b0().l1_unreserved_base;
    let cores = [CoreCoord::new(0, 0), CoreCoord::new(1, 0)];
    b.alloc_sharded(1, "layer0.mlp.l1_act", &cores, base + 0x1_0000, 4096);
    let op = b.op("ttnn.matmul", &[1], &[], &[]);
    b.cb(2, op, CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(1, 0)), base, 0x1_2000);
    b.end(op);
    b.finish()
}

/// A buffer freed twice.
pub fn double_free() -> Vec<Event> {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "tmp", Role::Activation, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    let op = b.op("ttnn.deallocate", &[1], &[], &[]);
    b.free(1, Some(op));
    b.end(op);
    let op2 = b.op("ttnn.deallocate", &[1], &[], &[]);
    b.free(1, Some(op2));
    b.end(op2);
    b.finish()
}

/// A free of an id never allocated.
pub fn unknown_free() -> Vec<Event> {
    let mut b = TraceBuilder::wormhole(1, 1);
    let op = b.op("ttnn.deallocate", &[], &[], &[]);
    b.free(42, Some(op));
    b.end(op);
    b.finish()
}

/// A buffer allocated and never freed (reported only with leak checking on).
pub fn leak() -> Vec<Event> {
    let mut b = TraceBuilder::wormhole(1, 1);
    let op = b.op("ttnn.add", &[], &[], &[]);
    b.alloc(1, "residual.tmp", Role::Activation, Space::L1, 0x16_d800, 64 * 2048, 2048, Some(op));
    b.end(op);
    b.finish()
}

/// A well-behaved op sequence: nothing to report.
pub fn clean() -> Vec<Event> {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "a", Role::Weight, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    b.guard(1);
    b.digest(1, 0, None, &[1; 12]);
    let op = b.op("ttnn.matmul", &[1], &[], &[]);
    b.alloc(2, "a.out", Role::Activation, Space::Dram, DRAM_BASE + 2048, 12 * 2048, 2048, Some(op));
    b.write_dram(0, 0, DRAM_BASE + 2048, 2048, Some(op));
    b.end(op);
    b.digest(1, 0, Some(op), &[1; 12]);
    let d = b.op("ttnn.deallocate", &[2], &[], &[]);
    b.free(2, Some(d));
    b.end(d);
    b.finish()
}
