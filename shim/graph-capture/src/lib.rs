//! Converts ttnn graph-capture JSON (`ttnn.graph.end_graph_capture_to_file`, or the bare node
//! list `end_graph_capture()` returns) into ttsan events.
//!
//! Both parameter shapes ttnn has written are read: the older one where every value is a
//! string and the newer typed one. Node mapping:
//!
//! | node | event |
//! |---|---|
//! | `capture_start` | [`Event::CaptureStart`] (geometry from the report's `devices[]`) |
//! | `buffer_allocate` / `buffer_deallocate` | [`Event::BufferAlloc`] / [`Event::BufferFree`], identity from the connected `buffer` node |
//! | `circular_buffer_allocate` | [`Event::CbAlloc`] |
//! | `circular_buffer_deallocate_all` | [`Event::CbDeallocAll`] |
//! | `function_start` / `function_end` | [`Event::OpBegin`] (nesting as `parent`) / [`Event::OpEnd`] |
//! | `tensor` | names of the buffers connected to it |
//! | `error` | [`Event::Mark`] |
//!
//! Unknown node types are skipped and counted; deallocations of buffers the capture never
//! allocated are kept (so analysis reports them). A capture whose addresses are all 0
//! (`NO_DISPATCH`) gets a warning and a [`Event::Mark`] saying so.
#![deny(missing_docs)]

mod convert;
mod core_range;
mod error;
mod geometry;
mod nodes;
mod params;

pub use core_range::parse_core_range_set;
pub use error::ImportError;
pub use geometry::arch_from_name;

use serde_json::Value;
use ttsan_events::{Arch, Event};

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Architecture to assume when the capture has no device info.
    pub arch: Arch,
    /// Recorded as the trace's `command`.
    pub command: String,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions { arch: Arch::WormholeB0, command: "import graph-capture".into() }
    }
}

/// Counts of what was imported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Buffer allocations.
    pub buffers: u64,
    /// Buffer deallocations.
    pub frees: u64,
    /// Circular buffers.
    pub circular_buffers: u64,
    /// Ops (function_start nodes).
    pub ops: u64,
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Import {
    /// The trace: `CaptureStart` first, `CaptureEnd` last.
    pub events: Vec<Event>,
    /// Things the caller should tell the user (one line each).
    pub warnings: Vec<String>,
    /// Counts.
    pub summary: Summary,
    /// Whether every buffer address was 0 (a `NO_DISPATCH` capture).
    pub no_dispatch: bool,
}

/// Imports a capture from its JSON text.
pub fn import_str(json: &str, opts: &ImportOptions) -> Result<Import, ImportError> {
    let doc: Value = serde_json::from_str(json)?;
    import_value(&doc, opts)
}

/// Imports an already parsed capture.
pub fn import_value(doc: &Value, opts: &ImportOptions) -> Result<Import, ImportError> {
    let list = nodes::graph_of(doc)?;
    let parsed = nodes::parse_nodes(list)?;
    let index = nodes::GraphIndex::new(&parsed);
    convert::Converter::new(&index, opts).run(doc, &parsed)
}
