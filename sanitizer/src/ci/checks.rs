//! Run-level checks: the ways a sanitized run can look clean while nothing was checked.
//!
//! Sanitizers in CI are notorious for passing silently when they did not run (a hang on
//! attach, a tool that never loaded); each check here turns one such case into a failure
//! with its own message.

use super::scan::TraceFacts;
use crate::report::Report;
use serde::Serialize;

/// Which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunFailureKind {
    /// The trace could not be read at all.
    Unreadable,
    /// More damaged records than allowed.
    Damaged,
    /// No `capture_start` record: the producer never started capturing.
    NoCapture,
    /// A capture started but no allocation was recorded.
    NoAllocations,
    /// The producer said its interposition failed.
    ShimFailed,
    /// The analysis reported itself incomplete (e.g. the producer dropped events).
    Incomplete,
    /// ttsan itself failed.
    Internal,
}

impl RunFailureKind {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunFailureKind::Unreadable => "unreadable-trace",
            RunFailureKind::Damaged => "damaged-trace",
            RunFailureKind::NoCapture => "no-capture",
            RunFailureKind::NoAllocations => "no-allocations",
            RunFailureKind::ShimFailed => "shim-failed",
            RunFailureKind::Incomplete => "incomplete-analysis",
            RunFailureKind::Internal => "internal-error",
        }
    }
}

/// A reason the run as a whole cannot pass, whatever its findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunFailure {
    /// Which check.
    pub kind: RunFailureKind,
    /// One line for the user.
    pub message: String,
}

impl RunFailure {
    /// A failure of `kind`.
    pub fn new(kind: RunFailureKind, message: impl Into<String>) -> Self {
        RunFailure { kind, message: message.into() }
    }
}

/// Facts recoverable from a report alone, for callers that analysed events in memory.
pub fn facts_of_report(report: &Report) -> TraceFacts {
    TraceFacts { capture_started: report.capture.is_some(), ..TraceFacts::default() }
}

/// Runs every check. `max_damaged_records`: `None` tolerates any damage.
pub fn check_run(report: &Report, facts: &TraceFacts, max_damaged_records: Option<u64>) -> Vec<RunFailure> {
    let mut out = Vec::new();
    let damaged = facts.damaged_records();
    if let Some(max) = max_damaged_records {
        if damaged > max {
            out.push(RunFailure::new(
                RunFailureKind::Damaged,
                format!(
                    "the trace has {damaged} damaged record(s) (torn, corrupt or unknown), more than the {max} \
                     allowed (--max-damaged-records): findings may be missing"
                ),
            ));
        }
    }
    for reason in &facts.shim_errors {
        out.push(RunFailure::new(
            RunFailureKind::ShimFailed,
            format!("the tracer reported that it failed to load: {reason}"),
        ));
    }
    if !facts.capture_started {
        out.push(RunFailure::new(
            RunFailureKind::NoCapture,
            "the trace has no capture_start record: the tracer never started (did the shim load?)",
        ));
        // The engine's own errors say the same thing in other words.
        return out;
    }
    if report.summary.allocations == 0 {
        out.push(RunFailure::new(
            RunFailureKind::NoAllocations,
            "the run recorded no allocations although a capture started: the tracer saw none of the \
             workload's buffers (not interposed, or the workload never ran)",
        ));
    }
    for e in &report.errors {
        out.push(RunFailure::new(RunFailureKind::Incomplete, format!("analysis incomplete: {e}")));
    }
    out
}
