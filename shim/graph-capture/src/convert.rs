//! Walking the graph in order and emitting ttsan events.

use crate::core_range::parse_core_range_set;
use crate::error::ImportError;
use crate::geometry;
use crate::nodes::{GraphIndex, Node};
use crate::params::ParamError;
use crate::{Import, ImportOptions, Summary};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use ttsan_events::{
    BufferAlloc, BufferFree, CaptureStart, CbAlloc, DeviceSel, Event, Layout, OpBegin, Role, ShardScheme, ShardSpec,
    Space,
};

/// What a `buffer_type` says: a device space, or host memory (skipped).
enum BufferPlace {
    Device(Space),
    Host,
}

pub(crate) struct Converter<'a> {
    index: &'a GraphIndex,
    opts: &'a ImportOptions,
    events: Vec<Event>,
    summary: Summary,
    /// Buffer node -> trace id of its current lifetime.
    live: HashMap<u64, u64>,
    /// Buffer node -> trace id of its last, ended lifetime.
    ended: HashMap<u64, u64>,
    used_ids: HashSet<u64>,
    next_fresh: u64,
    op_stack: Vec<u64>,
    next_op: u64,
    per_device: bool,
    saw_capture_start: bool,
    unknown_kinds: BTreeMap<String, u64>,
    host_buffers: u64,
    unknown_frees: u64,
    double_frees: u64,
    unmatched_ends: u64,
    page_size_assumed: u64,
    shard_unknown: u64,
    zero_addresses: u64,
    addressed_allocs: u64,
}

fn param_err(n: &Node<'_>, param: &'static str, e: ParamError) -> ImportError {
    match e {
        ParamError::Missing => ImportError::MissingParam { counter: n.counter, node_type: n.kind.to_string(), param },
        ParamError::Bad(reason) => {
            ImportError::BadParam { counter: n.counter, node_type: n.kind.to_string(), param, reason }
        }
    }
}

fn bad(n: &Node<'_>, param: &'static str, reason: String) -> ImportError {
    ImportError::BadParam { counter: n.counter, node_type: n.kind.to_string(), param, reason }
}

impl<'a> Converter<'a> {
    pub(crate) fn new(index: &'a GraphIndex, opts: &'a ImportOptions) -> Self {
        Converter {
            index,
            opts,
            events: Vec::new(),
            summary: Summary::default(),
            live: HashMap::new(),
            ended: HashMap::new(),
            used_ids: HashSet::new(),
            next_fresh: index.max_counter + 1,
            op_stack: Vec::new(),
            next_op: 0,
            // One device id for every allocation means mesh-wide (or single-chip) buffers;
            // several mean per-device buffers that may sit at different addresses.
            per_device: index.alloc_devices.len() > 1,
            saw_capture_start: false,
            unknown_kinds: BTreeMap::new(),
            host_buffers: 0,
            unknown_frees: 0,
            double_frees: 0,
            unmatched_ends: 0,
            page_size_assumed: 0,
            shard_unknown: 0,
            zero_addresses: 0,
            addressed_allocs: 0,
        }
    }

    /// The trace id for a new lifetime of `node`: its own counter the first time, a fresh
    /// number above every counter afterwards.
    fn fresh_id(&mut self, preferred: Option<u64>) -> u64 {
        let id = match preferred {
            Some(p) if !self.used_ids.contains(&p) => p,
            _ => {
                let id = self.next_fresh;
                self.next_fresh += 1;
                id
            }
        };
        self.used_ids.insert(id);
        id
    }

    fn device(&self, n: &Node<'_>) -> Result<DeviceSel, ImportError> {
        if !self.per_device {
            return Ok(None);
        }
        Ok(n.params.opt_u64("device_id").map_err(|e| param_err(n, "device_id", e))?.map(|d| d as u32))
    }

    fn buffer_node(&self, n: &Node<'_>) -> Option<u64> {
        n.connections.iter().copied().find(|&c| self.index.kind(c) == Some("buffer"))
    }

