//! CI guard: turns an analysis into a pass/fail verdict a CI job can trust, and into the
//! artifacts CI systems read.
//!
//! The pieces:
//!
//! - `scan`: reads a trace file into an [`Analysis`](crate::Analysis) plus the facts about
//!   the run itself ([`TraceFacts`]: damaged records, a capture that started, shim errors).
//! - `checks`: the run-level checks that must fail a job even when no finding was made
//!   (unreadable or torn trace, no allocations recorded, a shim that did not load).
//! - `suppress` and `baseline`: findings that must not fail the job, each with a reason.
//! - `gate`: combines all of the above into a [`Gate`] and its [`Verdict`].
//! - [`summary`], [`junit`], [`sarif`], [`json`]: the outputs.
//! - `graph_capture`: ttnn's graph-capture report, for ttnn-visualizer.
//! - `perfetto`: a Chrome trace-event export of a trace (ops, memory counters, findings).

mod baseline;
mod checks;
mod error;
mod gate;
mod graph_capture;
pub mod json;
pub mod junit;
mod perfetto;
pub mod sarif;
mod scan;
pub mod summary;
mod suppress;
#[cfg(test)]
mod test_support;
mod text;
mod xml;

pub use baseline::Baseline;
pub use checks::{check_run, facts_of_report, RunFailure, RunFailureKind};
pub use error::CiError;
pub use gate::{Check, FindingState, Gate, Policy, Verdict};
pub use graph_capture::GraphCaptureExport;
pub use perfetto::ChromeTrace;
#[cfg(feature = "test-hooks")]
pub use scan::TEST_PANIC_MARK;
pub use scan::{scan_file, TraceFacts};
pub use suppress::Suppressions;
