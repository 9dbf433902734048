//! Property test: the registry against a naive byte map, over random alloc / free / write
//! sequences on interleaved and sharded buffers, mesh-wide and per-chip.

use proptest::prelude::*;
use std::collections::{BTreeSet, HashMap};
use ttsan_events::{
    Arch, BufferAlloc, BufferFree, CaptureStart, CoreCoord, Event, Geometry, Layout, MeshDesc, Role, ShardSpec, Space,
    Unit, Write,
};
use ttsan_sanitizer::BufferInfo;
use ttsan_sanitizer::Registry;
use ttsan_sanitizer::{AnalysisOptions, Analyzer, FindingKind};

const QUARANTINE: usize = 3;

fn geometry() -> Geometry {
    let cores = vec![CoreCoord::new(0, 0), CoreCoord::new(1, 0), CoreCoord::new(0, 1), CoreCoord::new(1, 1)];
    Geometry {
        arch: Arch::WormholeB0,
        dram_banks: 3,
        dram_bank_size: 4096,
        dram_alignment: 32,
        dram_unreserved_base: 0,
        trace_region_size: 0,
        l1_size: 4096,
        l1_alignment: 16,
        l1_allocator_alignment: 32,
        l1_unreserved_base: 0,
        l1_small_size: 0,
        worker_grid: CoreCoord::new(2, 2),
        l1_bank_cores: cores,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Alloc { device: Option<u32>, space: Space, address: u64, pages: u64, page: u64, shard_units: Option<Vec<usize>> },
    Free { pick: usize },
    Write { device: u32, space: Space, unit: usize, address: u64, len: u64 },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let space = prop_oneof![Just(Space::Dram), Just(Space::L1)];
    let device = prop_oneof![Just(None), Just(Some(0u32)), Just(Some(1u32))];
    let alloc = (
        device,
        space.clone(),
        0u64..48,
        1u64..7,
        prop_oneof![Just(16u64), Just(24), Just(32), Just(64)],
        prop::option::of(prop::collection::vec(0usize..4, 1..4)),
    )
        .prop_map(|(device, space, slot, pages, page, shard)| {
            // Sharding over DRAM banks is exercised too; units are filtered per space below.
            Op::Alloc { device, space, address: slot * 16, pages, page, shard_units: shard }
        });
    let write = (0u32..2, space, 0usize..4, 0u64..900, 1u64..80)
        .prop_map(|(device, space, unit, address, len)| Op::Write { device, space, unit, address, len });
    prop_oneof![3 => alloc, 2 => (0usize..64).prop_map(|pick| Op::Free { pick }), 3 => write]
}

/// Every byte an allocation owns: (chip, space, unit, address).
type Bytes = Vec<(u32, Space, Unit, u64)>;

/// The naive model: for every byte of every unit of every chip, the live owners; and the
/// quarantine as a list of (id, bytes) in free order.
#[derive(Default)]
struct Model {
    live: HashMap<u64, Bytes>,
    order: Vec<u64>,
    quarantine: Vec<(u64, Bytes)>,
}

fn units(g: &Geometry, space: Space) -> Vec<Unit> {
    g.units(space)
}

fn bytes_of(g: &Geometry, devices: &[u32], a: &BufferAlloc) -> Bytes {
    let chips: Vec<u32> = match a.device {
        None => devices.to_vec(),
        Some(d) => vec![d],
    };
    let align = if a.space == Space::Dram { g.dram_alignment } else { g.l1_alignment };
    let stride = a.page_size.div_ceil(align) * align;
    let pages = a.size.div_ceil(a.page_size);
    let mut per_unit: Vec<(Unit, u64)> = Vec::new();
    match &a.layout {
        Layout::Interleaved => {
            let us = units(g, a.space);
            // Every bank reserves as many rows as the fullest bank needs.
            let mut rows = vec![0u64; us.len()];
            for i in 0..pages {
                let b = (i as usize) % us.len();
                rows[b] = rows[b].max(i / us.len() as u64 + 1);
            }
            let max_rows = rows.into_iter().max().unwrap_or(0);
            per_unit.extend(us.into_iter().map(|u| (u, max_rows * stride)));
        }
        Layout::Sharded(spec) => {
            per_unit.extend(spec.units.iter().map(|u| (*u, spec.shard_pages() * stride)));
        }
    }
    let mut out = Vec::new();
    for &chip in &chips {
        for (u, len) in &per_unit {
            for x in a.address..a.address + len {
                out.push((chip, a.space, *u, x));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    #[test]
    fn registry_matches_byte_map(ops in prop::collection::vec(op_strategy(), 1..40)) {
        let g = geometry();
        let devices = vec![0u32, 1];
        let mut reg = Registry::new(g.clone(), devices.clone(), QUARANTINE);
        let mut model = Model::default();
        let mut analyzer = Analyzer::new(AnalysisOptions { quarantine: QUARANTINE, ..AnalysisOptions::default() });
        analyzer.feed(&Event::CaptureStart(CaptureStart {
            producer: "proptest".into(), geometry: g.clone(), mesh: MeshDesc::grid(1, 2), command: String::new(),
        }));
        let mut next_id = 1u64;
        let mut expected_kinds: Vec<FindingKind> = Vec::new();
        for op in ops {
            match op {
                Op::Alloc { device, space, address, pages, page, shard_units } => {
                    let layout = match shard_units {
                        Some(idx) => {
                            let us = units(&g, space);
                            let mut chosen: Vec<Unit> = idx.into_iter().map(|i| us[i % us.len()]).collect();
                            chosen.sort();
                            chosen.dedup();
                            let n = chosen.len() as u32;
                            Layout::Sharded(ShardSpec::height(chosen, (pages as u32).max(n), (pages as u32).max(n).div_ceil(n)))
                        }
                        None => Layout::Interleaved,
                    };
                    let a = BufferAlloc {
                        id: next_id, device, space, address, size: pages * page, page_size: page, layout,
                        name: format!("b{next_id}"), role: Role::Activation, op: None, stack: None, stack_id: None,
                    };
                    next_id += 1;
                    reg.insert(BufferInfo::from_alloc(&a));
                    model.live.insert(a.id, bytes_of(&g, &devices, &a));
                    model.order.push(a.id);
                    analyzer.feed(&Event::BufferAlloc(a));
                }
                Op::Free { pick } => {
                    if model.order.is_empty() { continue; }
                    let id = model.order.remove(pick % model.order.len());
                    let bytes = model.live.remove(&id).unwrap();
                    reg.free(id, None, None);
                    model.quarantine.push((id, bytes));
                    if model.quarantine.len() > QUARANTINE { model.quarantine.remove(0); }
                    analyzer.feed(&Event::BufferFree(BufferFree { id, op: None, stack: None, stack_id: None }));
                }
                Op::Write { device, space, unit, address, len } => {
                    let us = units(&g, space);
                    let u = us[unit % us.len()];
                    let range = address..address + len;
                    // Per byte: live owners and quarantined owners, from both sides.
                    let mut reg_live: BTreeSet<(u64, u64)> = BTreeSet::new();
                    for h in reg.live_at(device, space, u, range.clone()) {
                        for x in h.range { reg_live.insert((x, h.id)); }
                    }
                    let mut reg_freed: BTreeSet<(u64, u64)> = BTreeSet::new();
                    for h in reg.freed_at(device, space, u, range.clone()) {
                        for x in h.range { reg_freed.insert((x, h.id)); }
                    }
                    let mut model_live = BTreeSet::new();
                    for (id, bytes) in &model.live {
                        for &(c, s, uu, x) in bytes {
                            if c == device && s == space && uu == u && range.contains(&x) { model_live.insert((x, *id)); }
                        }
                    }
                    let mut model_freed = BTreeSet::new();
                    for (id, bytes) in &model.quarantine {
                        for &(c, s, uu, x) in bytes {
                            if c == device && s == space && uu == u && range.contains(&x) { model_freed.insert((x, *id)); }
                        }
                    }
                    prop_assert_eq!(&reg_live, &model_live);
                    prop_assert_eq!(&reg_freed, &model_freed);
                    // A host write: bad bytes are those no live buffer owns.
                    let owned: BTreeSet<u64> = model_live.iter().map(|(x, _)| *x).collect();
                    let bad: Vec<u64> = range.clone().filter(|x| !owned.contains(x)).collect();
                    if !bad.is_empty() {
                        // A write that touches an owned buffer and runs past it is an overrun of that buffer.
                        let freed_bad = model_freed.iter().any(|(x, _)| bad.contains(x));
                        expected_kinds.push(if !owned.is_empty() {
                            FindingKind::OobWrite
                        } else if freed_bad {
                            FindingKind::UseAfterFree
                        } else {
                            FindingKind::WildWrite
                        });
                    }
                    analyzer.feed(&Event::Write(Write { device, space, unit: u, address, len, op: None }));
                }
            }
        }
        let analysis = analyzer.finish(None);
        let got: Vec<FindingKind> = analysis.findings.iter().filter(|f| matches!(f.kind, FindingKind::UseAfterFree | FindingKind::WildWrite | FindingKind::OobWrite)).flat_map(|f| std::iter::repeat_n(f.kind, f.count as usize)).collect();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        expected_kinds.sort();
        prop_assert_eq!(got_sorted, expected_kinds);
    }
}
