//! Two runs of the same workload compared op by op: the first op after which what it left in
//! memory differs between them.
//!
//! An intermittent corruption (cross-chip skew, a race with the host) corrupts some runs and not
//! others, and a single run's checks may not see it: the corrupted bytes can be legal writes at
//! legal addresses. Two runs of the same workload must leave the same bytes behind every op, so
//! the first op whose outputs differ is where the runs parted. Each run's trace carries, per op
//! and chip, the digests of what the op wrote (`OutputDigest`, from `run gpt-oss
//! --digest-outputs`) and of the guarded buffers (`GuardDigest`, the simulator's digest modes or
//! the preload shim's guards on a real run); ops are matched by their index and name, buffers
//! by name (or id when unnamed), so ids may differ between the runs.

use crate::events::{Digest, Event, Space, Unit};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Which kind of digest disagreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DigestKind {
    /// An output the op wrote, digested when it ended.
    Output,
    /// A guarded buffer, as digested after the op.
    Guard,
}

/// One buffer on one chip whose digests differ after the op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffItem {
    /// Output or guard.
    pub kind: DigestKind,
    /// The buffer's name (`buffer #ID` of run A when unnamed).
    pub buffer: String,
    /// The chip.
    pub device: u32,
    /// Host pages whose digests differ (every page when the page counts differ).
    pub pages: Vec<u64>,
    /// Pages the buffer has (in run A; absent from one run: 0).
    pub total_pages: u64,
    /// Present in only one run (`Some('A')` or `Some('B')`).
    pub only_in: Option<char>,
}

/// A contiguous run of bytes an op wrote, as the trace's `write` records give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrote {
    /// The chip.
    pub device: u32,
    /// Memory space.
    pub space: Space,
    /// Bank or core.
    pub unit: Unit,
    /// Bank-local start address.
    pub address: u64,
    /// Bytes.
    pub len: u64,
}

/// The first op after which the runs differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The op's index (the same in both runs).
    pub op: u64,
    /// Its name.
    pub name: String,
    /// Which call of that name it was (1-based).
    pub call: u64,
    /// What differs, by kind, buffer and chip.
    pub items: Vec<DiffItem>,
    /// What the op wrote in run A, on the chips named in `items` (empty without write records).
    pub wrote_a: Vec<Wrote>,
    /// The same for run B.
    pub wrote_b: Vec<Wrote>,
}

/// The result of comparing two runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffOutcome {
    /// Every op compared left the same digests in both runs.
    Same {
        /// Ops compared.
        ops: u64,
        /// Digest comparisons made (buffer, chip, op).
        compared: u64,
    },
    /// The first op whose digests differ.
    Differs(Divergence),
    /// The runs did not run the same ops: op `op` is `a` in run A and `b` in run B.
    OpsDiverge {
        /// The op index.
        op: u64,
        /// Its name in run A (`(none)` when run A ended first).
        a: String,
        /// Its name in run B.
        b: String,
    },
}

/// Why two runs cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// A run has no digests at all, so "the same" would mean nothing.
    #[error("run {run} has no output or guard digests: record them (`run gpt-oss --digest-outputs`, or guards) and run again")]
    NoDigests {
        /// `A` or `B`.
        run: char,
    },
}

/// Digests by (buffer name or `buffer #id`, chip).
type DigestMap = BTreeMap<(String, u32), Vec<Digest>>;

/// One run's digests, op by op.
struct Run {
    /// Op names by index, and the call number of each.
    ops: BTreeMap<u64, (String, u64)>,
    /// Buffer names by id.
    names: HashMap<u64, String>,
    /// Output digests by op.
    outputs: BTreeMap<u64, DigestMap>,
    /// Guard digests by op (`None`: before any op).
    guards: BTreeMap<Option<u64>, DigestMap>,
    /// Writes by op.
    writes: BTreeMap<u64, Vec<Wrote>>,
    digests: u64,
}

