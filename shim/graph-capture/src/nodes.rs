//! The graph: nodes with counters, types, params and connections, and what can be learnt
//! from the graph as a whole before walking it (buffer names, which devices appear).

use crate::error::ImportError;
use crate::params::Params;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// One node of the captured graph.
pub struct Node<'a> {
    /// `counter`: the node's id, which connections refer to.
    pub counter: u64,
    /// `node_type`.
    pub kind: &'a str,
    /// `params`.
    pub params: Params<'a>,
    /// `connections`: counters of the nodes this one points to.
    pub connections: Vec<u64>,
    /// The whole node, for fields outside `params` (`arguments`, `input_tensors`).
    pub raw: &'a Value,
}

fn counter_of(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The node list of a capture: a report object's `graph`, or a bare list (what
/// `ttnn.graph.end_graph_capture()` returns and scripts often dump as is).
pub fn graph_of(doc: &Value) -> Result<&Vec<Value>, ImportError> {
    match doc {
        Value::Array(nodes) => Ok(nodes),
        Value::Object(map) => match map.get("graph") {
            Some(Value::Array(nodes)) => Ok(nodes),
            Some(_) => Err(ImportError::Shape("`graph` is not a list of nodes".into())),
            None => Err(ImportError::Shape("top-level object has no `graph` key".into())),
        },
        _ => Err(ImportError::Shape("top level is neither a report object nor a list of nodes".into())),
    }
}

/// Parses every node's frame (counter, type, connections); params are read lazily.
pub fn parse_nodes(list: &[Value]) -> Result<Vec<Node<'_>>, ImportError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let obj = v.as_object().ok_or_else(|| ImportError::Shape(format!("graph entry {i} is not an object")))?;
        let counter = obj
            .get("counter")
            .and_then(counter_of)
            .ok_or_else(|| ImportError::Shape(format!("graph entry {i} has no integer `counter`")))?;
        let kind = obj.get("node_type").and_then(Value::as_str).ok_or_else(|| {
            ImportError::Shape(format!("graph entry {i} (counter {counter}) has no `node_type` string"))
        })?;
        let connections = match obj.get("connections") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(c)) => c
                .iter()
                .map(|x| {
                    counter_of(x).ok_or_else(|| {
                        ImportError::Shape(format!("node {counter}: connection {x} is not a node counter"))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ImportError::Shape(format!("node {counter}: `connections` is not a list"))),
        };
        out.push(Node { counter, kind, params: Params::new(obj.get("params")), connections, raw: v });
    }
    Ok(out)
}

/// Facts about the whole graph.
pub struct GraphIndex {
    kinds: HashMap<u64, String>,
    /// Name of each buffer node, from the tensor node it is connected to.
    pub buffer_names: HashMap<u64, String>,
    /// Buffer nodes connected to each tensor node.
    pub tensor_buffers: HashMap<u64, Vec<u64>>,
    /// Highest counter in the graph.
    pub max_counter: u64,
    /// Distinct `device_id`s of allocation nodes.
    pub alloc_devices: BTreeSet<u64>,
}

impl GraphIndex {
    /// Indexes the nodes.
    pub fn new(nodes: &[Node<'_>]) -> Self {
        let kinds: HashMap<u64, String> = nodes.iter().map(|n| (n.counter, n.kind.to_string())).collect();
        let tensor_names: HashMap<u64, String> =
            nodes.iter().filter(|n| n.kind == "tensor").map(|n| (n.counter, tensor_name(n))).collect();
        let mut buffer_names = HashMap::new();
        let mut tensor_buffers: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut link = |buffer: u64, tensor: u64| {
            if let Some(name) = tensor_names.get(&tensor) {
                buffer_names.entry(buffer).or_insert_with(|| name.clone());
            }
            let list = tensor_buffers.entry(tensor).or_default();
            if !list.contains(&buffer) {
                list.push(buffer);
            }
        };
        // Older captures point buffer -> tensor, newer ones tensor -> buffer; take both.
        for n in nodes {
            for &c in &n.connections {
                match (n.kind, kinds.get(&c).map(String::as_str)) {
                    ("buffer", Some("tensor")) => link(n.counter, c),
                    ("tensor", Some("buffer")) => link(c, n.counter),
                    _ => {}
                }
            }
        }
        let alloc_devices = nodes
            .iter()
            .filter(|n| matches!(n.kind, "buffer_allocate" | "circular_buffer_allocate"))
            .filter_map(|n| n.params.u64("device_id").ok())
            .collect();
        GraphIndex {
            max_counter: nodes.iter().map(|n| n.counter).max().unwrap_or(0),
            kinds,
            buffer_names,
            tensor_buffers,
            alloc_devices,
        }
    }

    /// The type of the node with this counter.
    pub fn kind(&self, counter: u64) -> Option<&str> {
        self.kinds.get(&counter).map(String::as_str)
    }
}

fn tensor_name(n: &Node<'_>) -> String {
    let id = n.params.str("tensor_id").unwrap_or_else(|| n.counter.to_string());
    match n.params.str("shape") {
        Some(shape) => format!("tensor {id} {shape}"),
        None => format!("tensor {id}"),
    }
}
