//! Synthetic traces at any size, for benchmarks, scale tests and the allocation map's tests:
//!
//! - [`workload`]: a model-like op loop on a 1x8 mesh with guarded weights, digests and one
//!   coalesced write per bank, for the ingest and analysis benchmark (docs/performance.md);
//! - [`BigTrace`]: the shape of a long inference run (weights, KV cache, per-op activations and
//!   circular buffers) at any number of allocations, for the viz scale test (docs/viz.md);
//! - [`scenario`]: a small trace with a use-after-free and a guard corruption at known places
//!   (the browser test clicks them).
//!
//! They share one writer ([`write_trace`]). The first two stay separate generators because
//! published measurements were taken on each, and changing either would change those numbers.

mod big;
mod rng;
mod scenario;
mod workload;

pub use big::{BigTrace, BigTraceOptions};
pub use scenario::{scenario, HOSTILE_NAME};
pub use workload::workload;

use std::io::Write;
use ttsan_events::trace::TraceWriter;
use ttsan_events::Event;

/// Writes `events` as a trace to `out`.
pub fn write_trace<W: Write>(out: W, events: impl IntoIterator<Item = Event>) -> std::io::Result<W> {
    let mut writer = TraceWriter::new(out)?;
    for event in events {
        writer.write(&event)?;
    }
    writer.into_inner()
}
