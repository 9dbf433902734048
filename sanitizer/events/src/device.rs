//! Identifiers for places on a Tenstorrent device: architectures, memory spaces, cores, banks.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A Tenstorrent chip architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// Wormhole B0 (n150, n300, T3K, Galaxy).
    WormholeB0,
    /// Blackhole (p100, p150, p300, Blackhole Galaxy).
    Blackhole,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::WormholeB0 => "wormhole_b0",
            Arch::Blackhole => "blackhole",
        })
    }
}

/// A device memory space, as tt-metal's `BufferType` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    /// Device DRAM, split into banks that hold pages round-robin.
    Dram,
    /// Tensix L1 SRAM, one bank per compute core.
    L1,
    /// The small L1 region at the top of every core's L1 (its own allocator).
    L1Small,
    /// The trace region at the top of every DRAM bank.
    Trace,
}

impl Space {
    /// Every space, in a fixed order.
    pub const ALL: [Space; 4] = [Space::Dram, Space::L1, Space::L1Small, Space::Trace];

    /// Whether places in this space are DRAM banks (otherwise they are Tensix cores).
    pub fn is_dram(self) -> bool {
        matches!(self, Space::Dram | Space::Trace)
    }

    /// The lower-case name used in reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Space::Dram => "dram",
            Space::L1 => "l1",
            Space::L1Small => "l1_small",
            Space::Trace => "trace",
        }
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A logical Tensix core coordinate (x = column, y = row of the worker grid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CoreCoord {
    /// Column.
    pub x: u16,
    /// Row.
    pub y: u16,
}

impl CoreCoord {
    /// A core at column `x`, row `y`.
    pub const fn new(x: u16, y: u16) -> Self {
        CoreCoord { x, y }
    }
}

impl fmt::Display for CoreCoord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{})", self.x, self.y)
    }
}

/// An inclusive rectangle of cores, as tt-metal's `CoreRange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CoreRange {
    /// Top-left core (inclusive).
    pub start: CoreCoord,
    /// Bottom-right core (inclusive).
    pub end: CoreCoord,
}

impl CoreRange {
    /// A range from `start` to `end`, both inclusive.
    pub const fn new(start: CoreCoord, end: CoreCoord) -> Self {
        CoreRange { start, end }
    }

    /// A single-core range.
    pub const fn single(core: CoreCoord) -> Self {
        CoreRange { start: core, end: core }
    }

    /// The cores in this range, row by row.
    pub fn cores(&self) -> impl Iterator<Item = CoreCoord> + '_ {
        (self.start.y..=self.end.y).flat_map(move |y| (self.start.x..=self.end.x).map(move |x| CoreCoord::new(x, y)))
    }

    /// Whether `core` lies in this range.
    pub fn contains(&self, core: CoreCoord) -> bool {
        (self.start.x..=self.end.x).contains(&core.x) && (self.start.y..=self.end.y).contains(&core.y)
    }
}

/// One addressable memory unit inside a space: a DRAM bank, or a Tensix core's L1.
///
/// Addresses in ttsan are always bank-local, the way tt-metal's allocator hands them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A DRAM bank (tt-metal's DRAM bank id).
    Bank(u32),
    /// A Tensix core, by logical coordinate.
    Core(CoreCoord),
}

impl Unit {
    /// A compact integer key for this unit, unique within one space.
    pub fn key(self) -> u32 {
        match self {
            Unit::Bank(b) => b,
            Unit::Core(c) => (u32::from(c.x) << 16) | u32::from(c.y),
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unit::Bank(b) => write!(f, "bank {b}"),
            Unit::Core(c) => write!(f, "core {c}"),
        }
    }
}

