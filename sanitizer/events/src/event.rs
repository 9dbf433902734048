//! The events a backend records.

use crate::device::{CoreRange, Geometry, MeshDesc, Space, Unit};
use crate::layout::Layout;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which chips an event applies to: `None` means every chip of the mesh (a mesh buffer, which
/// tt-metal places at the same address on every chip), `Some(d)` one device id.
pub type DeviceSel = Option<u32>;

/// What a buffer is for. Guards, colours and report wording depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Model weights and other long-lived constants (attention sinks, norms).
    Weight,
    /// Intermediate tensors.
    Activation,
    /// Key/value cache.
    KvCache,
    /// A circular buffer of a program.
    CircularBuffer,
    /// Scratch owned by a collective (intermediate buffers, persistent outputs).
    CclScratch,
    /// Global semaphores.
    Semaphore,
    /// Trace region buffers.
    Trace,
    /// Anything else.
    Other,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 8] = [
        Role::Weight,
        Role::Activation,
        Role::KvCache,
        Role::CircularBuffer,
        Role::CclScratch,
        Role::Semaphore,
        Role::Trace,
        Role::Other,
    ];

    /// The name used in reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Weight => "weight",
            Role::Activation => "activation",
            Role::KvCache => "kv-cache",
            Role::CircularBuffer => "circular-buffer",
            Role::CclScratch => "ccl-scratch",
            Role::Semaphore => "semaphore",
            Role::Trace => "trace",
            Role::Other => "other",
        }
    }

    /// Parses the name [`Role::as_str`] gives.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first record of every trace: what was captured, on what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStart {
    /// The producer, e.g. `ttsan-sim 0.1.0` or `ttsan-preload 0.1.0 (ttnn 0.81.1)`.
    pub producer: String,
    /// Memory geometry of every chip (all chips of a mesh are alike).
    pub geometry: Geometry,
    /// The mesh.
    pub mesh: MeshDesc,
    /// The command or scenario captured, for reports.
    pub command: String,
}

/// A buffer allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferAlloc {
    /// Unique buffer id within the trace.
    pub id: u64,
    /// The chip, or `None` for a mesh buffer present on every chip at the same address.
    pub device: DeviceSel,
    /// Memory space.
    pub space: Space,
    /// Bank-local address (the same in every bank or shard core).
    pub address: u64,
    /// Total size in bytes over all banks.
    pub size: u64,
    /// Page size in bytes.
    pub page_size: u64,
    /// Page layout.
    pub layout: Layout,
    /// Human name (`layer1.attn.sinks`), may be empty.
    pub name: String,
    /// What the buffer is for.
    pub role: Role,
    /// Index of the op during which it was allocated, if any.
    pub op: Option<u64>,
    /// Allocation stack, if the backend captured one. Readers fill it in from `stack_id`.
    pub stack: Option<String>,
    /// The [`Event::StackDef`] naming the allocation stack, for producers that intern stacks
    /// (the preload shim). [`crate::trace::TraceReader`] resolves it into `stack`.
    pub stack_id: Option<u64>,
}

/// A buffer deallocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferFree {
    /// The id given at allocation.
    pub id: u64,
    /// Index of the op during which it was freed, if any.
    pub op: Option<u64>,
    /// Deallocation stack, if captured. Readers fill it in from `stack_id`.
    pub stack: Option<String>,
    /// The [`Event::StackDef`] naming the deallocation stack (see [`BufferAlloc::stack_id`]).
    pub stack_id: Option<u64>,
}

/// A circular buffer placed in L1 by a program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CbAlloc {
    /// Unique id (shares the id space of buffers).
    pub id: u64,
    /// The chip, or `None` for every chip of the mesh.
    pub device: DeviceSel,
    /// Cores the circular buffer lives on.
    pub cores: Vec<CoreRange>,
    /// L1 address.
    pub address: u64,
    /// Bytes per core.
    pub size: u64,
    /// Whether it aliases an existing L1 buffer (a "globally allocated" CB) rather than
    /// occupying the program's CB region.
    pub globally_allocated: bool,
    /// Name (`cb_in0`), may be empty.
    pub name: String,
    /// Index of the op whose program owns it.
    pub op: Option<u64>,
}

/// How an op relates to a buffer it declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Declared {
    /// The op reads it.
    Input,
    /// The op writes it.
    Output,
    /// The op uses it as scratch (reads and writes).
    Scratch,
}

impl Declared {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Declared::Input => "input",
            Declared::Output => "output",
            Declared::Scratch => "scratch",
        }
    }
}

/// The start of an op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpBegin {
    /// Sequence index, unique and increasing within the trace.
    pub index: u64,
    /// Op name as ttnn spells it (`ttnn.experimental.all_gather_async`).
    pub name: String,
    /// Chips the op runs on (empty: every chip).
    pub devices: Vec<u32>,
    /// Arguments, as text.
    pub args: String,
    /// Buffers the op reads.
    pub inputs: Vec<u64>,
    /// Buffers the op writes that exist before it starts (outputs it allocates are declared by
    /// being allocated during the op).
    pub outputs: Vec<u64>,
    /// Scratch buffers it uses that exist before it starts (e.g. cached CCL intermediates).
    pub scratch: Vec<u64>,
    /// The enclosing op, for nested ops (graph capture's function_start nesting).
    pub parent: Option<u64>,
}

