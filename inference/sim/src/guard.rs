//! Guard digests: per-page hashes of selected buffers, refreshed only where the simulator
//! saw writes.
//!
//! Real hardware would read a guarded buffer back when it is registered and after every op. The
//! simulator gives the analyzer the same comparisons with far less hashing: a buffer's first
//! digests are taken only when an op first writes it after registration (most activations are
//! written once, by the op that allocates them, and never again), from the bytes as they were
//! before that op (the chips' journal) and sent just before the changed digests. A page nobody
//! wrote cannot have changed, so everything not sent would have compared equal.

use super::config::GuardSelect;
use super::error::{SimError, SimResult};
use super::memory::ChipMemory;
use super::placement::Placement;
use super::write_log::WriteLog;
use globset::{Glob, GlobMatcher};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use ttsan_events::{Digest, Event, GuardDigest, Role, Space, Unit};

pub use ttsan_events::page_digest;

struct Guarded {
    placement: Arc<Placement>,
    /// Last emitted digests, per chip (`None`: not taken yet; the bytes are as registered).
    last: Vec<Option<Vec<Digest>>>,
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

    /// Starts guarding `id` on `chips` chips: the registration event (the first digests follow
    /// when an op first writes the buffer).
    pub fn register(&mut self, id: u64, reason: String, placement: Arc<Placement>, chips: usize) -> Vec<Event> {
        self.guarded.insert(id, Guarded { placement, last: vec![None; chips] });
        vec![Event::GuardRegister { buffer: id, reason }]
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
    /// digest event for every (buffer, chip) whose digests changed, preceded by the buffer's
    /// first digests on that chip when they were not taken yet. `journaled`: the chips' journals
    /// hold the bytes from before these writes (an op); without it (a host transfer) a buffer
    /// not digested yet simply takes the new bytes as its registered state, since the host may
    /// write any buffer.
    pub fn check(
        &mut self,
        after_op: Option<u64>,
        logs: &[WriteLog],
        chips: &[ChipMemory],
        journaled: bool,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        for (&id, g) in self.guarded.iter_mut() {
            let dirty: Vec<(usize, Vec<u64>)> = logs
                .iter()
                .enumerate()
                .map(|(device, log)| {
                    let mut pages = BTreeSet::new();
                    for unit in log.units(g.placement.space) {
                        for r in log.runs_on(g.placement.space, unit) {
                            pages.extend(g.placement.pages_in(unit, r));
                        }
                    }
                    (device, pages.into_iter().collect::<Vec<u64>>())
                })
                .filter(|(device, pages)| !pages.is_empty() && *device < chips.len() && *device < g.last.len())
                .collect();
            if dirty.is_empty() {
                continue;
            }
            for (device, _) in &dirty {
                if g.last[*device].is_none() && journaled {
                    let all: Vec<u64> = (0..g.placement.pages).collect();
                    let first = digest_pages_with(&g.placement, &all, None, |space, unit, addr, len, f| {
                        chips[*device].visit_before(space, unit, addr, len, f)
                    });
                    events.push(digest_event(id, *device as u32, None, first.clone()));
                    g.last[*device] = Some(first);
                }
            }
            let jobs: Vec<DigestJob<'_>> = dirty
                .iter()
                .filter_map(|(d, pages)| Some((&chips[*d], pages.as_slice(), Some(g.last[*d].as_deref()?))))
                .collect();
            let taken: Vec<usize> = dirty.iter().filter(|(d, _)| g.last[*d].is_some()).map(|(d, _)| *d).collect();
            let fresh = digest_on_chips(&g.placement, &jobs);
            for (device, fresh) in taken.into_iter().zip(fresh) {
                if g.last[device].as_ref() != Some(&fresh) {
                    g.last[device] = Some(fresh.clone());
                    events.push(digest_event(id, device as u32, after_op, fresh));
                }
            }
        }
        events
    }
}

/// One chip's share of a digest: its memory, the pages to hash, and the previous digests (to
/// keep for pages not re-hashed).
pub type DigestJob<'a> = (&'a ChipMemory, &'a [u64], Option<&'a [Digest]>);

/// Pages below which hashing stays on the calling thread: spawning costs more than it saves.
const PARALLEL_MIN_PAGES: usize = 256;

/// Runs [`digest_pages`] for several chips, one thread per chip (up to the cores there are)
/// when there is enough to hash; chips' memories are independent, so this scales with cores.
pub fn digest_on_chips(p: &Placement, jobs: &[DigestJob<'_>]) -> Vec<Vec<Digest>> {
    let total: usize = jobs.iter().map(|(_, pages, _)| pages.len()).sum();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(jobs.len());
    if threads <= 1 || total < PARALLEL_MIN_PAGES {
        return jobs.iter().map(|(mem, pages, prev)| digest_pages(p, mem, pages, *prev)).collect();
    }
    let per_thread = jobs.len().div_ceil(threads);
    let parts = crossbeam::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(per_thread)
            .map(|chunk| {
                s.spawn(move |_| {
                    chunk.iter().map(|(mem, pages, prev)| digest_pages(p, mem, pages, *prev)).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    match parts {
        Ok(parts) if parts.iter().all(Result::is_ok) => parts.into_iter().flatten().flatten().collect(),
        // A hashing thread cannot fail short of a bug; fall back to hashing here rather than lose digests.
        _ => jobs.iter().map(|(mem, pages, prev)| digest_pages(p, mem, pages, *prev)).collect(),
    }
}

/// Digests of every page, re-hashing only `pages` when the previous digests are given.
pub fn digest_pages(p: &Placement, mem: &ChipMemory, pages: &[u64], previous: Option<&[Digest]>) -> Vec<Digest> {
    digest_pages_with(p, pages, previous, |space, unit, addr, len, f| mem.visit(space, unit, addr, len, f))
}

/// [`digest_pages`] over bytes that `visit` hands out (today's, or the journal's).
fn digest_pages_with(
    p: &Placement,
    pages: &[u64],
    previous: Option<&[Digest]>,
    visit: impl Fn(Space, Unit, u64, u64, &mut dyn FnMut(&[u8])),
) -> Vec<Digest> {
    let mut out: Vec<Digest> = match previous {
        Some(prev) => prev.to_vec(),
        None => vec![[0u8; 16]; p.pages as usize],
    };
    let mut pieces: Vec<u8> = Vec::with_capacity(p.page_size as usize);
    for &page in pages {
        if let (Some((unit, addr)), Some(slot)) = (p.locate(page), out.get_mut(page as usize)) {
            // A page held in one piece of chip memory is hashed where it lies. One that
            // straddles two pieces is copied together first: BLAKE3 hashes the 1 KiB chunks of
            // one whole input in parallel SIMD lanes, but the chunks of a split input one by
            // one, and a 2 KiB copy costs far less than that.
            let mut whole = None;
            pieces.clear();
            visit(p.space, unit, addr, p.page_size, &mut |bytes: &[u8]| {
                if bytes.len() as u64 == p.page_size {
                    whole = Some(page_digest(bytes));
                } else {
                    pieces.extend_from_slice(bytes);
                }
            });
            *slot = whole.unwrap_or_else(|| page_digest(&pieces));
        }
    }
    out
}

fn digest_event(buffer: u64, device: u32, after_op: Option<u64>, pages: Vec<Digest>) -> Event {
    Event::GuardDigest(GuardDigest { buffer, device, after_op, pages, readable: true })
}