/// The memory geometry of one chip, as the allocator sees it.
///
/// Recorded once per trace so that analysis never has to guess architecture constants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    /// Chip architecture.
    pub arch: Arch,
    /// Number of DRAM banks (allocator views): 12 on Wormhole B0, 8 on Blackhole.
    pub dram_banks: u32,
    /// Bytes addressable in one DRAM bank (the view size).
    pub dram_bank_size: u64,
    /// DRAM allocation alignment in bytes (32 on Wormhole B0, 64 on Blackhole).
    pub dram_alignment: u64,
    /// First allocatable DRAM address in every bank.
    pub dram_unreserved_base: u64,
    /// Size of the trace region at the top of every DRAM bank.
    pub trace_region_size: u64,
    /// L1 bytes per Tensix core.
    pub l1_size: u64,
    /// L1 alignment in bytes.
    pub l1_alignment: u64,
    /// Alignment the L1 bank managers actually use (tt-metal uses the DRAM alignment for them).
    pub l1_allocator_alignment: u64,
    /// First allocatable L1 address; circular buffers grow up from here.
    pub l1_unreserved_base: u64,
    /// Size of the L1_SMALL region at the top of every core's L1.
    pub l1_small_size: u64,
    /// Worker grid size (columns in `x`, rows in `y`).
    pub worker_grid: CoreCoord,
    /// The core behind each L1 bank id (tt-metal shuffles bank ids over the compute cores).
    pub l1_bank_cores: Vec<CoreCoord>,
}

impl Geometry {
    /// Number of L1 banks (one per compute core).
    pub fn l1_banks(&self) -> u32 {
        self.l1_bank_cores.len() as u32
    }

    /// Number of banks that interleaved buffers in `space` are spread over.
    pub fn banks(&self, space: Space) -> u32 {
        match space {
            Space::Dram | Space::Trace => self.dram_banks,
            Space::L1 | Space::L1Small => self.l1_banks(),
        }
    }

    /// The allocation alignment for `space` (what page sizes are rounded up to per bank).
    pub fn alignment(&self, space: Space) -> u64 {
        if space.is_dram() {
            self.dram_alignment
        } else {
            self.l1_alignment
        }
    }

    /// The unit that holds bank `bank` of `space`.
    pub fn bank_unit(&self, space: Space, bank: u32) -> Option<Unit> {
        if space.is_dram() {
            (bank < self.dram_banks).then_some(Unit::Bank(bank))
        } else {
            self.l1_bank_cores.get(bank as usize).copied().map(Unit::Core)
        }
    }

    /// Every unit of `space` on one chip.
    pub fn units(&self, space: Space) -> Vec<Unit> {
        if space.is_dram() {
            (0..self.dram_banks).map(Unit::Bank).collect()
        } else {
            self.l1_bank_cores.iter().copied().map(Unit::Core).collect()
        }
    }

    /// The byte size of every unit of `space` (a DRAM bank or a core's L1).
    pub fn unit_size(&self, space: Space) -> u64 {
        if space.is_dram() {
            self.dram_bank_size
        } else {
            self.l1_size
        }
    }
}

/// The shape of a mesh of chips and the device id at each mesh coordinate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshDesc {
    /// Mesh rows.
    pub rows: u32,
    /// Mesh columns.
    pub cols: u32,
    /// Device id at coordinate (r, c), stored row-major: `device_ids[r * cols + c]`.
    pub device_ids: Vec<u32>,
}

impl MeshDesc {
    /// A `rows` x `cols` mesh with device ids 0.. in row-major order.
    pub fn grid(rows: u32, cols: u32) -> Self {
        MeshDesc { rows, cols, device_ids: (0..rows * cols).collect() }
    }

    /// Number of chips.
    pub fn len(&self) -> usize {
        self.device_ids.len()
    }

    /// Whether the mesh has no chips.
    pub fn is_empty(&self) -> bool {
        self.device_ids.is_empty()
    }

    /// Mesh coordinate (row, col) of a device id.
    pub fn coord_of(&self, device: u32) -> Option<(u32, u32)> {
        let pos = self.device_ids.iter().position(|&d| d == device)? as u32;
        Some((pos / self.cols.max(1), pos % self.cols.max(1)))
    }
}

impl fmt::Display for MeshDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.rows, self.cols)
    }
}