/// A write a backend observed (the simulated mesh sees every write; real hardware sees none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    /// The chip written.
    pub device: u32,
    /// Memory space.
    pub space: Space,
    /// DRAM bank or core written.
    pub unit: Unit,
    /// Bank-local start address.
    pub address: u64,
    /// Bytes written.
    pub len: u64,
    /// The op that wrote, or `None` for a host write.
    pub op: Option<u64>,
}

/// A per-page digest (the first 16 bytes of a blake3 hash).
pub type Digest = [u8; 16];

/// Per-page digests of a guarded buffer on one chip, taken after an op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardDigest {
    /// The guarded buffer.
    pub buffer: u64,
    /// The chip whose copy was hashed.
    pub device: u32,
    /// The op after which the digest was taken (`None`: at registration, before any op).
    pub after_op: Option<u64>,
    /// One digest per host page; empty when the backend could not read the buffer.
    pub pages: Vec<Digest>,
    /// Whether the backend could read the bytes at all (mock chips cannot). An unreadable
    /// digest is never treated as a match.
    pub readable: bool,
}

/// The contents of one buffer an op wrote, on one chip, when the op ended: one digest per host
/// page. Two runs of the same workload that differ in these differ in what the op left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputDigest {
    /// The op.
    pub op: u64,
    /// The buffer it wrote (an output it allocated, or an existing buffer it declared it writes).
    pub buffer: u64,
    /// The chip.
    pub device: u32,
    /// One digest per host page.
    pub pages: Vec<Digest>,
}

/// Before and after digests of watched free memory (a canary) on one unit of one chip, across
/// one op: consecutive pages of `page_size` bytes from `address`. Producers may send only the
/// pages whose digests differ; the analyzer compares `before` and `after` itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryDigest {
    /// The chip.
    pub device: u32,
    /// Memory space.
    pub space: Space,
    /// DRAM bank or core.
    pub unit: Unit,
    /// Bank-local address of the first page.
    pub address: u64,
    /// Bytes per page (the last page may be shorter when the watched region ends).
    pub page_size: u64,
    /// Bytes watched from `address` (at most `pages * page_size`).
    pub len: u64,
    /// The op the digests were taken across (`None`: after the last op, at the end of the run).
    pub after_op: Option<u64>,
    /// Why the bytes are watched: `past-end`, `quarantine` or `free`.
    pub reason: String,
    /// The buffer the watch is tied to (the output whose end it follows, the freed buffer), if any.
    pub buffer: Option<u64>,
    /// One digest per page, before the op.
    pub before: Vec<Digest>,
    /// One digest per page, after the op.
    pub after: Vec<Digest>,
}

/// A program dispatched to the device, as tt-metal reports it to its graph processors
/// (`IGraphProcessor::track_program`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramRun {
    /// tt-metal's runtime id of the program (`Program::get_runtime_id`), 0 when unknown.
    pub id: u64,
    /// The chip, or `None` for every chip of the mesh.
    pub device: DeviceSel,
    /// The op that dispatched it.
    pub op: Option<u64>,
}

/// What happened to a mesh trace (tt-metal's recorded command stream, replayed without host calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceAction {
    /// Capture started: ops from here on are recorded into the trace.
    BeginCapture,
    /// Capture ended.
    EndCapture,
    /// The recorded ops ran again on the device; the host saw none of them.
    Replay,
    /// The trace was released.
    Release,
}

impl TraceAction {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceAction::BeginCapture => "begin_capture",
            TraceAction::EndCapture => "end_capture",
            TraceAction::Replay => "replay",
            TraceAction::Release => "release",
        }
    }
}

/// A mesh-trace capture or replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshTrace {
    /// tt-metal's trace id (`MeshTraceId`).
    pub trace: u32,
    /// What happened.
    pub action: TraceAction,
    /// The op open at the time (for a replay, the op standing for the whole replay).
    pub op: Option<u64>,
}

/// Which runtime produced the trace and how much of it the producer could check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    /// The tt-metal build, e.g. `ttnn 0.81.1 (…/libtt_metal.so)`.
    pub build: String,
    /// Where ops come from, e.g. `tt-metal graph processor (slots 8/9/10)`.
    pub ops_from: String,
    /// Why this build cannot be checked, when it cannot: the run is then never clean.
    pub unsupported: Option<String>,
    /// Facts about the build worth keeping (symbols found or missing, slot layout).
    pub details: Vec<String>,
}

