//! Findings: what the detectors report.

use crate::buffer::BufferInfo;
use serde::Serialize;
use std::fmt;
use ttsan_events::{Role, Space, Unit};

/// The kind of problem found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// Bytes of a declared buffer were written, by a write that ran past its end or start.
    OobWrite,
    /// A write into freed memory (possibly reallocated to another buffer since).
    UseAfterFree,
    /// A write into a live buffer the writing op does not declare.
    ForeignWrite,
    /// A write where nothing is allocated.
    WildWrite,
    /// A guarded buffer's contents changed across an op that does not write it.
    GuardCorruption,
    /// Two live allocations share bytes.
    Overlap,
    /// A program's circular buffers overlap an L1 buffer on a core.
    CbClash,
    /// A buffer was freed twice.
    DoubleFree,
    /// A free of a buffer that was never allocated.
    UnknownFree,
    /// A buffer still alive at the end of the trace (opt-in).
    Leak,
}

impl FindingKind {
    /// Every kind, most severe first (the order reports sort by).
    pub const ALL: [FindingKind; 10] = [
        FindingKind::GuardCorruption,
        FindingKind::UseAfterFree,
        FindingKind::OobWrite,
        FindingKind::ForeignWrite,
        FindingKind::WildWrite,
        FindingKind::Overlap,
        FindingKind::CbClash,
        FindingKind::DoubleFree,
        FindingKind::UnknownFree,
        FindingKind::Leak,
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::OobWrite => "oob-write",
            FindingKind::UseAfterFree => "use-after-free",
            FindingKind::ForeignWrite => "foreign-write",
            FindingKind::WildWrite => "wild-write",
            FindingKind::GuardCorruption => "guard-corruption",
            FindingKind::Overlap => "overlap",
            FindingKind::CbClash => "cb-clash",
            FindingKind::DoubleFree => "double-free",
            FindingKind::UnknownFree => "unknown-free",
            FindingKind::Leak => "leak",
        }
    }

    /// Parses [`FindingKind::as_str`].
    pub fn parse(s: &str) -> Option<FindingKind> {
        FindingKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Severity rank: lower is worse.
    pub fn severity(self) -> usize {
        FindingKind::ALL.iter().position(|&k| k == self).unwrap_or(usize::MAX)
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The op held responsible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Culprit {
    /// Op name.
    pub op: String,
    /// Op sequence index.
    pub op_index: u64,
    /// Which call of this op name it was (1-based).
    pub call: u64,
    /// The chips the op ran on when it declares them (a peer chip's late fabric writes are a
    /// record on the sending chip); empty: every chip.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chips: Vec<u32>,
}

impl Culprit {
    /// The culprit `op`.
    pub fn of(op: &crate::ops::OpInfo) -> Self {
        Culprit { op: op.name.to_string(), op_index: op.index, call: op.call, chips: op.devices.clone() }
    }
}

/// A buffer as a finding describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BufferRef {
    /// Buffer id.
    pub id: u64,
    /// Name (`buffer #id` when unnamed).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Space.
    pub space: Space,
    /// Chip, or `None` for a mesh buffer.
    pub device: Option<u32>,
    /// Bank-local address.
    pub address: u64,
    /// Total size.
    pub size: u64,
    /// Bytes it reserves per bank or core.
    pub size_per_unit: u64,
    /// Layout name.
    pub layout: &'static str,
    /// Allocating op, `#index name`.
    pub allocated_by: Option<String>,
    /// Allocation stack.
    pub alloc_stack: Option<String>,
    /// Freeing op, `#index name`, when freed.
    pub freed_by: Option<String>,
    /// Deallocation stack.
    pub free_stack: Option<String>,
    /// Whether it was freed at the time of the finding.
    pub freed: bool,
}

impl BufferRef {
    /// Describes `info`; `op_label` turns an op index into `#index name`.
    pub fn new(info: &BufferInfo, size_per_unit: u64, op_label: impl Fn(u64) -> String) -> Self {
        BufferRef {
            id: info.id,
            name: info.display_name(),
            role: info.role,
            space: info.space,
            device: info.device,
            address: info.address,
            size: info.size,
            size_per_unit,
            layout: info.layout_name(),
            allocated_by: info.alloc_op.map(&op_label),
            alloc_stack: info.alloc_stack.as_deref().map(str::to_string),
            freed_by: info.free_op.map(&op_label),
            free_stack: info.free_stack.as_deref().map(str::to_string),
            freed: info.freed,
        }
    }
}

/// How a buffer of the culprit relates to the damaged bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relation {
    /// The buffer itself overlaps the damaged bytes.
    Overlap,
    /// The damaged bytes are where the buffer used to be before it was freed.
    StaleAddress,
    /// The damaged bytes start this many bytes past the buffer's end.
    PastEnd,
    /// The damaged bytes end this many bytes before the buffer's start.
    BeforeStart,
    /// The buffer sits at the same addresses on another chip.
    PeerAddress,
    /// The culprit declares the buffer; no closer relation was found.
    Declared,
}

