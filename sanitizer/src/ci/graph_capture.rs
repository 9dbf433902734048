//! ttnn's graph-capture report (format version 1), so that a ttsan trace opens in
//! ttnn-visualizer: `ttnn/graph_report.py` of the ttnn wheel (`import_report`) turns such a file
//! into the visualizer's SQLite database.
//!
//! What the importer reads, and what this export writes (field names as `graph_report.py`'s
//! `import_report`, `import_devices` and `import_graph` read them):
//!
//! - `version` 1 (its `SUPPORTED_REPORT_VERSION`), `metadata`, `devices` (one per chip, the
//!   columns of its `devices` table from the trace's geometry);
//! - `graph`: nodes with `counter`, `node_type`, `params` (strings, as tt-metal's
//!   `GraphProcessor` writes them), `connections`, `arguments`, `input_tensors`;
//!   `capture_start` first and `capture_end` last;
//! - every op as `function_start` / `function_end` with its name (nested ops inside, which the
//!   importer folds into their top-level op);
//! - every buffer allocation and free as `buffer_allocate` / `buffer_deallocate` with the
//!   buffer's real address, size, page size, type and chip (a mesh buffer once per chip), and
//!   `max_size_per_bank`; circular buffers as `circular_buffer_allocate` /
//!   `circular_buffer_deallocate_all`;
//! - every finding as an `error` node inside its culprit op (the importer binds such an error to
//!   the op and writes it to its `errors` table), naming the kind, the op, the victim and the
//!   address; findings without a culprit op go after the last op.

use super::text::title;
use crate::finding::Finding;
use serde_json::{json, Value};
use std::collections::HashMap;
use ttsan_events::{CaptureStart, Event, Geometry, Layout, Space};

/// A node before counters are assigned: findings are inserted into ops after the whole trace
/// was read, which moves every later node.
struct Node {
    node_type: &'static str,
    params: Value,
    /// Positions (in the node list) this node connects to.
    connections: Vec<usize>,
}

/// Builds the report one event at a time.
#[derive(Default)]
pub struct GraphCaptureExport {
    start: Option<CaptureStart>,
    nodes: Vec<Node>,
    /// Open ops: index -> position of their `function_start`.
    open: HashMap<u64, usize>,
    /// Where each op's `function_end` is, to put its findings just before it.
    ends: HashMap<u64, usize>,
    names: HashMap<u64, String>,
    /// Live buffers: id -> positions of their `buffer_allocate` nodes (one per chip).
    allocs: HashMap<u64, Vec<usize>>,
}

/// tt-metal's `BufferType` numbering, as the importer stores it.
fn buffer_type(space: Space) -> u32 {
    match space {
        Space::Dram => 0,
        Space::L1 => 1,
        Space::L1Small => 3,
        Space::Trace => 4,
    }
}

