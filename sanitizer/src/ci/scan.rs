//! Reading a trace for CI: the analysis plus the facts about the run that the analysis itself
//! does not judge.

use super::error::CiError;
use crate::analyzer::{Analysis, Analyzer};
use crate::options::AnalysisOptions;
use std::path::Path;
use ttsan_events::trace::{ReadStats, TraceReader};
use ttsan_events::Event;

/// A `mark` record whose text starts with this says the producer's interposition failed (a
/// preload shim that could not resolve tt-metal's symbols, a hook that did not install): the
/// trace exists, but it cannot have seen the run's allocations.
pub const SHIM_ERROR_PREFIX: &str = "shim-error:";

/// Marks the preload shim (shim/preload) writes when it started but cannot read buffers. It
/// predates [`SHIM_ERROR_PREFIX`], so its wording is recognised as well.
pub const PRELOAD_FAILURE_MARKS: &[&str] = &["ttsan-preload: tt-metal symbols missing"];

/// The text of the `mark` record that makes [`scan_file`] panic when the `test-hooks` feature
/// is on, so the tests can prove that a panic inside ttsan exits 3 and is never reported clean.
#[cfg(feature = "test-hooks")]
pub const TEST_PANIC_MARK: &str = "ttsan-test-hook: panic in ci scan";

/// What a CI gate needs to know about the run beyond its findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceFacts {
    /// Whether a `capture_start` record was read.
    pub capture_started: bool,
    /// Texts of `shim-error:` marks, prefix removed.
    pub shim_errors: Vec<String>,
    /// The reader's counts, when the events came from a file.
    pub stats: Option<ReadStats>,
}

impl TraceFacts {
    /// Facts of an in-memory event stream (no reader, so no damage).
    pub fn new() -> Self {
        TraceFacts::default()
    }

    /// Notes one event.
    pub fn feed(&mut self, event: &Event) {
        match event {
            Event::CaptureStart(_) => self.capture_started = true,
            Event::Mark { text } => {
                #[cfg(feature = "test-hooks")]
                if text == TEST_PANIC_MARK {
                    panic!("test hook: {TEST_PANIC_MARK}");
                }
                if let Some(reason) = text.strip_prefix(SHIM_ERROR_PREFIX) {
                    self.shim_errors.push(reason.trim().to_string());
                } else if PRELOAD_FAILURE_MARKS.iter().any(|m| text.starts_with(m)) {
                    self.shim_errors.push(text.clone());
                }
            }
            _ => {}
        }
    }

    /// Records that couldn't be used: corrupt, oversized, of an unknown type, plus one for a
    /// torn tail. Unknown types count because a newer producer's events (writes among them)
    /// would otherwise be silently ignored by the detectors.
    pub fn damaged_records(&self) -> u64 {
        self.stats.map_or(0, |s| s.corrupt + s.unknown + s.oversized + u64::from(s.torn_tail_bytes > 0))
    }
}

/// Analyses a trace file and gathers its [`TraceFacts`] in the same pass.
pub fn scan_file(path: &Path, options: AnalysisOptions) -> Result<(Analysis, TraceFacts), CiError> {
    let mut reader = TraceReader::open(path).map_err(|source| CiError::Trace { path: path.to_path_buf(), source })?;
    let mut analyzer = Analyzer::new(options);
    let mut facts = TraceFacts::new();
    reader
        .for_each_event(|event| {
            facts.feed(event);
            analyzer.feed(event);
        })
        .map_err(|source| CiError::TraceIo { path: path.to_path_buf(), source })?;
    let stats = reader.stats();
    facts.stats = Some(stats);
    Ok((analyzer.finish(Some(stats)), facts))
}
