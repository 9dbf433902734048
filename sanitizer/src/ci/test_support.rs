//! Helpers of the CI guard's unit tests.

use crate::{AnalysisOptions, Analyzer, Finding};
use ttsan_events::Event;

/// The findings a default analysis of `events` reports (the analysis itself must not fail: a
/// test built on a broken trace proves nothing).
pub(super) fn findings(events: &[Event]) -> Vec<Finding> {
    let mut a = Analyzer::new(AnalysisOptions::default());
    events.iter().for_each(|e| a.feed(e));
    let analysis = a.finish(None);
    assert!(analysis.errors.is_empty(), "{:?}", analysis.errors);
    analysis.findings
}
