//! The map's rows, stored column by column so they embed as packed typed arrays.

/// `t1` of an allocation that is still live (replaced by the end time when encoding).
pub const OPEN: u32 = u32::MAX;
/// `chip` of a mesh allocation, present on every chip.
pub const ALL_CHIPS: u16 = u16::MAX;
/// `layer` of an allocation whose name names no layer.
pub const NO_LAYER: u16 = u16::MAX;
/// `units` of an allocation that has the same range on every unit (interleaved).
pub const ALL_UNITS: u32 = 0;
/// `aop`/`fop`/`parent` when there is no op.
pub const NO_OP: i32 = -1;

/// How an allocation is laid out, as stored in bits 5..7 of its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// Interleaved over every bank.
    Interleaved = 0,
    /// Sharded over some units.
    Sharded = 1,
    /// A program's circular buffer.
    CircularBuffer = 2,
    /// A circular buffer aliasing an L1 buffer.
    GlobalCircularBuffer = 3,
}

/// Bit layout of the `flags` column.
pub mod flags {
    /// Role index ([`ttsan_events::Role::ALL`] order), bits 0..3.
    // Only the page (and the tests) read the role back; Rust writes it unshifted.
    #[allow(dead_code)]
    pub const ROLE_MASK: u32 = 0x7;
    /// Space index ([`ttsan_events::Space::ALL`] order), bits 3..5.
    pub const SPACE_SHIFT: u32 = 3;
    /// Layout kind ([`super::Kind`]), bits 5..7.
    pub const KIND_SHIFT: u32 = 5;
    /// Set when the allocation was never freed.
    pub const LIVE_AT_END: u32 = 1 << 7;
}

/// One column per field of an allocation; row `i` of every column is allocation `i`.
///
/// Rows are appended in allocation order, so `t0` never decreases: the page finds the rows that
/// start before a time with a binary search.
#[derive(Debug, Clone, Default)]
pub struct AllocColumns {
    /// Trace id.
    pub id: Vec<f64>,
    /// Time of the allocation.
    pub t0: Vec<u32>,
    /// Time of the free ([`OPEN`] while live).
    pub t1: Vec<u32>,
    /// Bank-local start address.
    pub addr: Vec<f64>,
    /// Bytes reserved per bank or core.
    pub size: Vec<f64>,
    /// Total size as the allocation asked (over all banks).
    pub total: Vec<f64>,
    /// Name (string table index).
    pub name: Vec<u32>,
    /// Role, space, kind and state bits (see [`flags`]).
    pub flags: Vec<u32>,
    /// Chip slot ([`ALL_CHIPS`] for a mesh allocation).
    pub chip: Vec<u16>,
    /// Layer list index, or [`NO_LAYER`].
    pub layer: Vec<u16>,
    /// Unit-set index ([`ALL_UNITS`] for interleaved).
    pub units: Vec<u32>,
    /// Allocating op row, or [`NO_OP`].
    pub aop: Vec<i32>,
    /// Freeing op row, or [`NO_OP`].
    pub fop: Vec<i32>,
    /// Allocation stack (string index, 0 for none).
    pub astack: Vec<u32>,
    /// Free stack (string index, 0 for none).
    pub fstack: Vec<u32>,
}

impl AllocColumns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.id.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }
}

/// One column per field of an op.
#[derive(Debug, Clone, Default)]
pub struct OpColumns {
    /// The op's sequence index from the trace.
    pub index: Vec<f64>,
    /// Name (string table index).
    pub name: Vec<u32>,
    /// Time the op began.
    pub t0: Vec<u32>,
    /// Time the op ended ([`OPEN`] if its end was never seen).
    pub t1: Vec<u32>,
    /// Enclosing op row, or [`NO_OP`].
    pub parent: Vec<i32>,
}

impl OpColumns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}
