//! Capture: how backends hand their events to ttsan.
//!
//! Every backend (the simulated mesh, the LD_PRELOAD shim over the real `libtt_metal.so`, the
//! graph-capture importer) reports through the same [`Recorder`] interface, so the analysis
//! never needs to know where a trace came from.
#![deny(missing_docs)]

mod file;
mod memory;
mod recorder;

pub use file::{FileRecorder, RecorderError};
pub use memory::{MemoryRecorder, NullRecorder};
pub use recorder::{IdAllocator, Recorder};
pub use ttsan_events as events;
