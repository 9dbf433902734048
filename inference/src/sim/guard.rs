//! Guard digests: per-page hashes of selected buffers, refreshed only where the simulator
//! saw writes.

use super::config::GuardSelect;
use super::error::{SimError, SimResult};
use super::memory::ChipMemory;
use super::placement::Placement;
use super::write_log::WriteLog;
use globset::{Glob, GlobMatcher};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use ttsan_events::{Digest, Event, GuardDigest, Role};

/// The digest of one page: the first 16 bytes of its blake3 hash.
pub fn page_digest(bytes: &[u8]) -> Digest {
    let mut d = [0u8; 16];
    d.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    d
}

struct Guarded {
    placement: Arc<Placement>,
    /// Last emitted digests, per chip.
    last: Vec<Vec<Digest>>,
}

/// Selection and last digests of every guarded buffer.
pub struct GuardTracker {
    globs: Vec<(String, GlobMatcher)>,
    roles: Vec<Role>,
    guarded: BTreeMap<u64, Guarded>,
}

impl GuardTracker {
    /// A tracker for `select`; bad globs are errors.
    pub fn new(select: &GuardSelect) -> SimResult<Self> {
        let globs = select
            .globs
            .iter()
            .map(|g| {
                Glob::new(g)
                    .map(|glob| (g.clone(), glob.compile_matcher()))
                    .map_err(|e| SimError::BadGuardPattern { pattern: g.clone(), reason: e.to_string() })
            })
            .collect::<SimResult<Vec<_>>>()?;
        Ok(GuardTracker { globs, roles: select.roles.clone(), guarded: BTreeMap::new() })
    }

    /// Why a buffer named `name` with `role` is guarded, if it is.
    pub fn reason(&self, name: &str, role: Role) -> Option<String> {
        if let Some((g, _)) = self.globs.iter().find(|(_, m)| m.is_match(name)) {
            return Some(format!("name matches {g}"));
        }
        self.roles.contains(&role).then(|| format!("role {role}"))
    }

    /// Starts guarding `id`: the events of registration and the first digest of every chip.
    pub fn register(&mut self, id: u64, reason: String, placement: Arc<Placement>, chips: &[ChipMemory]) -> Vec<Event> {
        let mut events = vec![Event::GuardRegister { buffer: id, reason }];
        let all: Vec<u64> = (0..placement.pages).collect();
        let mut last = Vec::with_capacity(chips.len());
        for (device, mem) in chips.iter().enumerate() {
            let pages = digest_pages(&placement, mem, &all, None);
            events.push(digest_event(id, device as u32, None, pages.clone()));
            last.push(pages);
        }
        self.guarded.insert(id, Guarded { placement, last });
        events
    }

    /// Stops guarding `id` (it was freed).
    pub fn forget(&mut self, id: u64) {
        self.guarded.remove(&id);
    }

    /// Whether `id` is guarded.
    pub fn contains(&self, id: u64) -> bool {
        self.guarded.contains_key(&id)
    }

    /// Re-hashes the pages of guarded buffers that `logs` (one per chip) touched and returns a
    /// digest event for every (buffer, chip) whose digests changed.
    pub fn check(&mut self, after_op: Option<u64>, logs: &[WriteLog], chips: &[ChipMemory]) -> Vec<Event> {
        let mut events = Vec::new();
        for (&id, g) in self.guarded.iter_mut() {
            for (device, (log, mem)) in logs.iter().zip(chips).enumerate() {
                let mut dirty = BTreeSet::new();
                for unit in log.units(g.placement.space) {
                    for r in log.runs_on(g.placement.space, unit) {
                        dirty.extend(g.placement.pages_in(unit, r));
                    }
                }
                if dirty.is_empty() {
                    continue;
                }
                let dirty: Vec<u64> = dirty.into_iter().collect();
                let Some(last) = g.last.get_mut(device) else { continue };
                let fresh = digest_pages(&g.placement, mem, &dirty, Some(last.as_slice()));
                if fresh != *last {
                    *last = fresh.clone();
                    events.push(digest_event(id, device as u32, after_op, fresh));
                }
            }
        }
        events
    }
}

/// Digests of every page, re-hashing only `pages` when the previous digests are given.
fn digest_pages(p: &Placement, mem: &ChipMemory, pages: &[u64], previous: Option<&[Digest]>) -> Vec<Digest> {
    let mut out: Vec<Digest> = match previous {
        Some(prev) => prev.to_vec(),
        None => vec![[0u8; 16]; p.pages as usize],
    };
    let mut buf = vec![0u8; p.page_size as usize];
    for &page in pages {
        if let (Some((unit, addr)), Some(slot)) = (p.locate(page), out.get_mut(page as usize)) {
            mem.read(p.space, unit, addr, &mut buf);
            *slot = page_digest(&buf);
        }
    }
    out
}

fn digest_event(buffer: u64, device: u32, after_op: Option<u64>, pages: Vec<Digest>) -> Event {
    Event::GuardDigest(GuardDigest { buffer, device, after_op, pages, readable: true })
}
