//! In-memory and discarding recorders.

use crate::recorder::Recorder;
use parking_lot::Mutex;
use ttsan_events::Event;

/// Keeps every event in memory (tests, small in-process analyses).
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    events: Mutex<Vec<Event>>,
}

impl MemoryRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        MemoryRecorder::default()
    }

    /// The events so far, leaving the recorder empty.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock())
    }

    /// A copy of the events so far.
    pub fn snapshot(&self) -> Vec<Event> {
        self.events.lock().clone()
    }
}

impl Recorder for MemoryRecorder {
    fn record(&self, event: Event) {
        self.events.lock().push(event);
    }

    fn record_all(&self, events: Vec<Event>) {
        self.events.lock().extend(events);
    }
}

/// Discards everything and says so through [`Recorder::enabled`].
#[derive(Debug, Default, Clone, Copy)]
pub struct NullRecorder;

impl Recorder for NullRecorder {
    fn record(&self, _event: Event) {}

    fn enabled(&self) -> bool {
        false
    }
}
