//! The op cache: per-op persistent state kept across calls, as tt-metal's program cache keeps
//! buffers, semaphores and the addresses baked into cached programs.

use super::tensor::Tensor;
use std::collections::HashMap;
use ttsan_events::{Space, Unit};

/// Bytes an asynchronous op wrote to its cached scratch that have not landed yet (the
/// `deferred` fault): they land at the next compute dispatch, after the op has ended and
/// possibly after the scratch was freed and its bytes handed to another buffer.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    /// The writing op's index (the Write events name it).
    pub(crate) op: u64,
    /// Chip.
    pub(crate) device: usize,
    /// DRAM or L1.
    pub(crate) space: Space,
    /// Bank or core.
    pub(crate) unit: Unit,
    /// Bank-local address.
    pub(crate) address: u64,
    /// The bytes.
    pub(crate) bytes: Vec<u8>,
}

/// Whether `op` is a collective: collectives run on the CCL sub-device and do not wait for an
/// earlier collective's outstanding writes, so those land only at the next compute dispatch.
pub(crate) fn is_ccl(op: &str) -> bool {
    ["all_gather", "reduce_scatter", "all_reduce", "all_to_all"].iter().any(|c| op.contains(c))
}

/// One cached buffer of an op.
#[derive(Debug, Clone)]
pub(crate) struct CacheEntry {
    /// The buffer, as the cached program knows it (its address may be stale).
    pub(crate) tensor: Tensor,
    /// Whether the buffer was freed while the cache kept its address (the stale fault).
    pub(crate) stale: bool,
}

/// Cached buffers keyed by (op name, op-chosen key such as shapes and dims).
#[derive(Debug, Default)]
pub(crate) struct OpCache {
    entries: HashMap<(String, String), CacheEntry>,
}

impl OpCache {
    pub(crate) fn get(&self, op: &str, key: &str) -> Option<&CacheEntry> {
        self.entries.get(&(op.to_string(), key.to_string()))
    }

    pub(crate) fn insert(&mut self, op: &str, key: &str, entry: CacheEntry) {
        self.entries.insert((op.to_string(), key.to_string()), entry);
    }

    pub(crate) fn mark_stale(&mut self, op: &str, key: &str) {
        if let Some(e) = self.entries.get_mut(&(op.to_string(), key.to_string())) {
            e.stale = true;
        }
    }

    /// Every cached tensor still alive (to release them all, e.g. between test cases), in
    /// allocation order: the order of frees shapes the allocator's free list, so a map's
    /// iteration order would make later addresses, and whole traces, differ from run to run.
    pub(crate) fn drain_live(&mut self) -> Vec<Tensor> {
        let mut live: Vec<Tensor> = self.entries.drain().filter(|(_, e)| !e.stale).map(|(_, e)| e.tensor).collect();
        live.sort_by_key(|t| t.id);
        live
    }
}