impl GraphCaptureExport {
    /// An empty export.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, node_type: &'static str, params: Value, connections: Vec<usize>) -> usize {
        self.nodes.push(Node { node_type, params, connections });
        self.nodes.len() - 1
    }

    fn chips(&self) -> Vec<u32> {
        self.start.as_ref().map(|s| s.mesh.device_ids.clone()).unwrap_or_else(|| vec![0])
    }

    /// Takes one event.
    pub fn feed(&mut self, event: &Event) {
        match event {
            Event::CaptureStart(s) => self.start = Some(s.clone()),
            Event::OpBegin(o) => {
                let at = self.push("function_start", json!({ "name": o.name, "inputs": "0" }), Vec::new());
                if let Some(parent) = o.parent.and_then(|p| self.open.get(&p)).copied() {
                    self.nodes[parent].connections.push(at);
                }
                self.open.insert(o.index, at);
                self.names.insert(o.index, o.name.clone());
            }
            Event::OpEnd { index } => {
                let name = self.names.get(index).cloned().unwrap_or_default();
                let start = self.open.remove(index);
                let at = self.push("function_end", json!({ "name": name }), Vec::new());
                if let Some(start) = start {
                    self.nodes[start].connections.push(at);
                }
                self.ends.insert(*index, at);
            }
            Event::BufferAlloc(b) => {
                let chips = match b.device {
                    Some(d) => vec![d],
                    None => self.chips(),
                };
                let banks = self.start.as_ref().map_or(1, |s| s.geometry.banks(b.space).max(1));
                let (page, size) = (b.page_size.max(1), b.size);
                let per_bank = match &b.layout {
                    Layout::Interleaved => size.div_ceil(page).div_ceil(u64::from(banks)) * page,
                    // Sharded: the shard placement is not carried per bank here; the whole size
                    // over the cores it is spread over is the importer's own fallback too.
                    Layout::Sharded(_) => size.div_ceil(u64::from(banks)),
                };
                let layout = b.layout.name();
                let mut at = Vec::new();
                for chip in chips {
                    let params = json!({
                        "device_id": chip.to_string(),
                        "address": b.address.to_string(),
                        "size": size.to_string(),
                        "page_size": b.page_size.to_string(),
                        "buffer_type": buffer_type(b.space).to_string(),
                        "layout": layout,
                        "num_cores": "0",
                        "max_size_per_bank": per_bank.to_string(),
                        "name": b.name,
                    });
                    at.push(self.push("buffer_allocate", params, Vec::new()));
                }
                self.allocs.insert(b.id, at);
            }
            Event::BufferFree(f) => {
                let Some(allocs) = self.allocs.remove(&f.id) else { return };
                let Some(&first) = allocs.first() else { return };
                // One node per free: the importer drops every live buffer at the freed address
                // (on all chips) and turns each free outside an op into an operation of its own.
                let p = &self.nodes[first].params;
                let params = json!({
                    "device_id": p["device_id"].clone(),
                    "address": p["address"].clone(),
                    "size": p["size"].clone(),
                    "buffer_type": p["buffer_type"].clone(),
                });
                self.push("buffer_deallocate", params, allocs);
            }
            Event::CbAlloc(c) => {
                let ranges: Vec<String> = c
                    .cores
                    .iter()
                    .map(|r| format!("[({},{}) - ({},{})]", r.start.x, r.start.y, r.end.x, r.end.y))
                    .collect();
                let device = c.device.or_else(|| self.chips().first().copied()).unwrap_or(0);
                let params = json!({
                    "device_id": device.to_string(),
                    "address": c.address.to_string(),
                    "size": c.size.to_string(),
                    "globally_allocated": c.globally_allocated.to_string(),
                    "core_range_set": format!("{{{}}}", ranges.join(", ")),
                });
                self.push("circular_buffer_allocate", params, Vec::new());
            }
            Event::CbDeallocAll { device } => {
                let device = device.or_else(|| self.chips().first().copied()).unwrap_or(0);
                self.push("circular_buffer_deallocate_all", json!({ "device_id": device.to_string() }), Vec::new());
            }
            _ => {}
        }
    }

    /// The report, with `findings` as error nodes in their culprit ops.
    pub fn finish(self, findings: &[Finding]) -> Value {
        let GraphCaptureExport { start, nodes, ends, names, .. } = self;
        // Errors go right before the culprit op's function_end; the rest after everything.
        let mut before: HashMap<usize, Vec<Value>> = HashMap::new();
        let mut trailing = Vec::new();
        for f in findings {
            let op = f.culprit.as_ref().map(|c| c.op_index);
            let operation = op.and_then(|i| names.get(&i)).cloned().unwrap_or_default();
            let chip = f.device.map(|d| format!(" on chip {d}")).unwrap_or_default();
            let unit = f.bank.map(|b| format!("bank {b}")).or_else(|| f.core.map(|[x, y]| format!("core ({x},{y})")));
            let message = format!(
                "ttsan {} (op #{}){chip}: {} bytes at {:#x} in {} {}",
                title(f),
                op.map_or_else(|| "?".into(), |i| i.to_string()),
                f.size,
                f.address,
                f.space,
                unit.unwrap_or_default(),
            );
            let params = json!({
                "error_type": format!("ttsan:{}", f.kind),
                "error_message": message,
                "error_operation": operation,
            });
            match op.and_then(|i| ends.get(&i)) {
                Some(&end) => before.entry(end).or_default().push(params),
                None => trailing.push(params),
            }
        }
        // Counters: capture_start is 0, then every node in order with its errors before it.
        let mut counter_of = vec![0usize; nodes.len()];
        let mut next = 1;
        for (i, _) in nodes.iter().enumerate() {
            next += before.get(&i).map_or(0, Vec::len);
            counter_of[i] = next;
            next += 1;
        }
        let node = |counter: usize, node_type: &str, params: Value, connections: Vec<usize>| {
            json!({
                "counter": counter,
                "node_type": node_type,
                "params": params,
                "connections": connections,
                "arguments": [],
                "input_tensors": [],
            })
        };
        let mut graph = vec![node(0, "capture_start", json!({}), if nodes.is_empty() { vec![] } else { vec![1] })];
        let mut counter = 1;
        for (i, n) in nodes.into_iter().enumerate() {
            for params in before.remove(&i).unwrap_or_default() {
                graph.push(node(counter, "error", params, Vec::new()));
                counter += 1;
            }
            let connections = n.connections.iter().map(|&c| counter_of[c]).collect();
            graph.push(node(counter, n.node_type, n.params, connections));
            counter += 1;
        }
        for params in trailing {
            graph.push(node(counter, "error", params, Vec::new()));
            counter += 1;
        }
        graph.push(node(counter, "capture_end", json!({}), Vec::new()));
        let devices: Vec<Value> = match &start {
            Some(s) => s.mesh.device_ids.iter().map(|&d| device(d, &s.geometry)).collect(),
            None => Vec::new(),
        };
        let producer = start.as_ref().map(|s| s.producer.clone()).unwrap_or_default();
        json!({
            "version": 1,
            "metadata": { "rank": 0, "world_size": 1, "exported_by": format!("ttsan {}", env!("CARGO_PKG_VERSION")), "producer": producer },
            "devices": devices,
            "graph": graph,
        })
    }
}

/// One chip's row of the importer's `devices` table, from the trace's geometry.
fn device(id: u32, g: &Geometry) -> Value {
    let cores = u64::from(g.worker_grid.x) * u64::from(g.worker_grid.y);
    let banks = u64::from(g.l1_banks());
    let per_bank = g.l1_size.saturating_sub(g.l1_unreserved_base);
    json!({
        "device_id": id,
        "num_x_cores": g.worker_grid.x,
        "num_y_cores": g.worker_grid.y,
        "num_x_compute_cores": g.worker_grid.x,
        "num_y_compute_cores": g.worker_grid.y,
        "worker_l1_size": g.l1_size,
        "l1_num_banks": banks,
        "l1_bank_size": per_bank,
        "address_at_first_l1_bank": g.l1_unreserved_base,
        "address_at_first_l1_cb_buffer": g.l1_unreserved_base,
        "num_banks_per_storage_core": 0,
        "num_compute_cores": cores,
        "num_storage_cores": 0,
        "total_l1_memory": g.l1_size * cores,
        "total_l1_for_tensors": per_bank * banks,
        "total_l1_for_interleaved_buffers": per_bank * banks,
        "total_l1_for_sharded_buffers": per_bank * banks,
        "cb_limit": per_bank,
    })
}
