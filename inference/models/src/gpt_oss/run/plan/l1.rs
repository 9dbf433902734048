//! The L1 peak of a plan, read off the events it records: how far the programs' static circular
//! buffers grow up from the unreserved base, how far L1 buffers (the CCL semaphores, op-cache
//! semaphores) reach down from the top, and the narrowest gap between the two at a dispatch.
//! Watching the events rather than asking each op keeps the figure the same whoever placed the
//! circular buffers (the plan's stand-ins or the simulator's collectives).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use ttsan_events::{Event, Space};
use ttsan_shim::Recorder;

/// Per-core L1 of a plan at its fullest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L1Peak {
    /// L1 a core has above the unreserved base (circular buffers and L1 buffers share it).
    pub capacity: u64,
    /// The largest static circular-buffer region of any program, in bytes above the base.
    pub circular_buffers: u64,
    /// The op whose program placed that region.
    pub op: String,
    /// The most L1 that buffers took per core, from the lowest address one reached to the top
    /// of the allocatable L1.
    pub buffers: u64,
    /// The narrowest gap between a program's circular buffers and the lowest L1 buffer at its
    /// dispatch (`capacity` when no program ran).
    pub headroom: u64,
}

#[derive(Default)]
struct State {
    base: u64,
    top: u64,
    peak: L1Peak,
    open: HashMap<u64, String>,
    live: HashMap<u64, u64>,
    /// Live L1 buffers by address (several can share one after frees).
    by_address: BTreeMap<u64, u32>,
}

impl State {
    fn see(&mut self, event: &Event) {
        match event {
            Event::CaptureStart(start) => {
                let g = &start.geometry;
                self.base = g.l1_unreserved_base;
                self.top = g.l1_size.saturating_sub(g.l1_small_size);
                self.peak.capacity = self.top.saturating_sub(self.base);
                self.peak.headroom = self.peak.capacity;
            }
            Event::OpBegin(begin) => {
                self.open.insert(begin.index, begin.name.clone());
            }
            Event::OpEnd { index } => {
                self.open.remove(index);
            }
            Event::BufferAlloc(b) if b.space == Space::L1 => {
                self.live.insert(b.id, b.address);
                *self.by_address.entry(b.address).or_default() += 1;
                let reach = self.top.saturating_sub(b.address);
                self.peak.buffers = self.peak.buffers.max(reach);
            }
            Event::BufferFree(f) => {
                if let Some(address) = self.live.remove(&f.id) {
                    if let Some(n) = self.by_address.get_mut(&address) {
                        *n -= 1;
                        if *n == 0 {
                            self.by_address.remove(&address);
                        }
                    }
                }
            }
            Event::CbAlloc(cb) if !cb.globally_allocated => {
                let end = cb.address + cb.size;
                let region = end.saturating_sub(self.base);
                if region > self.peak.circular_buffers {
                    self.peak.circular_buffers = region;
                    self.peak.op = cb.op.and_then(|i| self.open.get(&i)).cloned().unwrap_or_default();
                }
                let lowest = self.by_address.keys().next().copied().unwrap_or(self.top);
                self.peak.headroom = self.peak.headroom.min(lowest.saturating_sub(end));
            }
            _ => {}
        }
    }
}

/// A recorder that passes every event on to `inner` and keeps the [`L1Peak`].
pub(super) struct L1Watch {
    inner: Arc<dyn Recorder>,
    state: Mutex<State>,
}

impl L1Watch {
    pub(super) fn new(inner: Arc<dyn Recorder>) -> Self {
        L1Watch { inner, state: Mutex::new(State::default()) }
    }

    /// The peak so far.
    pub(super) fn peak(&self) -> L1Peak {
        self.state.lock().map(|s| s.peak.clone()).unwrap_or_default()
    }
}

impl Recorder for L1Watch {
    fn record(&self, event: Event) {
        if let Ok(mut s) = self.state.lock() {
            s.see(&event);
        }
        self.inner.record(event);
    }

    fn record_all(&self, events: Vec<Event>) {
        if let Ok(mut s) = self.state.lock() {
            for e in &events {
                s.see(e);
            }
        }
        self.inner.record_all(events);
    }

    fn enabled(&self) -> bool {
        self.inner.enabled()
    }
}