impl Run {
    fn new(events: &[Event]) -> Run {
        let mut run = Run {
            ops: BTreeMap::new(),
            names: HashMap::new(),
            outputs: BTreeMap::new(),
            guards: BTreeMap::new(),
            writes: BTreeMap::new(),
            digests: 0,
        };
        let mut calls: HashMap<String, u64> = HashMap::new();
        for e in events {
            match e {
                Event::BufferAlloc(b) if !b.name.is_empty() => {
                    run.names.insert(b.id, b.name.clone());
                }
                Event::OpBegin(o) => {
                    let call = calls.entry(o.name.clone()).or_insert(0);
                    *call += 1;
                    run.ops.insert(o.index, (o.name.clone(), *call));
                }
                Event::OutputDigest(d) => {
                    let key = run.key(d.buffer, d.device);
                    run.outputs.entry(d.op).or_default().insert(key, d.pages.clone());
                    run.digests += 1;
                }
                // An unreadable digest (a mock chip) says nothing about the bytes.
                Event::GuardDigest(g) if g.readable => {
                    let key = run.key(g.buffer, g.device);
                    run.guards.entry(g.after_op).or_default().insert(key, g.pages.clone());
                    run.digests += 1;
                }
                Event::Write(w) => {
                    if let Some(op) = w.op {
                        let wrote =
                            Wrote { device: w.device, space: w.space, unit: w.unit, address: w.address, len: w.len };
                        run.writes.entry(op).or_default().push(wrote);
                    }
                }
                _ => {}
            }
        }
        run
    }

    /// A buffer as both runs can name it: its name, else its id (ids of unnamed buffers are
    /// tt-metal's allocation counters, the same in two runs of the same program).
    fn key(&self, buffer: u64, device: u32) -> (String, u32) {
        let name = self.names.get(&buffer).cloned().unwrap_or_else(|| format!("buffer #{buffer}"));
        (name, device)
    }
}

/// Compares two runs' traces (see the module docs).
pub fn diff(a: &[Event], b: &[Event]) -> Result<DiffOutcome, DiffError> {
    let (ra, rb) = (Run::new(a), Run::new(b));
    if ra.digests == 0 {
        return Err(DiffError::NoDigests { run: 'A' });
    }
    if rb.digests == 0 {
        return Err(DiffError::NoDigests { run: 'B' });
    }
    let mut compared = 0;
    // Guard digests are sent when they change: each run's guarded state is carried forward
    // op by op, and only what either run re-digested at an op is compared there.
    let mut state_a = DigestMap::new();
    let mut state_b = state_a.clone();
    let mut items = Vec::new();
    compare_guards(&mut state_a, &mut state_b, ra.guards.get(&None), rb.guards.get(&None), &mut items, &mut compared);
    if !items.is_empty() {
        // The guarded buffers already differ before the first op: the workloads' inputs differ.
        return Ok(DiffOutcome::Differs(Divergence {
            op: 0,
            name: "(before the first op)".into(),
            call: 0,
            items,
            wrote_a: Vec::new(),
            wrote_b: Vec::new(),
        }));
    }
    let indices: BTreeSet<u64> = ra.ops.keys().chain(rb.ops.keys()).copied().collect();
    for op in indices {
        let (na, nb) = (ra.ops.get(&op), rb.ops.get(&op));
        let name_of = |n: Option<&(String, u64)>| n.map(|(name, _)| name.clone()).unwrap_or_else(|| "(none)".into());
        if na.map(|n| &n.0) != nb.map(|n| &n.0) {
            return Ok(DiffOutcome::OpsDiverge { op, a: name_of(na), b: name_of(nb) });
        }
        let mut items = Vec::new();
        compare_maps(DigestKind::Output, ra.outputs.get(&op), rb.outputs.get(&op), &mut items, &mut compared);
        compare_guards(
            &mut state_a,
            &mut state_b,
            ra.guards.get(&Some(op)),
            rb.guards.get(&Some(op)),
            &mut items,
            &mut compared,
        );
        if !items.is_empty() {
            let chips: BTreeSet<u32> = items.iter().map(|i| i.device).collect();
            let wrote = |r: &Run| -> Vec<Wrote> {
                r.writes.get(&op).into_iter().flatten().filter(|w| chips.contains(&w.device)).cloned().collect()
            };
            let (name, call) = na.cloned().unwrap_or_default();
            return Ok(DiffOutcome::Differs(Divergence {
                op,
                name,
                call,
                items,
                wrote_a: wrote(&ra),
                wrote_b: wrote(&rb),
            }));
        }
    }
    Ok(DiffOutcome::Same { ops: ra.ops.len() as u64, compared })
}