/// One record of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// First record: geometry and mesh.
    CaptureStart(CaptureStart),
    /// A buffer was allocated.
    BufferAlloc(BufferAlloc),
    /// A buffer was freed.
    BufferFree(BufferFree),
    /// A circular buffer was placed.
    CbAlloc(CbAlloc),
    /// All circular buffers of the current program on a chip were released.
    CbDeallocAll {
        /// The chip, or `None` for every chip.
        device: DeviceSel,
    },
    /// An op started.
    OpBegin(OpBegin),
    /// An op finished.
    OpEnd {
        /// The index given at [`Event::OpBegin`].
        index: u64,
    },
    /// An op declares more buffers after it started (persistent scratch from an op cache).
    OpDeclare {
        /// The op.
        index: u64,
        /// The buffers.
        buffers: Vec<u64>,
        /// How it uses them.
        relation: Declared,
    },
    /// A device write.
    Write(Write),
    /// A buffer becomes guarded: its digests are checked across ops that do not write it.
    GuardRegister {
        /// The buffer.
        buffer: u64,
        /// Why it is guarded (the glob or role that selected it).
        reason: String,
    },
    /// A buffer stops being guarded.
    GuardUnregister {
        /// The buffer.
        buffer: u64,
    },
    /// Digests of a guarded buffer.
    GuardDigest(GuardDigest),
    /// A free-form note (phase markers, module boundaries, backend warnings).
    Mark {
        /// The text.
        text: String,
    },
    /// The last record of a capture that ended in an orderly way.
    CaptureEnd {
        /// Events the producer had to drop (e.g. a full buffer); 0 normally.
        dropped: u64,
    },
    /// Names a stack once; later allocation and free records refer to it by `id` instead of
    /// carrying the text. Appended last so that the other variants keep their postcard indices.
    StackDef {
        /// Unique within the trace: an id is never given to a second text.
        id: u64,
        /// The frames, innermost first, one per line (what `stack` holds once resolved).
        frames: String,
    },
    /// Digests of free memory watched across an op (a canary); appended last so older traces
    /// keep their variant numbers.
    CanaryDigest(CanaryDigest),
    /// A program dispatched to the device (appended last, as every later variant).
    Program(ProgramRun),
    /// A mesh-trace capture, replay or release.
    MeshTrace(MeshTrace),
    /// The runtime that produced the trace and whether it could be checked.
    Runtime(Runtime),
    /// The digests of one output of an op on one chip, taken when the op ended (recorded on
    /// request, to compare two runs of the same workload).
    OutputDigest(OutputDigest),
}

impl Event {
    /// The snake_case type name used as the `event` field of `ttsan trace dump`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::CaptureStart(_) => "capture_start",
            Event::BufferAlloc(_) => "buffer_alloc",
            Event::BufferFree(_) => "buffer_free",
            Event::CbAlloc(_) => "cb_alloc",
            Event::CbDeallocAll { .. } => "cb_dealloc_all",
            Event::OpBegin(_) => "op_begin",
            Event::OpEnd { .. } => "op_end",
            Event::OpDeclare { .. } => "op_declare",
            Event::Write(_) => "write",
            Event::GuardRegister { .. } => "guard_register",
            Event::GuardUnregister { .. } => "guard_unregister",
            Event::GuardDigest(_) => "guard_digest",
            Event::Mark { .. } => "mark",
            Event::CaptureEnd { .. } => "capture_end",
            Event::StackDef { .. } => "stack_def",
            Event::CanaryDigest(_) => "canary_digest",
            Event::Program(_) => "program",
            Event::MeshTrace(_) => "mesh_trace",
            Event::Runtime(_) => "runtime",
            Event::OutputDigest(_) => "output_digest",
        }
    }

    /// The event as one flat JSON object with an `event` field naming its type.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        // Externally tagged: {"buffer_alloc": {...}}; flatten it so consumers filter on one field.
        let inner = match &mut value {
            serde_json::Value::Object(map) => map.values_mut().next().map(std::mem::take),
            _ => None,
        };
        let mut out = serde_json::Map::new();
        out.insert("event".into(), self.kind().into());
        if let Some(serde_json::Value::Object(fields)) = inner {
            for (k, v) in fields {
                out.insert(k, v);
            }
        }
        if let Event::BufferAlloc(b) = self {
            out.insert("layout".into(), b.layout.name().into());
            if let Layout::Sharded(spec) = &b.layout {
                out.insert("shard".into(), serde_json::to_value(spec).unwrap_or_default());
            }
        }
        serde_json::Value::Object(out)
    }

    /// The op index this event belongs to, if any.
    pub fn op(&self) -> Option<u64> {
        match self {
            Event::BufferAlloc(b) => b.op,
            Event::BufferFree(b) => b.op,
            Event::CbAlloc(c) => c.op,
            Event::OpBegin(o) => Some(o.index),
            Event::OpEnd { index } | Event::OpDeclare { index, .. } => Some(*index),
            Event::Write(w) => w.op,
            Event::GuardDigest(g) => g.after_op,
            Event::CanaryDigest(c) => c.after_op,
            Event::Program(p) => p.op,
            Event::MeshTrace(t) => t.op,
            Event::OutputDigest(o) => Some(o.op),
            _ => None,
        }
    }
}
