//! Synthetic traces: a small hand-built scenario with known findings, and a generator of
//! arbitrarily large traces for scale testing.
//!
//! Both exist so the page can be tested and measured without hardware or a model run: the
//! scenario puts a use-after-free and a guard corruption at known places (the browser test
//! clicks them), and the big trace has the shape of a long inference run (weights, KV cache,
//! per-op activations and circular buffers) at any size.

mod big;
mod rng;
mod scenario;

pub use big::{BigTrace, BigTraceOptions};
pub use scenario::{scenario, HOSTILE_NAME};

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
