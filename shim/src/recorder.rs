//! The recorder interface.

use std::sync::atomic::{AtomicU64, Ordering};
use ttsan_events::Event;

/// Where a backend sends its events. Implementations are cheap to call from many threads.
pub trait Recorder: Send + Sync {
    /// Records one event.
    fn record(&self, event: Event);

    /// Records several events in order.
    fn record_all(&self, events: Vec<Event>) {
        for e in events {
            self.record(e);
        }
    }

    /// Whether events are kept at all; backends skip building events when this is false
    /// (the `--detect none` baseline).
    fn enabled(&self) -> bool {
        true
    }
}

/// Hands out unique, increasing ids (buffer ids, op indices) from several threads.
#[derive(Debug, Default)]
pub struct IdAllocator(AtomicU64);

impl IdAllocator {
    /// Ids starting at `first`.
    pub fn starting_at(first: u64) -> Self {
        IdAllocator(AtomicU64::new(first))
    }

    /// The next id.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}
