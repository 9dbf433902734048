//! The bounded quarantine of recently freed allocations.

use crate::buffer::BufferInfo;
use rustc_hash::FxHashMap as HashMap;
use std::collections::VecDeque;

/// Recently freed allocations, oldest first, at most `capacity` of them.
///
/// Like ASan's quarantine, it lets a later access to freed memory name the freed allocation;
/// unlike ASan's it does not delay reuse (tt-metal's allocator is not ours to change), so the
/// same bytes may by then belong to a live allocation too.
#[derive(Debug)]
pub struct Quarantine {
    capacity: usize,
    order: VecDeque<u64>,
    entries: HashMap<u64, (BufferInfo, u64)>,
    next_seq: u64,
}

impl Quarantine {
    /// An empty quarantine holding at most `capacity` frees.
    pub fn new(capacity: usize) -> Self {
        Quarantine { capacity, order: VecDeque::new(), entries: HashMap::default(), next_seq: 0 }
    }

    /// Adds a freed allocation; returns the one evicted to make room, if any.
    pub fn push(&mut self, info: BufferInfo) -> Option<BufferInfo> {
        if self.capacity == 0 {
            return Some(info);
        }
        let evicted = if self.order.len() >= self.capacity {
            self.order.pop_front().and_then(|id| self.entries.remove(&id)).map(|(b, _)| b)
        } else {
            None
        };
        let id = info.id;
        if self.entries.insert(id, (info, self.next_seq)).is_some() {
            self.order.retain(|&x| x != id);
        }
        self.order.push_back(id);
        self.next_seq += 1;
        evicted
    }

    /// A quarantined allocation.
    pub fn get(&self, id: u64) -> Option<&BufferInfo> {
        self.entries.get(&id).map(|(b, _)| b)
    }

    /// When `id` was freed relative to other quarantined frees (larger is more recent).
    pub fn free_seq(&self, id: u64) -> Option<u64> {
        self.entries.get(&id).map(|(_, s)| *s)
    }

    /// Quarantined allocations, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &BufferInfo> {
        self.order.iter().filter_map(|id| self.entries.get(id).map(|(b, _)| b))
    }

    /// Number of quarantined allocations.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
