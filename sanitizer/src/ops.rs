//! The ops of a trace and the buffers each declares.

use rustc_hash::FxHashMap as HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use ttsan_events::{op_semantics, Declared, OpBegin, OpSemantics};

/// How many buffers per op name are remembered as "declared by an earlier call of this op".
/// Program caches keep a handful of persistent buffers per op; this bounds memory on long traces.
const HISTORY_PER_NAME: usize = 64;

/// One op call.
#[derive(Debug, Clone)]
pub struct OpInfo {
    /// Sequence index.
    pub index: u64,
    /// Name as ttnn spells it.
    pub name: Arc<str>,
    /// Chips it runs on (empty: all).
    pub devices: Vec<u32>,
    /// The enclosing op.
    pub parent: Option<u64>,
    /// Buffers it declares and how it uses them.
    pub declared: HashMap<u64, Declared>,
    /// Whether its end was seen.
    pub ended: bool,
    /// The 1-based call number of this op name (the `#N` in `--inject op=NAME#N`).
    pub call: u64,
}

impl OpInfo {
    /// `#index name`, as reports print an op.
    pub fn label(&self) -> String {
        format!("#{} {}", self.index, self.name)
    }

    /// Whether the op declares `buffer` in any role.
    pub fn declares(&self, buffer: u64) -> bool {
        self.declared.contains_key(&buffer)
    }

    /// Whether the op declares `buffer` as something it writes (output or scratch).
    pub fn writes(&self, buffer: u64) -> bool {
        matches!(self.declared.get(&buffer), Some(Declared::Output | Declared::Scratch))
    }

    /// What the op declares beyond its buffers ([`ttsan_events::semantics`]: the simulator's
    /// op definitions and the names real runs record).
    pub fn semantics(&self) -> OpSemantics {
        op_semantics(&self.name)
    }

    /// Whether the op's writes can land after it ended (a collective's fabric writes into a
    /// peer): only such an op explains a change of free memory seen after later ops.
    pub fn writes_after_end(&self) -> bool {
        self.semantics().writes_after_end
    }
}

/// Every op seen so far.
#[derive(Debug, Default)]
pub struct OpTable {
    ops: HashMap<u64, OpInfo>,
    names: HashMap<String, Arc<str>>,
    calls: HashMap<Arc<str>, u64>,
    last_index: HashMap<Arc<str>, u64>,
    history: HashMap<Arc<str>, VecDeque<u64>>,
    open: Vec<u64>,
}

impl OpTable {
    /// Records an op start.
    pub fn begin(&mut self, begin: &OpBegin) {
        let name = self.intern(&begin.name);
        // A nested record of its parent's own name (a peer's late fabric writes of that call)
        // is part of the parent's call, not a call of its own.
        let same_call = begin.parent.and_then(|p| self.ops.get(&p)).filter(|p| p.name == name).map(|p| p.call);
        let call = match same_call {
            Some(call) => call,
            None => {
                let n = self.calls.entry(name.clone()).or_insert(0);
                *n += 1;
                *n
            }
        };
        self.last_index.insert(name.clone(), begin.index);
        let mut declared = HashMap::default();
        for &b in &begin.inputs {
            declared.insert(b, Declared::Input);
        }
        for &b in &begin.scratch {
            declared.insert(b, Declared::Scratch);
        }
        for &b in &begin.outputs {
            declared.insert(b, Declared::Output);
        }
        let info = OpInfo {
            index: begin.index,
            name,
            devices: begin.devices.clone(),
            parent: begin.parent,
            declared,
            ended: false,
            call,
        };
        for &b in info.declared.keys() {
            self.remember(&info.name, b);
        }
        self.ops.insert(begin.index, info);
        self.open.push(begin.index);
    }

    /// Records an op end.
    pub fn end(&mut self, index: u64) {
        if let Some(op) = self.ops.get_mut(&index) {
            op.ended = true;
        }
        self.open.retain(|&i| i != index);
    }

    /// Adds buffers to what `index` declares. An op's allocations count as its outputs, and as
    /// declared by its enclosing ops too: a composite op owns what its parts allocate.
    pub fn declare(&mut self, index: u64, buffers: &[u64], how: Declared) {
        let mut cursor = Some(index);
        while let Some(i) = cursor {
            let Some(op) = self.ops.get_mut(&i) else { break };
            for &b in buffers {
                let entry = op.declared.entry(b).or_insert(how);
                // Output/scratch beat input: the op writes it.
                if *entry == Declared::Input && how != Declared::Input {
                    *entry = how;
                }
            }
            cursor = op.parent;
            let name = op.name.clone();
            for &b in buffers {
                self.remember(&name, b);
            }
        }
    }

    fn remember(&mut self, name: &Arc<str>, buffer: u64) {
        let h = self.history.entry(name.clone()).or_default();
        if !h.contains(&buffer) {
            if h.len() >= HISTORY_PER_NAME {
                h.pop_front();
            }
            h.push_back(buffer);
        }
    }

    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.names.get(name) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(name);
        self.names.insert(name.to_string(), n.clone());
        n
    }

    /// An op by index.
    pub fn get(&self, index: u64) -> Option<&OpInfo> {
        self.ops.get(&index)
    }

    /// The most recent call of ops named `name`.
    pub fn last_call(&self, name: &str) -> Option<&OpInfo> {
        self.last_index.get(name).and_then(|i| self.ops.get(i))
    }

    /// Buffers declared by earlier calls of ops named `name` (program-cache state lives there).
    pub fn history(&self, name: &str) -> impl Iterator<Item = u64> + '_ {
        self.history.get(name).into_iter().flat_map(|h| h.iter().copied())
    }

    /// The innermost op still running, if any.
    pub fn current(&self) -> Option<u64> {
        self.open.last().copied()
    }
}
