//! The records every generator here builds, with the fields they all leave at their defaults
//! filled in once.

use ttsan_events::{BufferAlloc, BufferFree, Event, Layout, OpBegin, Role, Space};

/// An interleaved buffer on every chip of the mesh, without a stack; callers override `device`
/// or `stack` with struct update syntax.
#[allow(clippy::too_many_arguments)]
pub fn interleaved(
    id: u64,
    space: Space,
    address: u64,
    size: u64,
    page_size: u64,
    name: impl Into<String>,
    role: Role,
    op: Option<u64>,
) -> BufferAlloc {
    BufferAlloc {
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
        stack_id: None,
    }
}

/// A top-level op on every chip that declares nothing; callers add what it declares.
pub fn op_begin(index: u64, name: impl Into<String>) -> OpBegin {
    OpBegin {
        index,
        name: name.into(),
        devices: Vec::new(),
        args: String::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        scratch: Vec::new(),
        parent: None,
    }
}

/// Frees buffer `id`, inside `op` if given, without a stack.
pub fn free(id: u64, op: Option<u64>) -> Event {
    Event::BufferFree(BufferFree { id, op, stack: None, stack_id: None })
}