    pub(crate) fn run(mut self, doc: &Value, nodes: &[Node<'_>]) -> Result<Import, ImportError> {
        let devices = match doc {
            Value::Object(map) => map.get("devices"),
            _ => None,
        };
        let descriptor = match doc {
            Value::Object(map) => map.get("cluster_descriptor").and_then(Value::as_str),
            _ => None,
        };
        let (geometry, mesh, notes) = geometry::from_report(devices, descriptor, self.opts.arch);
        let mut warnings = notes;
        let version = match doc {
            Value::Object(map) => map.get("version").map(|v| v.to_string()),
            _ => None,
        };
        self.events.push(Event::CaptureStart(CaptureStart {
            producer: format!(
                "ttsan-graph-capture {} (ttnn graph capture{})",
                env!("CARGO_PKG_VERSION"),
                version.map(|v| format!(" format {v}")).unwrap_or_default()
            ),
            geometry,
            mesh,
            command: self.opts.command.clone(),
        }));
        for n in nodes {
            self.node(n)?;
        }
        self.events.push(Event::CaptureEnd { dropped: 0 });
        self.finish_warnings(&mut warnings);
        let no_dispatch = self.addressed_allocs > 0 && self.zero_addresses == self.addressed_allocs;
        if no_dispatch {
            let text = format!(
                "every one of the {} buffer addresses is 0: this looks like a NO_DISPATCH capture, which \
                 allocates nothing; placement and overlap findings are meaningless",
                self.addressed_allocs
            );
            warnings.push(text.clone());
            self.events.insert(1, Event::Mark { text });
        }
        Ok(Import { events: self.events, warnings, summary: self.summary, no_dispatch })
    }

    fn finish_warnings(&self, warnings: &mut Vec<String>) {
        if !self.saw_capture_start {
            warnings.push("capture has no capture_start node (truncated at the front?)".into());
        }
        if !self.unknown_kinds.is_empty() {
            let total: u64 = self.unknown_kinds.values().sum();
            let kinds: Vec<String> = self.unknown_kinds.iter().map(|(k, c)| format!("{k} x{c}")).collect();
            warnings.push(format!("skipped {total} node(s) of unknown type: {}", kinds.join(", ")));
        }
        if self.host_buffers > 0 {
            warnings.push(format!("skipped {} allocation(s) in host (SYSTEM_MEMORY) buffers", self.host_buffers));
        }
        if self.unknown_frees > 0 {
            warnings.push(format!(
                "{} deallocation(s) of buffers not allocated in this capture (allocated before it started?); \
                 kept as frees of unknown buffers",
                self.unknown_frees
            ));
        }
        if self.double_frees > 0 {
            warnings.push(format!("{} buffer(s) deallocated again after their deallocation", self.double_frees));
        }
        if self.unmatched_ends > 0 {
            warnings.push(format!("skipped {} function_end node(s) with no open function", self.unmatched_ends));
        }
        if !self.op_stack.is_empty() {
            warnings.push(format!("{} function(s) still open at the end of the capture", self.op_stack.len()));
        }
        if self.page_size_assumed > 0 {
            warnings.push(format!(
                "{} allocation(s) without page_size (older capture format): assumed one page per buffer",
                self.page_size_assumed
            ));
        }
        if self.shard_unknown > 0 {
            warnings.push(format!(
                "{} sharded allocation(s): the capture does not say which cores hold the shards",
                self.shard_unknown
            ));
        }
    }

    fn node(&mut self, n: &Node<'_>) -> Result<(), ImportError> {
        match n.kind {
            "capture_start" => {
                if self.saw_capture_start {
                    self.events.push(Event::Mark { text: format!("nested capture_start (node {})", n.counter) });
                }
                self.saw_capture_start = true;
            }
            "capture_end" | "buffer" | "tensor" => {}
            "buffer_allocate" => self.buffer_allocate(n)?,
            "buffer_deallocate" => self.buffer_deallocate(n)?,
            "circular_buffer_allocate" => self.cb_allocate(n)?,
            "circular_buffer_deallocate_all" => {
                let device = self.device(n)?;
                self.events.push(Event::CbDeallocAll { device });
            }
            "function_start" => self.function_start(n),
            "function_end" => match self.op_stack.pop() {
                Some(index) => self.events.push(Event::OpEnd { index }),
                None => self.unmatched_ends += 1,
            },
            "error" => {
                let p = &n.params;
                let text = format!(
                    "graph capture error in {}: {} {}",
                    p.str("error_operation").unwrap_or_default(),
                    p.str("error_type").unwrap_or_default(),
                    p.str("error_message").unwrap_or_default()
                );
                self.events.push(Event::Mark { text });
            }
            other => *self.unknown_kinds.entry(other.to_string()).or_default() += 1,
        }
        Ok(())
    }

    fn place(&self, n: &Node<'_>) -> Result<BufferPlace, ImportError> {
        for key in ["buffer_type", "buffer_type_value"] {
            if let Some(text) = n.params.str(key) {
                if let Ok(v) = text.parse::<u64>() {
                    return match v {
                        0 => Ok(BufferPlace::Device(Space::Dram)),
                        1 => Ok(BufferPlace::Device(Space::L1)),
                        2 => Ok(BufferPlace::Host),
                        3 => Ok(BufferPlace::Device(Space::L1Small)),
                        4 => Ok(BufferPlace::Device(Space::Trace)),
                        _ => Err(bad(n, "buffer_type", format!("unknown buffer type {v}"))),
                    };
                }
                if let Some(place) = place_from_name(&text) {
                    return Ok(place);
                }
                return Err(bad(n, "buffer_type", format!("unknown buffer type \"{text}\"")));
            }
        }
        for key in ["exact_buffer_type", "type"] {
            if let Some(text) = n.params.str(key) {
                return place_from_name(&text).ok_or_else(|| bad(n, "type", format!("unknown buffer type \"{text}\"")));
            }
        }
        Err(ImportError::MissingParam { counter: n.counter, node_type: n.kind.to_string(), param: "buffer_type" })
    }

    fn layout(&mut self, n: &Node<'_>, size: u64, page_size: u64) -> Result<Layout, ImportError> {
        let Some(text) = n.params.str("layout") else { return Ok(Layout::Interleaved) };
        let scheme = match text.trim() {
            "INTERLEAVED" | "0" | "SINGLE_BANK" | "1" => return Ok(Layout::Interleaved),
            "HEIGHT_SHARDED" | "2" => ShardScheme::Height,
            "WIDTH_SHARDED" | "3" => ShardScheme::Width,
            "BLOCK_SHARDED" | "4" => ShardScheme::Block,
            other => return Err(bad(n, "layout", format!("unknown layout \"{other}\""))),
        };
        self.shard_unknown += 1;
        let cores = n.params.opt_u64("num_cores").map_err(|e| param_err(n, "num_cores", e))?.unwrap_or(1).max(1);
        let pages = size.div_ceil(page_size.max(1));
        let per_shard = pages.div_ceil(cores);
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        // Height-cut over `cores` shards: the capture keeps only the core count, not the grid.
        Ok(Layout::Sharded(ShardSpec {
            scheme,
            units: Vec::new(),
            shard_shape: [clamp(per_shard), 1],
            tensor_shape: [clamp(pages), 1],
        }))
    }

    fn buffer_allocate(&mut self, n: &Node<'_>) -> Result<(), ImportError> {
        let space = match self.place(n)? {
            BufferPlace::Device(s) => s,
            BufferPlace::Host => {
                self.host_buffers += 1;
                return Ok(());
            }
        };
        let address = n.params.u64("address").map_err(|e| param_err(n, "address", e))?;
        let size = n.params.u64("size").map_err(|e| param_err(n, "size", e))?;
        let page_size = match n.params.opt_u64("page_size").map_err(|e| param_err(n, "page_size", e))? {
            Some(p) if p > 0 => p,
            _ => {
                self.page_size_assumed += 1;
                size.max(1)
            }
        };
        let layout = self.layout(n, size, page_size)?;
        let device = self.device(n)?;
        let node = self.buffer_node(n);
        if let Some(b) = node {
            if let Some(old) = self.live.remove(&b) {
                // Allocated again without a deallocation in between: close the old lifetime so
                // the trace stays consistent, and say so.
                self.events.push(Event::Mark {
                    text: format!("buffer node {b} allocated again while live (node {})", n.counter),
                });
                self.ended.insert(b, old);
            }
        }
        let id = self.fresh_id(node);
        if let Some(b) = node {
            self.live.insert(b, id);
        }
        self.addressed_allocs += 1;
        if address == 0 {
            self.zero_addresses += 1;
        }
        let name = node.and_then(|b| self.index.buffer_names.get(&b)).cloned().unwrap_or_default();
        self.summary.buffers += 1;
        self.events.push(Event::BufferAlloc(BufferAlloc {
            id,
            device,
            space,
            address,
            size,
            page_size,
            layout,
            name,
            role: Role::Other,
            op: self.op_stack.last().copied(),
            stack: None,
            stack_id: None,
        }));
        Ok(())
    }

    fn buffer_deallocate(&mut self, n: &Node<'_>) -> Result<(), ImportError> {
        if let Ok(BufferPlace::Host) = self.place(n) {
            return Ok(());
        }
        let node = self.buffer_node(n);
        let id = match node {
            Some(b) => match self.live.remove(&b) {
                Some(id) => {
                    self.ended.insert(b, id);
                    id
                }
                None => match self.ended.get(&b) {
                    Some(&id) => {
                        self.double_frees += 1;
                        id
                    }
                    None => {
                        self.unknown_frees += 1;
                        let id = self.fresh_id(Some(b));
                        self.ended.insert(b, id);
                        id
                    }
                },
            },
            None => {
                self.unknown_frees += 1;
                self.fresh_id(None)
            }
        };
        self.summary.frees += 1;
        self.events.push(Event::BufferFree(BufferFree {
            id,
            op: self.op_stack.last().copied(),
            stack: None,
            stack_id: None,
        }));
        Ok(())
    }

    fn cb_allocate(&mut self, n: &Node<'_>) -> Result<(), ImportError> {
        let address = n.params.u64("address").map_err(|e| param_err(n, "address", e))?;
        let size = n.params.u64("size").map_err(|e| param_err(n, "size", e))?;
        let text = n.params.str("core_range_set").ok_or_else(|| ImportError::MissingParam {
            counter: n.counter,
            node_type: n.kind.to_string(),
            param: "core_range_set",
        })?;
        let cores = parse_core_range_set(&text).map_err(|e| bad(n, "core_range_set", e))?;
        let globally_allocated =
            n.params.bool("globally_allocated").map_err(|e| param_err(n, "globally_allocated", e))?.unwrap_or(false);
        let device = self.device(n)?;
        let id = self.fresh_id(Some(n.counter));
        self.summary.circular_buffers += 1;
        self.events.push(Event::CbAlloc(CbAlloc {
            id,
            device,
            cores,
            address,
            size,
            globally_allocated,
            name: String::new(),
            op: self.op_stack.last().copied(),
        }));
        Ok(())
    }

    fn function_start(&mut self, n: &Node<'_>) {
        let index = self.next_op;
        self.next_op += 1;
        let name = n.params.str("name").unwrap_or_else(|| "<unnamed>".into());
        let args = match n.raw.get("arguments") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        };
        let mut inputs = Vec::new();
        if let Some(Value::Array(tensors)) = n.raw.get("input_tensors") {
            for t in tensors.iter().filter_map(Value::as_u64) {
                for b in self.index.tensor_buffers.get(&t).into_iter().flatten() {
                    if let Some(&id) = self.live.get(b) {
                        if !inputs.contains(&id) {
                            inputs.push(id);
                        }
                    }
                }
            }
        }
        self.summary.ops += 1;
        self.events.push(Event::OpBegin(OpBegin {
            index,
            name,
            devices: Vec::new(),
            args,
            inputs,
            outputs: Vec::new(),
            scratch: Vec::new(),
            parent: self.op_stack.last().copied(),
        }));
        self.op_stack.push(index);
    }
}

fn place_from_name(name: &str) -> Option<BufferPlace> {
    match name.trim().to_ascii_uppercase().as_str() {
        "DRAM" => Some(BufferPlace::Device(Space::Dram)),
        "L1" => Some(BufferPlace::Device(Space::L1)),
        "L1_SMALL" => Some(BufferPlace::Device(Space::L1Small)),
        "TRACE" => Some(BufferPlace::Device(Space::Trace)),
        "SYSTEM_MEMORY" => Some(BufferPlace::Host),
        _ => None,
    }
}
