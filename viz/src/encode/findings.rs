//! Findings as the page draws them: places on the map rather than prose.

use crate::map::MapData;
use serde::Serialize;
use ttsan_events::{CoreCoord, Unit};
use ttsan_sanitizer::Finding;

/// Page numbers of a guard corruption listed at most (the count is in `size`).
const MAX_PAGES: usize = 32;

/// One finding, pointing at map rows and op rows.
#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    /// Kind (`use-after-free`, ...).
    pub kind: &'static str,
    /// Chip slot the finding is on (`None`: every chip).
    pub chip: Option<usize>,
    /// Chip slots it was seen on.
    pub chips: Vec<usize>,
    /// Space name.
    pub space: &'static str,
    /// Unit key of the bank or core, when the finding names one.
    pub unit: Option<u32>,
    /// `device 3 dram bank 5`.
    pub place: String,
    /// First bad byte (bank-local).
    pub address: u64,
    /// Bad bytes.
    pub size: u64,
    /// Culprit op row, or -1.
    pub op: i32,
    /// `#index name` of the culprit.
    pub culprit: String,
    /// Victim allocation row, or -1.
    pub victim: i64,
    /// Related allocation row, or -1.
    pub related: i64,
    /// How the related buffer relates (`stale-address`, ...).
    pub relation: Option<&'static str>,
    /// Distance for past-end / before-start.
    pub distance: u64,
    /// Victim name.
    pub victim_name: Option<String>,
    /// Related name.
    pub related_name: Option<String>,
    /// What most likely happened.
    pub mechanism: String,
    /// Occurrences merged into this finding.
    pub count: u64,
    /// Changed pages of a guard corruption (first few).
    pub pages: Vec<u64>,
    /// Whether a write and a guard digest agree.
    pub confirmed: bool,
}

impl FindingView {
    /// Places `f` on `map`.
    pub fn new(f: &Finding, map: &MapData) -> Self {
        let unit = match (f.bank, f.core) {
            (Some(b), _) => Some(Unit::Bank(b).key()),
            (_, Some([x, y])) => Some(Unit::Core(CoreCoord::new(x, y)).key()),
            _ => None,
        };
        let row = |id: u64| map.row_of(id).map_or(-1, i64::from);
        FindingView {
            kind: f.kind.as_str(),
            chip: f.device.and_then(|d| map.chip_slot(d)),
            chips: f.devices.iter().filter_map(|&d| map.chip_slot(d)).collect(),
            space: f.space.as_str(),
            unit,
            place: f.place(),
            address: f.address,
            size: f.size,
            op: f.culprit.as_ref().and_then(|c| map.op_row(c.op_index)).unwrap_or(-1),
            culprit: f.culprit.as_ref().map(|c| format!("#{} {}", c.op_index, c.op)).unwrap_or_default(),
            victim: f.victim.as_ref().map_or(-1, |v| row(v.id)),
            related: f.related.as_ref().map_or(-1, |r| row(r.buffer.id)),
            relation: f.related.as_ref().map(|r| r.relation.as_str()),
            distance: f.related.as_ref().map_or(0, |r| r.distance),
            victim_name: f.victim.as_ref().map(|v| v.name.clone()),
            related_name: f.related.as_ref().map(|r| r.buffer.name.clone()),
            mechanism: f.mechanism.clone(),
            count: f.count,
            pages: f.pages.iter().copied().take(MAX_PAGES).collect(),
            confirmed: f.confirmed_by_digest,
        }
    }
}
