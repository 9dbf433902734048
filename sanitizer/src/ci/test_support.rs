//! Helpers of the CI guard's unit tests.

use crate::{Analyzer, Finding};
use ttsan_events::Event;

/// The findings a default analysis of `events` reports.
pub(super) fn findings(events: &[Event]) -> Vec<Finding> {
    let mut a = Analyzer::new(Default::default());
    events.iter().for_each(|e| a.feed(e));
    a.finish(None).findings
}
