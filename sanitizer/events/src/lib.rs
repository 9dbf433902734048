//! The event vocabulary of ttsan and the trace file that carries it.
//!
//! Every backend (the simulated mesh, the LD_PRELOAD shim over the real `libtt_metal.so`,
//! the graph-capture importer) describes what happened on the device as a stream of
//! [`Event`]s. The stream is written with [`trace::TraceWriter`] and read back, even when the
//! producer crashed mid-record, with [`trace::TraceReader`].
//!
//! This crate is deliberately small: the capture shim links it and nothing of the analysis.
#![deny(missing_docs)]

mod device;
mod event;
mod facts;
mod layout;
mod pages;
pub mod ranges;
pub mod semantics;
pub mod trace;

pub use device::{Arch, CoreCoord, CoreRange, Geometry, MeshDesc, Space, Unit};
pub use event::{
    BufferAlloc, BufferFree, CanaryDigest, CaptureStart, CbAlloc, Declared, DeviceSel, Digest, Event, GuardDigest,
    MeshTrace, OpBegin, OutputDigest, ProgramRun, Role, Runtime, TraceAction, Write,
};
pub use facts::{l1_bank_cores, UnknownMesh};
pub use layout::{Layout, ShardScheme, ShardSpec};
pub use pages::{digest_of, page_address, page_digest, PageMap};
pub use semantics::{op_semantics, OpSemantics};
