//! Helpers of the CI guard's unit tests.

use crate::Finding;
use ttsan_events::Event;

/// The findings a default analysis of `events` reports.
pub(super) fn findings(events: &[Event]) -> Vec<Finding> {
    crate::fixtures::findings_of(events)
}
