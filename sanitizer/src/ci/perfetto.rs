//! Chrome trace-event JSON export (opens in ui.perfetto.dev and chrome://tracing).
//!
//! - one process per chip (`pid` = device id), its ops as complete (`X`) slices on a thread
//!   per nesting depth (`tid` 1 for top-level ops, 2 for ops inside them, ...);
//! - bytes allocated per memory space as counters (`C`) on each chip;
//! - findings as instant events (`i`) at the end of their culprit op, on the chips they were
//!   seen on; marks as global instant events.
//!
//! Traces carry no clock, only order, so time is the record's position in the trace: one
//! microsecond per record. Durations therefore show how many events an op produced, not
//! how long it ran.

use super::text::{mechanism, title};
use crate::finding::Finding;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use ttsan_events::{Event, Space};

struct OpenOp {
    name: String,
    devices: Vec<u32>,
    begin: u64,
    depth: u32,
    args: Value,
}

/// Builds the export one event at a time; memory grows with the output, not the live state.
#[derive(Default)]
pub struct ChromeTrace {
    tick: u64,
    chips: Vec<u32>,
    open: BTreeMap<u64, OpenOp>,
    /// Op index -> (end tick, chips), for placing findings.
    ended: HashMap<u64, (u64, Vec<u32>)>,
    buffers: HashMap<u64, (Option<u32>, Space, u64)>,
    in_use: BTreeMap<(u32, Space), u64>,
    tracks: BTreeSet<(u32, u32)>,
    out: Vec<Value>,
}

impl ChromeTrace {
    /// An empty export.
    pub fn new() -> Self {
        ChromeTrace::default()
    }

    /// Adds one event.
    pub fn feed(&mut self, event: &Event) {
        self.tick += 1;
        let t = self.tick;
        match event {
            Event::CaptureStart(c) if self.chips.is_empty() => self.chips = c.mesh.device_ids.clone(),
            Event::OpBegin(op) => {
                let depth = self.open.values().filter(|o| overlaps(&o.devices, &op.devices)).count() as u32 + 1;
                let args = json!({
                    "index": op.index,
                    "args": op.args,
                    "inputs": op.inputs,
                    "outputs": op.outputs,
                    "scratch": op.scratch,
                });
                let open = OpenOp { name: op.name.clone(), devices: op.devices.clone(), begin: t, depth, args };
                self.open.insert(op.index, open);
            }
            Event::OpEnd { index } => {
                if let Some(op) = self.open.remove(index) {
                    self.close(*index, op, t, false);
                }
            }
            Event::BufferAlloc(a) => {
                self.buffers.insert(a.id, (a.device, a.space, a.size));
                self.count(a.device, a.space, a.size as i128, t);
            }
            Event::BufferFree(f) => {
                if let Some((device, space, size)) = self.buffers.remove(&f.id) {
                    self.count(device, space, -(size as i128), t);
                }
            }
            Event::Mark { text } => self.out.push(json!({
                "name": text, "cat": "mark", "ph": "i", "s": "g", "ts": t, "pid": 0, "tid": 0,
            })),
            _ => {}
        }
    }

    fn chips_of(&self, devices: &[u32]) -> Vec<u32> {
        if devices.is_empty() {
            self.chips.clone()
        } else {
            devices.to_vec()
        }
    }

    fn close(&mut self, index: u64, op: OpenOp, end: u64, unfinished: bool) {
        let chips = self.chips_of(&op.devices);
        let mut args = op.args;
        if unfinished {
            args["unfinished"] = json!(true);
        }
        for &chip in &chips {
            self.tracks.insert((chip, op.depth));
            self.out.push(json!({
                "name": op.name, "cat": "op", "ph": "X", "ts": op.begin, "dur": end - op.begin,
                "pid": chip, "tid": op.depth, "args": args,
            }));
        }
        self.ended.insert(index, (end, chips));
    }

    fn count(&mut self, device: Option<u32>, space: Space, delta: i128, t: u64) {
        for chip in self.chips_of(&device.into_iter().collect::<Vec<_>>()) {
            let v = self.in_use.entry((chip, space)).or_default();
            *v = (i128::from(*v) + delta).clamp(0, i128::from(u64::MAX)) as u64;
            let bytes = *v;
            self.out.push(json!({
                "name": format!("{space} bytes in use"), "cat": "memory", "ph": "C", "ts": t, "pid": chip,
                "args": { "bytes": bytes },
            }));
        }
    }

    /// Ends the export, placing `findings`, and returns the trace-event JSON document.
    pub fn finish(mut self, findings: &[Finding]) -> Value {
        let end = self.tick + 1;
        let unfinished: Vec<(u64, OpenOp)> = std::mem::take(&mut self.open).into_iter().collect();
        for (index, op) in unfinished {
            self.close(index, op, end, true);
        }
        for f in findings {
            let (ts, op_chips) = f
                .culprit
                .as_ref()
                .and_then(|c| self.ended.get(&c.op_index))
                .map_or((end, Vec::new()), |(t, chips)| (*t, chips.clone()));
            let chips = if !f.devices.is_empty() { f.devices.clone() } else { op_chips };
            let args = json!({
                "kind": f.kind.as_str(), "mechanism": mechanism(f), "place": f.place(),
                "address": f.address, "size": f.size, "count": f.count,
            });
            if chips.is_empty() {
                self.out.push(json!({
                    "name": title(f), "cat": "finding", "ph": "i", "s": "g", "ts": ts, "pid": 0, "tid": 0, "args": args,
                }));
            }
            for chip in chips {
                self.out.push(json!({
                    "name": title(f), "cat": "finding", "ph": "i", "s": "p", "ts": ts, "pid": chip, "tid": 1,
                    "args": args,
                }));
            }
        }
        let mut meta = Vec::new();
        for &chip in &self.chips {
            meta.push(json!({ "name": "process_name", "ph": "M", "pid": chip, "tid": 0, "args": { "name": format!("chip {chip}") } }));
            meta.push(json!({ "name": "process_sort_index", "ph": "M", "pid": chip, "tid": 0, "args": { "sort_index": chip } }));
        }
        for &(chip, depth) in &self.tracks {
            let name = if depth == 1 { "ops".to_string() } else { format!("ops (nested {})", depth - 1) };
            meta.push(json!({ "name": "thread_name", "ph": "M", "pid": chip, "tid": depth, "args": { "name": name } }));
        }
        meta.extend(self.out);
        json!({
            "traceEvents": meta,
            "displayTimeUnit": "ms",
            "otherData": {
                "producer": format!("ttsan {}", env!("CARGO_PKG_VERSION")),
                "clock": "trace record number: 1 us per record (ttsan traces carry order, not time)",
            },
        })
    }
}

/// Whether two device sets share a chip (empty means every chip).
fn overlaps(a: &[u32], b: &[u32]) -> bool {
    a.is_empty() || b.is_empty() || a.iter().any(|d| b.contains(d))
}
