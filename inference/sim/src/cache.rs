//! The op cache: per-op buffers the simulator's own ops keep across calls (the synchronous
//! collectives' semaphores and intermediates), and the program cache's runtime arguments:
//! which buffer each cached program was built for.

use super::tensor::Tensor;
use std::collections::HashMap;
use ttsan_events::{Space, Unit};

/// Bytes a peer chip wrote over the fabric into a receiver's buffer that had not landed when
/// the op ended (the `deferred` fault, cross-chip skew): they land when op `due` is
/// dispatched, possibly after the receiver freed the buffer and its bytes went to another.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    /// The writing op's index.
    pub(crate) op: u64,
    /// The writing op's name.
    pub(crate) name: String,
    /// The peer chip whose kernels sent the bytes.
    pub(crate) peer: usize,
    /// The receiver's buffer the bytes were sent into (freed by the time they land, perhaps).
    pub(crate) buffer: u64,
    /// The receiving chip.
    pub(crate) device: usize,
    /// The index of the op whose dispatch they land at.
    pub(crate) due: u64,
    /// DRAM or L1.
    pub(crate) space: Space,
    /// Bank or core.
    pub(crate) unit: Unit,
    /// Bank-local address.
    pub(crate) address: u64,
    /// The bytes.
    pub(crate) bytes: Vec<u8>,
}

/// One cached buffer of an op.
#[derive(Debug, Clone)]
pub(crate) struct CacheEntry {
    /// The buffer, as the cached program knows it (its address may be stale).
    pub(crate) tensor: Tensor,
    /// Whether the buffer was freed while the cache kept its address (the stale fault).
    pub(crate) stale: bool,
}

/// Cached buffers keyed by (op name, op-chosen key such as shapes and dims), and the
/// program cache's runtime arguments: the buffers a program was built for on its cache miss.
#[derive(Debug, Default)]
pub(crate) struct OpCache {
    entries: HashMap<(String, String), CacheEntry>,
    /// Per (op name, program hash): the buffer whose address the program's runtime arguments
    /// hold. Not released between test cases: tt-metal's program cache lives as long as the
    /// device.
    programs: HashMap<(String, String), Tensor>,
}

impl OpCache {
    /// The buffer the cached program `(op, key)` names in its runtime arguments, if any.
    pub(crate) fn program_arg(&self, op: &str, key: &str) -> Option<&Tensor> {
        self.programs.get(&(op.to_string(), key.to_string()))
    }

    /// Records (a cache miss) or re-patches (a hit) the buffer the program names.
    pub(crate) fn set_program_arg(&mut self, op: &str, key: &str, t: Tensor) {
        self.programs.insert((op.to_string(), key.to_string()), t);
    }

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
