//! The JSON header of the data block.

use super::columns::ColumnMeta;
use super::findings::FindingView;
use crate::map::{MapData, StringTable};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use ttsan_events::{CaptureStart, Geometry, Role, Space};
use ttsan_sanitizer::Analysis;
use ttsan_sanitizer::Summary;

/// Everything the page needs besides the columns.
#[derive(Debug, Serialize)]
pub struct Meta<'a> {
    /// Block layout version.
    pub version: u32,
    /// Producer of the trace.
    pub producer: &'a str,
    /// Command or scenario captured.
    pub command: &'a str,
    /// Architecture.
    pub arch: String,
    /// Mesh rows.
    pub mesh_rows: u32,
    /// Mesh columns.
    pub mesh_cols: u32,
    /// Device id of each chip slot.
    pub devices: &'a [u32],
    /// Chip geometry.
    pub geometry: &'a Geometry,
    /// Role names, indexed by the role bits of `allocs.flags`.
    pub roles: Vec<&'static str>,
    /// Space names, indexed by the space bits of `allocs.flags`.
    pub spaces: Vec<&'static str>,
    /// The end of the map's time axis.
    pub t_end: u32,
    /// Allocation rows.
    pub allocs: usize,
    /// Op rows.
    pub ops: usize,
    /// The string table.
    #[serde(serialize_with = "strings")]
    pub strings: &'a StringTable,
    /// Layer numbers, indexed by `allocs.layer`.
    pub layers: &'a [u32],
    /// Unit sets, indexed by `allocs.units` (set 0 is "every unit").
    pub unit_sets: &'a [Vec<u32>],
    /// Findings, worst first.
    pub findings: Vec<FindingView>,
    /// Peak usage per chip and space.
    pub peaks: Vec<PeakView>,
    /// Peak bytes per space name over the whole mesh (circular buffers included).
    pub mesh_peaks: BTreeMap<&'static str, u64>,
    /// Peak L1 bytes per core slot (the order of `geometry.l1_bank_cores`), the max over chips.
    pub core_peaks: &'a [u64],
    /// Counts from the analysis.
    pub summary: &'a Summary,
    /// Analysis errors.
    pub errors: &'a [String],
    /// Analysis warnings.
    pub warnings: &'a [String],
    /// Where each column is in the block.
    pub columns: BTreeMap<String, ColumnMeta>,
}

/// The peak usage of one space on one chip.
#[derive(Debug, Clone, Serialize)]
pub struct PeakView {
    /// Chip slot.
    pub chip: usize,
    /// Space name.
    pub space: &'static str,
    /// Bytes in use at the peak.
    pub bytes: u64,
    /// Bytes the space has on one chip.
    pub capacity: u64,
    /// Map time of the peak.
    pub t: u32,
    /// Op row running at the peak, or -1.
    pub op: i32,
}

impl<'a> Meta<'a> {
    /// Collects the header.
    pub fn new(
        map: &'a MapData,
        capture: &'a CaptureStart,
        analysis: &'a Analysis,
        columns: BTreeMap<String, ColumnMeta>,
        t_end: u32,
    ) -> Self {
        let geometry = &capture.geometry;
        let peaks = map
            .usage()
            .peaks()
            .iter()
            .enumerate()
            .flat_map(|(chip, per_space)| {
                Space::ALL.iter().zip(per_space).map(move |(&space, p)| PeakView {
                    chip,
                    space: space.as_str(),
                    bytes: p.bytes,
                    capacity: capacity(geometry, space),
                    t: p.t,
                    op: p.op,
                })
            })
            .collect();
        Meta {
            version: super::VERSION,
            producer: &capture.producer,
            command: &capture.command,
            arch: capture.geometry.arch.to_string(),
            mesh_rows: capture.mesh.rows,
            mesh_cols: capture.mesh.cols,
            devices: &capture.mesh.device_ids,
            geometry,
            roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
            spaces: Space::ALL.iter().map(|s| s.as_str()).collect(),
            t_end,
            allocs: map.allocs().len(),
            ops: map.ops().len(),
            strings: map.strings(),
            layers: map.layers(),
            unit_sets: map.unit_sets(),
            findings: analysis.findings.iter().map(|f| FindingView::new(f, map)).collect(),
            peaks,
            mesh_peaks: Space::ALL.iter().map(|s| s.as_str()).zip(map.usage().mesh_peaks()).collect(),
            core_peaks: map.usage().core_peaks(),
            summary: &analysis.summary,
            errors: &analysis.errors,
            warnings: &analysis.warnings,
            columns,
        }
    }
}

/// Bytes of `space` on one chip.
pub fn capacity(geometry: &Geometry, space: Space) -> u64 {
    let units = u64::from(geometry.banks(space));
    match space {
        Space::Dram => {
            geometry.dram_bank_size.saturating_sub(geometry.dram_unreserved_base + geometry.trace_region_size)
        }
        Space::Trace => geometry.trace_region_size,
        Space::L1 => geometry.l1_size.saturating_sub(geometry.l1_unreserved_base + geometry.l1_small_size),
        Space::L1Small => geometry.l1_small_size,
    }
    .saturating_mul(units)
}

fn strings<S: Serializer>(table: &&StringTable, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(table.as_slice().iter().map(|x| &**x))
}
