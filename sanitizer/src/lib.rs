//! The analysis core of ttsan.
//!
//! A trace of [`ttsan_events::Event`]s goes in; a [`report::Report`] of findings comes out.
//! The pieces, in the order an event flows through them:
//!
//! - `model`: where a buffer's bytes are, per DRAM bank or L1 core ("footprints"), and which
//!   bank and address hold each page.
//! - `registry`: the live allocations of every chip and space as interval maps, and a bounded
//!   quarantine of recent frees.
//! - `ops`: what each op declared it reads, writes and uses as scratch.
//! - `detect`: the detectors, each producing one [`finding::FindingKind`].
//! - `attribution`: which op is the culprit and how its buffers relate to the damaged bytes.
//! - [`report`]: ASan-style text and JSON.
//! - [`diff`]: two runs of the same workload compared op by op (`ttsan diff`).
//! - [`ci`]: the CI verdict (run-level checks, suppressions, baselines) and its JUnit, SARIF
//!   and Chrome-trace outputs.
//!
//! [`Analyzer`] wires them together over a stream of events. Only [`ci`], [`diff`],
//! [`finding`], [`options`] and [`report`] are public modules; the rest is re-exported item by
//! item where another crate needs it.
#![deny(missing_docs)]

mod analyzer;
mod attribution;
mod buffer;
pub mod ci;
mod detect;
pub mod diff;
pub mod finding;
mod model;
mod ops;
pub mod options;
mod registry;
pub mod report;

// The machinery (detectors, attribution, ops, the page model and the registry) stays private;
// these are what the CLI, the allocation map and the tests use of it.
pub use analyzer::{analyze_file, Analysis, Analyzer, Summary};
pub use buffer::BufferInfo;
pub use finding::{Finding, FindingKind};
pub use model::{footprint, Footprint};
pub use options::AnalysisOptions;
pub use registry::Registry;
pub use ttsan_events as events;
