//! Why the simulated mesh refused to do something.

use super::fault::FaultParseError;
use thiserror::Error;
use ttsan_alloc_model::AllocError;
use ttsan_events::{Space, Unit};

/// A failure of the simulated mesh, its ops or its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SimError {
    /// The allocator model refused (tt-metal's own message).
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// A fault specification could not be parsed.
    #[error(transparent)]
    Fault(#[from] FaultParseError),
    /// A mesh with no chips.
    #[error("a mesh needs at least one row and one column, got {rows}x{cols}")]
    EmptyMesh {
        /// Rows asked for.
        rows: u32,
        /// Columns asked for.
        cols: u32,
    },
    /// Static circular buffers of a program clash with an L1 buffer (tt-metal's message).
    #[error(
        "Statically allocated circular buffers in program {program} clash with L1 buffers on core range {cores}. L1 \
         buffer allocated at {buffer_at} and static circular buffer region ends at {region_end}"
    )]
    CbClash {
        /// The program (the op index).
        program: u64,
        /// The core range, as `CoreRange::str()` prints it.
        cores: String,
        /// The lowest occupied L1 address.
        buffer_at: u64,
        /// Where the circular-buffer region ends.
        region_end: u64,
    },
    /// Static circular buffers do not fit in L1 at all (tt-metal's message).
    #[error(
        "Statically allocated circular buffers on core range {cores} grow to {region_end} B which is beyond max L1 \
         size of {l1_size} B"
    )]
    CbBeyondL1 {
        /// The core range.
        cores: String,
        /// Where the region ends.
        region_end: u64,
        /// L1 size of a core.
        l1_size: u64,
    },
    /// A tensor whose buffer was freed was used.
    #[error("tensor '{name}' (buffer #{id}) was used after it was deallocated")]
    Deallocated {
        /// Tensor name.
        name: String,
        /// Buffer id.
        id: u64,
    },
    /// A buffer id this mesh never handed out.
    #[error("buffer #{0} does not belong to this mesh")]
    UnknownBuffer(u64),
    /// Shapes, dtypes or arguments that an op cannot take.
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// The op.
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// Host data whose length does not match its shape.
    #[error("host tensor of shape {shape:?} needs {expected} values, got {got}")]
    HostShape {
        /// The shape.
        shape: Vec<usize>,
        /// Values the shape needs.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// An access outside a memory unit.
    #[error("access of {len} B at {address:#x} on device {device} {space} {unit} is outside the unit's {size} B")]
    OutOfUnit {
        /// The chip.
        device: u32,
        /// The space.
        space: Space,
        /// The bank or core.
        unit: Unit,
        /// Start address.
        address: u64,
        /// Bytes.
        len: u64,
        /// Size of the unit.
        size: u64,
    },
    /// A device id that is not in the mesh.
    #[error("device {device} is not in this {rows}x{cols} mesh")]
    NoSuchDevice {
        /// The id.
        device: u32,
        /// Mesh rows.
        rows: u32,
        /// Mesh columns.
        cols: u32,
    },
    /// A bank or core that the chip does not have.
    #[error("{space} has no {unit} on this chip")]
    NoSuchUnit {
        /// The space.
        space: Space,
        /// The unit.
        unit: Unit,
    },
    /// An injected fault that never took effect.
    #[error("injected fault `{spec}` never ran: {why}")]
    NeverRan {
        /// The fault as given.
        spec: String,
        /// Why not.
        why: String,
    },
    /// A guard glob that is not a valid glob.
    #[error("guard pattern `{pattern}`: {reason}")]
    BadGuardPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A worker thread of the per-chip executor panicked.
    #[error("a per-chip worker thread panicked")]
    WorkerPanicked,
}

/// Results of the simulated mesh.
pub type SimResult<T> = Result<T, SimError>;

impl SimError {
    /// An [`SimError::InvalidArgument`] for `op`.
    pub fn invalid(op: &str, reason: impl Into<String>) -> Self {
        SimError::InvalidArgument { op: op.to_string(), reason: reason.into() }
    }
}