impl Relation {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Overlap => "overlap",
            Relation::StaleAddress => "stale-address",
            Relation::PastEnd => "past-end",
            Relation::BeforeStart => "before-start",
            Relation::PeerAddress => "peer-address",
            Relation::Declared => "declared",
        }
    }
}

/// A buffer of the culprit related to the finding, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Related {
    /// The buffer.
    #[serde(flatten)]
    pub buffer: BufferRef,
    /// How it relates.
    pub relation: Relation,
    /// Distance in bytes for past-end / before-start (0 otherwise).
    pub distance: u64,
    /// The chip it was found on, for peer-address.
    pub peer_device: Option<u32>,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Kind.
    pub kind: FindingKind,
    /// Chip (`None` for mesh-wide findings such as a double free of a mesh buffer).
    pub device: Option<u32>,
    /// Space.
    pub space: Space,
    /// DRAM bank, when the place is a bank.
    pub bank: Option<u32>,
    /// Core `[x, y]`, when the place is a core.
    pub core: Option<[u16; 2]>,
    /// Bank-local address of the first bad byte.
    pub address: u64,
    /// Bad bytes.
    pub size: u64,
    /// The op held responsible.
    pub culprit: Option<Culprit>,
    /// The buffer whose bytes were hit (`None`: no buffer was there).
    pub victim: Option<BufferRef>,
    /// The culprit's buffer most likely involved.
    pub related: Option<Related>,
    /// For guard corruption: the pages whose digests changed.
    pub pages: Vec<u64>,
    /// One sentence: what most likely happened.
    pub mechanism: String,
    /// How many times this culprit op name, victim and kind were seen.
    pub count: u64,
    /// Chips it was seen on.
    pub devices: Vec<u32>,
    /// Whether a write finding and a guard digest agree (both detection modes on).
    pub confirmed_by_digest: bool,
}

impl Finding {
    /// A finding of `kind` at a place, to be filled in by the detector.
    pub fn at(
        kind: FindingKind,
        device: Option<u32>,
        space: Space,
        unit: Option<Unit>,
        address: u64,
        size: u64,
    ) -> Self {
        let (bank, core) = match unit {
            Some(Unit::Bank(b)) => (Some(b), None),
            Some(Unit::Core(c)) => (None, Some([c.x, c.y])),
            None => (None, None),
        };
        Finding {
            kind,
            device,
            space,
            bank,
            core,
            address,
            size,
            culprit: None,
            victim: None,
            related: None,
            pages: Vec::new(),
            mechanism: String::new(),
            count: 1,
            devices: device.into_iter().collect(),
            confirmed_by_digest: false,
        }
    }

    /// The place as text: `device 3 dram bank 5` or `device 0 l1 core (1,2)`.
    pub fn place(&self) -> String {
        let dev = match self.device {
            Some(d) => format!("device {d}"),
            None => "every device".to_string(),
        };
        match (self.bank, self.core) {
            (Some(b), _) => format!("{dev} {} bank {b}", self.space),
            (_, Some([x, y])) => format!("{dev} {} core ({x},{y})", self.space),
            _ => format!("{dev} {}", self.space),
        }
    }

    /// The key under which repeats are merged: kind, culprit op name, victim name, related name.
    pub fn dedup_key(&self) -> (FindingKind, Option<String>, Option<String>, Option<String>) {
        (
            self.kind,
            self.culprit.as_ref().map(|c| c.op.clone()),
            self.victim.as_ref().map(|v| v.name.clone()),
            self.related.as_ref().map(|r| r.buffer.name.clone()),
        )
    }
}
