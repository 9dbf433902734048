//! Helpers shared by the sanitizer's integration tests.

use ttsan_events::Event;
use ttsan_sanitizer::{AnalysisOptions, Analyzer, Finding};

/// The findings of a default analysis of `events`; panics if the analysis itself reports an
/// error, because a test built on a broken trace proves nothing.
pub fn findings_of(events: &[Event]) -> Vec<Finding> {
    let mut a = Analyzer::new(AnalysisOptions::default());
    for e in events {
        a.feed(e);
    }
    let analysis = a.finish(None);
    assert!(analysis.errors.is_empty(), "{:?}", analysis.errors);
    analysis.findings
}
