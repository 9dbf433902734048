//! Two runs of the same workload compared op by op: the first op after which what it left in
//! memory differs between them.
//!
//! An intermittent corruption (cross-chip skew, a race with the host) corrupts some runs and not
//! others, and a single run's checks may not see it: the corrupted bytes can be legal writes at
//! legal addresses. Two runs of the same workload must leave the same bytes behind every op, so
//! the first op whose outputs differ is where the runs parted. Each run's trace carries, per op
//! and chip, the digests of what the op wrote (`OutputDigest`, from `run gpt-oss
//! --digest-outputs`) and of the guarded buffers (`GuardDigest`, the simulator's digest modes or
//! the preload shim's guards on a real run). Top-level ops are matched by their order and name;
//! what a nested op record left (a device operation, or a late write that landed as its own
//! record) counts for the top-level op it appeared in, in trace order, so a run with an extra
//! nested record still lines up with one without. Buffers are matched by name (or id when
//! unnamed), so ids may differ between the runs.

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
    /// The top-level op's index in run A's trace.
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
    /// Nested op records inside it in run A and not in run B (name, chips).
    pub only_a: Vec<(String, Vec<u32>)>,
    /// Nested op records inside it in run B and not in run A.
    pub only_b: Vec<(String, Vec<u32>)>,
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
    /// The runs did not run the same top-level ops: the `op`-th is `a` in run A and `b` in B.
    OpsDiverge {
        /// The op's position among the top-level ops (0-based).
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

/// One run's digests, top-level op by top-level op (by position, see the module docs).
struct Run {
    /// Top-level ops in order: index, name, call number of that name.
    ops: Vec<(u64, String, u64)>,
    /// Every op index -> the position of the top-level op it counts for.
    position: HashMap<u64, u64>,
    /// Nested op records by position: name and chips.
    nested: BTreeMap<u64, Vec<(String, Vec<u32>)>>,
    /// Buffer names by id.
    names: HashMap<u64, String>,
    /// Output digests by op.
    outputs: BTreeMap<u64, DigestMap>,
    /// Guard digests by op position.
    guards: BTreeMap<u64, DigestMap>,
    /// Each guarded buffer's first digest (`after_op` none: the bytes as registered, which the
    /// simulator sends only once an op first writes the buffer).
    baseline: DigestMap,
    /// Writes by op.
    writes: BTreeMap<u64, Vec<Wrote>>,
    digests: u64,
}

impl Run {
    fn new(events: &[Event]) -> Run {
        let mut run = Run {
            ops: Vec::new(),
            position: HashMap::new(),
            nested: BTreeMap::new(),
            names: HashMap::new(),
            outputs: BTreeMap::new(),
            guards: BTreeMap::new(),
            baseline: DigestMap::new(),
            writes: BTreeMap::new(),
            digests: 0,
        };
        let mut calls: HashMap<String, u64> = HashMap::new();
        // The top-level op whose begin came last: nested records count for it.
        let mut current: Option<u64> = None;
        for e in events {
            match e {
                Event::BufferAlloc(b) if !b.name.is_empty() => {
                    run.names.insert(b.id, b.name.clone());
                }
                Event::OpBegin(o) if o.parent.is_none() => {
                    let call = calls.entry(o.name.clone()).or_insert(0);
                    *call += 1;
                    let at = run.ops.len() as u64;
                    run.ops.push((o.index, o.name.clone(), *call));
                    run.position.insert(o.index, at);
                    current = Some(at);
                }
                Event::OpBegin(o) => {
                    let at = current.unwrap_or(0);
                    run.position.insert(o.index, at);
                    run.nested.entry(at).or_default().push((o.name.clone(), o.devices.clone()));
                }
                // A digest of an op the trace never began says nothing it could be compared by.
                Event::OutputDigest(d) => {
                    if let Some(at) = run.position.get(&d.op).copied() {
                        let key = run.key(d.buffer, d.device);
                        run.outputs.entry(at).or_default().insert(key, d.pages.clone());
                        run.digests += 1;
                    }
                }
                // An unreadable digest (a mock chip) says nothing about the bytes.
                Event::GuardDigest(g) if g.readable => {
                    let key = run.key(g.buffer, g.device);
                    match g.after_op {
                        None => {
                            run.baseline.entry(key).or_insert_with(|| g.pages.clone());
                        }
                        Some(op) => {
                            let Some(&at) = run.position.get(&op) else { continue };
                            run.guards.entry(at).or_default().insert(key, g.pages.clone());
                        }
                    }
                    run.digests += 1;
                }
                Event::Write(w) => {
                    if let Some(at) = w.op.and_then(|op| run.position.get(&op).copied()) {
                        let wrote =
                            Wrote { device: w.device, space: w.space, unit: w.unit, address: w.address, len: w.len };
                        run.writes.entry(at).or_default().push(wrote);
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
    // op by op, and only what either run re-digested at an op is compared there. A buffer's
    // registration digest may exist in one run only (the simulator sends it when an op first
    // writes the buffer): the other run's bytes were then never changed, so they are the same.
    let mut items = Vec::new();
    let both: DigestMap =
        ra.baseline.iter().filter(|(k, _)| rb.baseline.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let both_b: DigestMap =
        rb.baseline.iter().filter(|(k, _)| ra.baseline.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    compare_maps(DigestKind::Guard, Some(&both), Some(&both_b), &mut items, &mut compared);
    let mut state_a = ra.baseline.clone();
    let mut state_b = rb.baseline.clone();
    for (k, v) in &rb.baseline {
        state_a.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &ra.baseline {
        state_b.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if !items.is_empty() {
        // The guarded buffers already differ before the first op: the workloads' inputs differ.
        return Ok(DiffOutcome::Differs(Divergence {
            op: 0,
            name: "(before the first op)".into(),
            call: 0,
            items,
            wrote_a: Vec::new(),
            wrote_b: Vec::new(),
            only_a: Vec::new(),
            only_b: Vec::new(),
        }));
    }
    for op in 0..ra.ops.len().max(rb.ops.len()) as u64 {
        let (na, nb) = (ra.ops.get(op as usize), rb.ops.get(op as usize));
        let name_of = |n: Option<&(u64, String, u64)>| n.map(|n| n.1.clone()).unwrap_or_else(|| "(none)".into());
        if na.map(|n| &n.1) != nb.map(|n| &n.1) {
            return Ok(DiffOutcome::OpsDiverge { op, a: name_of(na), b: name_of(nb) });
        }
        let mut items = Vec::new();
        compare_maps(DigestKind::Output, ra.outputs.get(&op), rb.outputs.get(&op), &mut items, &mut compared);
        compare_guards(&mut state_a, &mut state_b, ra.guards.get(&op), rb.guards.get(&op), &mut items, &mut compared);
        if !items.is_empty() {
            let chips: BTreeSet<u32> = items.iter().map(|i| i.device).collect();
            let wrote = |r: &Run| -> Vec<Wrote> {
                r.writes.get(&op).into_iter().flatten().filter(|w| chips.contains(&w.device)).cloned().collect()
            };
            let (index, name, call) = na.cloned().unwrap_or_default();
            let nested = |r: &Run| r.nested.get(&op).cloned().unwrap_or_default();
            let (na, nb) = (nested(&ra), nested(&rb));
            let only = |x: &[(String, Vec<u32>)], y: &[(String, Vec<u32>)]| -> Vec<(String, Vec<u32>)> {
                x.iter().filter(|n| !y.contains(n)).cloned().collect()
            };
            return Ok(DiffOutcome::Differs(Divergence {
                op: index,
                name,
                call,
                items,
                wrote_a: wrote(&ra),
                wrote_b: wrote(&rb),
                only_a: only(&na, &nb),
                only_b: only(&nb, &na),
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
    use crate::events::{GuardDigest, OpBegin, OutputDigest, Role, Write};
    use ttsan_test_support::events::{interleaved, op_begin};

    fn alloc(id: u64, name: &str) -> Event {
        Event::BufferAlloc(interleaved(id, Space::Dram, 0, 4096, 2048, name, Role::Activation, None))
    }

    fn op(index: u64, name: &str) -> Event {
        Event::OpBegin(op_begin(index, name))
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
    fn an_extra_nested_record_in_one_run_does_not_shift_the_ops_after_it() {
        // Run B: a late write lands as its own record (nested, on chip 4) during op 1 and
        // changes the guarded buffer on chip 5; op indices after it are one higher in B.
        let base = |late: bool| {
            let mut e = vec![alloc(7, "attn.input"), guard(None, 7, 5, &[1, 1]), op(0, "ttnn.rs")];
            e.push(op(1, "ttnn.matmul"));
            let mut next = 2;
            if late {
                e.push(Event::OpBegin(OpBegin {
                    devices: vec![4],
                    scratch: vec![7],
                    parent: Some(0),
                    ..op_begin(2, "ttnn.rs")
                }));
                e.push(guard(Some(2), 7, 5, &[1, 9]));
                next = 3;
            }
            e.push(op(next, "ttnn.add"));
            e.push(out(next, 7, 5, &[3]));
            e
        };
        let Ok(DiffOutcome::Differs(d)) = diff(&base(false), &base(true)) else { panic!() };
        assert_eq!((d.op, d.name.as_str()), (1, "ttnn.matmul"), "{d:?}");
        assert_eq!(d.items[0].pages, vec![1]);
        assert_eq!(d.only_b, vec![("ttnn.rs".to_string(), vec![4])]);
        assert!(d.only_a.is_empty());
    }

    #[test]
    fn different_op_sequences_are_reported_where_they_part() {
        let b: Vec<Event> = run(false, 10)
            .into_iter()
            .map(|e| match e {
                Event::OpBegin(o) if o.index == 2 => op(2, "ttnn.mul"),
                e => e,
            })
            .collect();
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
