//! Plain values crossing the safe API: architectures, buffer kinds, what the library reports.

use std::fmt;

/// A chip architecture tt-metal can mock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Wormhole B0 (1 chip: N150, 8 chips: T3K, 32 chips: Galaxy 6U).
    WormholeB0,
    /// Blackhole (1 chip: P150).
    Blackhole,
}

impl Arch {
    /// tt-metal's `tt::ARCH` value.
    pub(crate) fn raw(self) -> i32 {
        match self {
            Arch::WormholeB0 => 2,
            Arch::Blackhole => 3,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::WormholeB0 => "wormhole_b0",
            Arch::Blackhole => "blackhole",
        })
    }
}

/// tt-metal's `BufferType`, limited to the device memories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferKind {
    /// DRAM, interleaved over the DRAM banks.
    Dram,
    /// Tensix L1, interleaved over the compute cores.
    L1,
    /// The L1_SMALL region at the top of L1 (size fixed when the mesh is opened).
    L1Small,
    /// The trace region at the top of DRAM (size fixed when the mesh is opened).
    Trace,
}

impl BufferKind {
    /// tt-metal's `BufferType` value.
    pub fn raw(self) -> i32 {
        match self {
            BufferKind::Dram => 0,
            BufferKind::L1 => 1,
            BufferKind::L1Small => 3,
            BufferKind::Trace => 4,
        }
    }

    /// The kind of a `BufferType` value (`SYSTEM_MEMORY`, 2, is not a device memory).
    pub fn from_raw(raw: i32) -> Option<BufferKind> {
        match raw {
            0 => Some(BufferKind::Dram),
            1 => Some(BufferKind::L1),
            3 => Some(BufferKind::L1Small),
            4 => Some(BufferKind::Trace),
            _ => None,
        }
    }
}

/// Graph capture run mode (`IGraphProcessor::RunMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Real allocations; the capture holds real addresses.
    Normal,
    /// Allocations are suppressed; every address in the capture is 0.
    NoDispatch,
}

/// Sizes fixed when a mesh is opened (tt-metal's `l1_small_size` and `trace_region_size`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Bytes of L1_SMALL per core (0: L1_SMALL allocations fail).
    pub l1_small_size: u64,
    /// Bytes of trace region per DRAM bank (0: TRACE allocations fail).
    pub trace_region_size: u64,
    /// Open the real devices instead of configuring mock mode (a machine with Tenstorrent cards).
    pub hardware: bool,
}

/// The mesh as the library opened it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshInfo {
    /// Chips in the mesh.
    pub num_devices: u32,
    /// Mesh rows.
    pub rows: u32,
    /// Mesh columns.
    pub cols: u32,
    /// Device id at each mesh coordinate, row-major.
    pub device_ids: Vec<u32>,
}

/// What the allocator reports about one buffer type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpaceFacts {
    /// Banks interleaved buffers are spread over.
    pub num_banks: u32,
    /// `Allocator::get_alignment` (what page sizes are rounded up to in a bank).
    pub alignment: u32,
    /// `Allocator::get_bank_size`: allocatable bytes per bank.
    pub bank_size: u64,
}

/// The allocator's geometry as the library reports it (identical on every chip of a mesh).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocatorFacts {
    /// DRAM.
    pub dram: SpaceFacts,
    /// L1.
    pub l1: SpaceFacts,
    /// L1_SMALL.
    pub l1_small: SpaceFacts,
    /// TRACE.
    pub trace: SpaceFacts,
    /// `get_base_allocator_addr(DRAM)`: the DRAM unreserved base.
    pub dram_base: u64,
    /// `get_base_allocator_addr(L1)`: the L1 unreserved base, where circular buffers start.
    pub l1_base: u64,
    /// `get_worker_l1_size()`.
    pub worker_l1_size: u64,
    /// Logical core (x, y) of each L1 bank id (tt-metal shuffles the ids).
    pub l1_bank_cores: Vec<(u32, u32)>,
    /// `get_bank_offset(DRAM, bank)` for each DRAM bank (1 GiB on odd Wormhole views).
    pub dram_bank_offsets: Vec<i64>,
}

/// What the library reports about one allocated mesh buffer (its backing buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferInfo {
    /// Bank-local address (the same in every bank and on every chip).
    pub address: u64,
    /// Total bytes.
    pub size: u64,
    /// Page size.
    pub page_size: u64,
    /// Page size rounded up to the buffer's alignment.
    pub aligned_page_size: u64,
    /// Bytes the buffer occupies in each bank.
    pub aligned_size_per_bank: u64,
    /// tt-metal's `Buffer::unique_id`.
    pub unique_id: u64,
    /// Pages.
    pub num_pages: u32,
    /// `Buffer::alignment`.
    pub alignment: u32,
    /// Buffer type, if a device memory.
    pub kind: Option<BufferKind>,
    /// Whether the library considers it allocated.
    pub is_allocated: bool,
}