/// Applies both runs' guard digests of one op to their states and compares what changed.
fn compare_guards(
    state_a: &mut DigestMap,
    state_b: &mut DigestMap,
    a: Option<&DigestMap>,
    b: Option<&DigestMap>,
    items: &mut Vec<DiffItem>,
    compared: &mut u64,
) {
    let touched: BTreeSet<(String, u32)> = a.into_iter().chain(b).flat_map(|m| m.keys().cloned()).collect();
    for (key, pages) in a.into_iter().flatten() {
        state_a.insert(key.clone(), pages.clone());
    }
    for (key, pages) in b.into_iter().flatten() {
        state_b.insert(key.clone(), pages.clone());
    }
    let now_a: DigestMap = touched.iter().filter_map(|k| Some((k.clone(), state_a.get(k)?.clone()))).collect();
    let now_b: DigestMap = touched.iter().filter_map(|k| Some((k.clone(), state_b.get(k)?.clone()))).collect();
    compare_maps(DigestKind::Guard, Some(&now_a), Some(&now_b), items, compared);
}

/// Compares two maps of digests of one op, key by key.
fn compare_maps(
    kind: DigestKind,
    a: Option<&DigestMap>,
    b: Option<&DigestMap>,
    items: &mut Vec<DiffItem>,
    compared: &mut u64,
) {
    let empty = DigestMap::new();
    let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
    let keys: BTreeSet<&(String, u32)> = a.keys().chain(b.keys()).collect();
    for key in keys {
        *compared += 1;
        let (buffer, device) = (key.0.clone(), key.1);
        match (a.get(key), b.get(key)) {
            (Some(pa), Some(pb)) => {
                if pa == pb {
                    continue;
                }
                let pages: Vec<u64> = if pa.len() == pb.len() {
                    pa.iter().zip(pb).enumerate().filter(|(_, (x, y))| x != y).map(|(i, _)| i as u64).collect()
                } else {
                    (0..pa.len().max(pb.len()) as u64).collect()
                };
                items.push(DiffItem { kind, buffer, device, pages, total_pages: pa.len() as u64, only_in: None });
            }
            (Some(p), None) | (None, Some(p)) => {
                let only_in = if a.contains_key(key) { 'A' } else { 'B' };
                let total = p.len() as u64;
                items.push(DiffItem {
                    kind,
                    buffer,
                    device,
                    pages: (0..total).collect(),
                    total_pages: total,
                    only_in: Some(only_in),
                });
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{BufferAlloc, GuardDigest, Layout, OpBegin, OutputDigest, Role, Write};

    fn alloc(id: u64, name: &str) -> Event {
        Event::BufferAlloc(BufferAlloc {
            id,
            device: None,
            space: Space::Dram,
            address: 0,
            size: 4096,
            page_size: 2048,
            layout: Layout::Interleaved,
            name: name.into(),
            role: Role::Activation,
            op: None,
            stack: None,
            stack_id: None,
        })
    }

    fn op(index: u64, name: &str) -> Event {
        Event::OpBegin(OpBegin {
            index,
            name: name.into(),
            devices: Vec::new(),
            args: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            scratch: Vec::new(),
            parent: None,
        })
    }

    fn out(op: u64, buffer: u64, device: u32, pages: &[u8]) -> Event {
        Event::OutputDigest(OutputDigest { op, buffer, device, pages: pages.iter().map(|&p| [p; 16]).collect() })
    }

    fn guard(after_op: Option<u64>, buffer: u64, device: u32, pages: &[u8]) -> Event {
        Event::GuardDigest(GuardDigest {
            buffer,
            device,
            after_op,
            pages: pages.iter().map(|&p| [p; 16]).collect(),
            readable: true,
        })
    }

    /// Three ops on two chips; `skewed` changes page 1 of op 1's output on chip 1.
    fn run(skewed: bool, first_id: u64) -> Vec<Event> {
        let (x, y) = (first_id, first_id + 1);
        let mut e = vec![alloc(x, "x"), op(0, "ttnn.matmul"), out(0, x, 0, &[1, 2]), out(0, x, 1, &[1, 2])];
        e.extend([alloc(y, "y"), op(1, "ttnn.all_gather_async"), out(1, y, 0, &[3, 4])]);
        e.push(out(1, y, 1, if skewed { &[3, 9] } else { &[3, 4] }));
        if skewed {
            e.push(Event::Write(Write {
                device: 1,
                space: Space::Dram,
                unit: Unit::Bank(0),
                address: 64,
                len: 32,
                op: Some(1),
            }));
        }
        e.extend([op(2, "ttnn.add"), out(2, x, 0, &[5, 5]), out(2, x, 1, &[5, if skewed { 7 } else { 5 }])]);
        e
    }

    #[test]
    fn the_first_op_that_left_different_bytes_is_named_with_chip_and_pages() {
        let Ok(DiffOutcome::Differs(d)) = diff(&run(false, 10), &run(true, 20)) else { panic!() };
        assert_eq!((d.op, d.name.as_str(), d.call), (1, "ttnn.all_gather_async", 1));
        assert_eq!(
            d.items,
            vec![DiffItem {
                kind: DigestKind::Output,
                buffer: "y".into(),
                device: 1,
                pages: vec![1],
                total_pages: 2,
                only_in: None
            }]
        );
        assert!(d.wrote_a.is_empty());
        assert_eq!(d.wrote_b.len(), 1);
    }

    #[test]
    fn identical_runs_are_the_same_and_ids_need_not_match() {
        assert_eq!(diff(&run(false, 10), &run(false, 50)), Ok(DiffOutcome::Same { ops: 3, compared: 6 }));
    }

    #[test]
    fn runs_without_digests_cannot_be_called_the_same() {
        let bare = vec![op(0, "ttnn.add")];
        assert_eq!(diff(&bare, &run(false, 1)), Err(DiffError::NoDigests { run: 'A' }));
        assert_eq!(diff(&run(false, 1), &bare), Err(DiffError::NoDigests { run: 'B' }));
    }

    #[test]
    fn unreadable_digests_of_mock_chips_are_nothing_to_compare() {
        let mock = |e: Event| match e {
            Event::GuardDigest(mut g) => {
                g.readable = false;
                g.pages.clear();
                Event::GuardDigest(g)
            }
            e => e,
        };
        let run: Vec<Event> =
            vec![alloc(7, ""), guard(None, 7, 0, &[1]), op(0, "ttnn::add"), guard(Some(0), 7, 0, &[1])];
        let unread: Vec<Event> = run.iter().cloned().map(mock).collect();
        assert_eq!(diff(&unread, &unread), Err(DiffError::NoDigests { run: 'A' }));
        assert_eq!(diff(&run, &run), Ok(DiffOutcome::Same { ops: 1, compared: 2 }));
    }

    #[test]
    fn different_op_sequences_are_reported_where_they_part() {
        let mut b = run(false, 10);
        b.retain(|e| !matches!(e, Event::OpBegin(o) if o.index == 2));
        b.push(op(2, "ttnn.mul"));
        let got = diff(&run(false, 10), &b);
        assert_eq!(got, Ok(DiffOutcome::OpsDiverge { op: 2, a: "ttnn.add".into(), b: "ttnn.mul".into() }));
    }

    #[test]
    fn guard_digests_are_carried_forward_between_the_ops_that_change_them() {
        // Both runs digest the guard at registration; run B's copy on chip 0 changes at op 1,
        // run A's not at all (so A sends nothing there).
        let base = |changed: bool| {
            let mut e = vec![alloc(7, "sinks"), guard(None, 7, 0, &[1, 1]), op(0, "ttnn.matmul"), op(1, "ttnn.rs")];
            if changed {
                e.push(guard(Some(1), 7, 0, &[1, 2]));
            }
            e.push(op(2, "ttnn.sdpa"));
            e
        };
        let Ok(DiffOutcome::Differs(d)) = diff(&base(false), &base(true)) else { panic!() };
        assert_eq!((d.op, d.items[0].kind, d.items[0].pages.clone()), (1, DigestKind::Guard, vec![1]));
        assert_eq!(diff(&base(true), &base(true)), Ok(DiffOutcome::Same { ops: 3, compared: 2 }));
    }
}
