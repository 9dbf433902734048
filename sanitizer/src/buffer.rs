//! What the analysis remembers about an allocation.

use std::sync::Arc;
use ttsan_events::{BufferAlloc, CbAlloc, CoreRange, DeviceSel, Layout, Role, Space};

/// Whether an allocation is an ordinary buffer or a program's circular buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocKind {
    /// A buffer from the bank allocator.
    Buffer {
        /// Page layout.
        layout: Layout,
        /// Page size in bytes.
        page_size: u64,
    },
    /// A circular buffer on a set of cores.
    CircularBuffer {
        /// Cores it occupies.
        cores: Vec<CoreRange>,
        /// Whether it aliases an L1 buffer instead of the CB region.
        globally_allocated: bool,
    },
}

/// An allocation, live or freed, with its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferInfo {
    /// Id from the trace.
    pub id: u64,
    /// Chip, or `None` for every chip of the mesh.
    pub device: DeviceSel,
    /// Memory space.
    pub space: Space,
    /// Bank-local address.
    pub address: u64,
    /// Total bytes (for a circular buffer: bytes per core).
    pub size: u64,
    /// Buffer or circular buffer.
    pub kind: AllocKind,
    /// Name (may be empty).
    pub name: Arc<str>,
    /// Role.
    pub role: Role,
    /// Op during which it was allocated.
    pub alloc_op: Option<u64>,
    /// Allocation stack.
    pub alloc_stack: Option<Arc<str>>,
    /// Op during which it was freed (set once freed).
    pub free_op: Option<u64>,
    /// Deallocation stack.
    pub free_stack: Option<Arc<str>>,
    /// Whether it has been freed.
    pub freed: bool,
}

impl BufferInfo {
    /// From an allocation event.
    pub fn from_alloc(a: &BufferAlloc) -> Self {
        BufferInfo {
            id: a.id,
            device: a.device,
            space: a.space,
            address: a.address,
            size: a.size,
            kind: AllocKind::Buffer { layout: a.layout.clone(), page_size: a.page_size },
            name: Arc::from(a.name.as_str()),
            role: a.role,
            alloc_op: a.op,
            alloc_stack: a.stack.as_deref().map(Arc::from),
            free_op: None,
            free_stack: None,
            freed: false,
        }
    }

    /// From a circular-buffer event.
    pub fn from_cb(c: &CbAlloc) -> Self {
        BufferInfo {
            id: c.id,
            device: c.device,
            space: Space::L1,
            address: c.address,
            size: c.size,
            kind: AllocKind::CircularBuffer { cores: c.cores.clone(), globally_allocated: c.globally_allocated },
            name: Arc::from(c.name.as_str()),
            role: Role::CircularBuffer,
            alloc_op: c.op,
            alloc_stack: None,
            free_op: None,
            free_stack: None,
            freed: false,
        }
    }

    /// A printable name: the buffer's name, or `buffer #id` when it has none.
    pub fn display_name(&self) -> String {
        if self.name.is_empty() {
            format!("buffer #{}", self.id)
        } else {
            self.name.to_string()
        }
    }

    /// Whether this is a circular buffer.
    pub fn is_cb(&self) -> bool {
        matches!(self.kind, AllocKind::CircularBuffer { .. })
    }

    /// Whether the allocation exists on `device`.
    pub fn on_device(&self, device: u32) -> bool {
        self.device.is_none_or(|d| d == device)
    }

    /// Page size (0 for circular buffers).
    pub fn page_size(&self) -> u64 {
        match &self.kind {
            AllocKind::Buffer { page_size, .. } => *page_size,
            AllocKind::CircularBuffer { .. } => 0,
        }
    }

    /// Layout name as tt-metal prints it.
    pub fn layout_name(&self) -> &'static str {
        match &self.kind {
            AllocKind::Buffer { layout, .. } => layout.name(),
            AllocKind::CircularBuffer { .. } => "CIRCULAR_BUFFER",
        }
    }
}
