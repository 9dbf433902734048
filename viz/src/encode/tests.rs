//! Golden-ish tests of the data block: exact columns for a tiny hand-built trace.

use super::{encode, split};
use crate::map::{flags, MapData, ALL_CHIPS, NO_LAYER, NO_OP};
use ttsan_events::{
    Arch, BufferAlloc, BufferFree, CaptureStart, CbAlloc, CoreCoord, CoreRange, Event, Geometry, Layout, MeshDesc,
    OpBegin, Role, ShardSpec, Space, Unit,
};
use ttsan_sanitizer::{AnalysisOptions, Analyzer};

fn alloc(id: u64, device: Option<u32>, space: Space, address: u64, size: u64, layout: Layout, name: &str) -> Event {
    Event::BufferAlloc(BufferAlloc {
        id,
        device,
        space,
        address,
        size,
        page_size: 1024,
        layout,
        name: name.into(),
        role: Role::Activation,
        op: None,
        stack: Some("model.py:1 f".into()),
        stack_id: None,
    })
}

fn op(index: u64, name: &str) -> Event {
    Event::OpBegin(OpBegin {
        index,
        name: name.into(),
        devices: vec![],
        args: String::new(),
        inputs: vec![],
        outputs: vec![],
        scratch: vec![],
        parent: None,
    })
}

fn trace() -> Vec<Event> {
    let geometry = Geometry::mock(Arch::WormholeB0, 2).unwrap();
    let core = |x, y| Unit::Core(CoreCoord::new(x, y));
    vec![
        Event::CaptureStart(CaptureStart {
            producer: "test".into(),
            geometry,
            mesh: MeshDesc::grid(1, 2),
            command: "golden".into(),
        }),
        // t=1: a mesh DRAM buffer of 24 pages of 1 KiB: 2 pages per bank on 12 banks.
        alloc(10, None, Space::Dram, 0x10_0000, 24 * 1024, Layout::Interleaved, "layer3.attn.wq"),
        op(0, "ttnn.matmul"), // t=2
        // t=3: a buffer on device 1 only, sharded over two cores, allocated during op 0.
        alloc(
            11,
            Some(1),
            Space::L1,
            0x8_0000,
            4 * 1024,
            Layout::Sharded(ShardSpec::height(vec![core(1, 0), core(0, 0)], 4, 2)),
            "layer3.attn.wq",
        ),
        // t=4: a circular buffer on a 2x1 core range.
        Event::CbAlloc(CbAlloc {
            id: 12,
            device: None,
            cores: vec![CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(1, 0))],
            address: 0x2_0000,
            size: 4096,
            globally_allocated: false,
            name: "cb_in0".into(),
            op: Some(0),
        }),
        Event::BufferFree(BufferFree { id: 11, op: Some(0), stack: None, stack_id: None }), // t=5
        Event::CbDeallocAll { device: None },                                               // t=6
        Event::OpEnd { index: 0 },                                                          // t=7
        Event::CaptureEnd { dropped: 0 },
    ]
}

fn column<T, const N: usize>(
    meta: &serde_json::Value,
    cols: &[u8],
    name: &str,
    ty: &str,
    from: fn([u8; N]) -> T,
) -> Vec<T> {
    let c = &meta["columns"][name];
    assert_eq!(c["type"], ty, "{name}");
    let off = c["offset"].as_u64().unwrap() as usize;
    let len = c["length"].as_u64().unwrap() as usize;
    assert_eq!(off % 8, 0, "{name} is aligned");
    (0..len).map(|i| from(cols[off + i * N..off + (i + 1) * N].try_into().unwrap())).collect()
}

#[test]
fn columns_of_a_small_trace() {
    let mut map = MapData::new();
    let mut analyzer = Analyzer::new(AnalysisOptions::default());
    for e in trace() {
        map.feed(&e);
        analyzer.feed(&e);
    }
    let analysis = analyzer.finish(None);
    let block = encode(&map, &analysis).unwrap();
    let (meta, cols) = split(&block).unwrap();

    assert_eq!(meta["version"], 1);
    assert_eq!(meta["allocs"], 3);
    assert_eq!(meta["ops"], 1);
    assert_eq!(meta["t_end"], 8);
    assert_eq!(meta["devices"], serde_json::json!([0, 1]));
    // Names are stored once: both buffers named layer3.attn.wq share one entry.
    let strings: Vec<&str> = meta["strings"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(strings, vec!["", "layer3.attn.wq", "model.py:1 f", "ttnn.matmul", "cb_in0"]);
    assert_eq!(meta["layers"], serde_json::json!([3]));
    let core = |x: u32, y: u32| (x << 16) | y;
    assert_eq!(meta["unit_sets"], serde_json::json!([[], [core(0, 0), core(1, 0)]]));

    let f64s = |n| column(&meta, cols, n, "f64", f64::from_le_bytes);
    let u32s = |n| column(&meta, cols, n, "u32", u32::from_le_bytes);
    let i32s = |n| column(&meta, cols, n, "i32", i32::from_le_bytes);
    let u16s = |n| column(&meta, cols, n, "u16", u16::from_le_bytes);
    assert_eq!(f64s("allocs.id"), vec![10.0, 11.0, 12.0]);
    assert_eq!(u32s("allocs.t0"), vec![1, 3, 4]);
    assert_eq!(u32s("allocs.t1"), vec![8, 5, 6], "the live buffer runs to the end");
    assert_eq!(f64s("allocs.addr"), vec![0x10_0000 as f64, 0x8_0000 as f64, 0x2_0000 as f64]);
    assert_eq!(f64s("allocs.size"), vec![2048.0, 2048.0, 4096.0], "bytes per bank or core");
    assert_eq!(f64s("allocs.total"), vec![24576.0, 4096.0, 4096.0]);
    assert_eq!(u32s("allocs.name"), vec![1, 1, 4]);
    assert_eq!(u16s("allocs.chip"), vec![ALL_CHIPS, 1, ALL_CHIPS]);
    assert_eq!(u16s("allocs.layer"), vec![0, 0, NO_LAYER]);
    assert_eq!(u32s("allocs.units"), vec![0, 1, 1]);
    assert_eq!(i32s("allocs.aop"), vec![NO_OP, 0, 0]);
    assert_eq!(i32s("allocs.fop"), vec![NO_OP, 0, 0]);
    assert_eq!(u32s("allocs.astack"), vec![2, 2, 0]);
    let fl = u32s("allocs.flags");
    let space = |f: u32| (f >> flags::SPACE_SHIFT) & 3;
    let kind = |f: u32| (f >> flags::KIND_SHIFT) & 3;
    assert_eq!(fl.iter().map(|&f| f & flags::ROLE_MASK).collect::<Vec<_>>(), vec![1, 1, 3]);
    assert_eq!(fl.iter().map(|&f| space(f)).collect::<Vec<_>>(), vec![0, 1, 1]);
    assert_eq!(fl.iter().map(|&f| kind(f)).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(fl.iter().map(|&f| f & flags::LIVE_AT_END != 0).collect::<Vec<_>>(), vec![true, false, false]);
    assert_eq!(u32s("ops.t0"), vec![2]);
    assert_eq!(u32s("ops.t1"), vec![7]);
    assert_eq!(u32s("ops.name"), vec![3]);
    assert_eq!(i32s("ops.parent"), vec![NO_OP]);

    // Peaks: DRAM 2 KiB on each of 12 banks on both chips; L1 peak on device 1 is the shard
    // plus the circular buffer (2 KiB + 4 KiB on each of two cores).
    let peak = |chip: u64, space: &str| {
        meta["peaks"].as_array().unwrap().iter().find(|p| p["chip"] == chip && p["space"] == space).unwrap()["bytes"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(peak(0, "dram"), 24576);
    assert_eq!(peak(1, "dram"), 24576);
    assert_eq!(peak(1, "l1"), 12288);
    assert_eq!(peak(0, "l1"), 8192);
    assert_eq!(meta["mesh_peaks"]["dram"], 2 * 24576);
    assert_eq!(meta["mesh_peaks"]["l1"], 8192 + 12288);
}

#[test]
fn findings_point_at_rows_and_ops() {
    let mut events = ttsan_test_support::synth::scenario(false);
    let mut map = MapData::new();
    let mut analyzer = Analyzer::new(AnalysisOptions::default());
    for e in events.drain(..) {
        map.feed(&e);
        analyzer.feed(&e);
    }
    let analysis = analyzer.finish(None);
    let (meta, _) = split(&encode(&map, &analysis).unwrap()).unwrap();
    let findings = meta["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2);
    let strings = meta["strings"].as_array().unwrap();
    let name_of_row = |row: i64| {
        let ids = map.allocs();
        strings[ids.name[row as usize] as usize].as_str().unwrap().to_string()
    };
    let guard = &findings[0];
    assert_eq!(guard["kind"], "guard-corruption");
    assert_eq!(guard["chip"], 2);
    assert_eq!(guard["space"], "dram");
    assert_eq!(guard["unit"], 3, "bank 3 holds the changed page");
    assert_eq!(name_of_row(guard["victim"].as_i64().unwrap()), "layer1.attn.sinks");
    assert_eq!(map.ops().index[guard["op"].as_i64().unwrap() as usize], 9.0);
    let uaf = &findings[1];
    assert_eq!(uaf["kind"], "use-after-free");
    assert_eq!(uaf["chip"], 1);
    assert_eq!(uaf["relation"], "stale-address");
    assert_eq!(name_of_row(uaf["related"].as_i64().unwrap()), "ccl.all_gather.scratch");
    assert_eq!(name_of_row(uaf["victim"].as_i64().unwrap()), "layer0.mlp.act4");
    assert_eq!(map.ops().index[uaf["op"].as_i64().unwrap() as usize], 5.0);
}

#[test]
fn a_trace_without_capture_start_is_an_error() {
    let map = MapData::new();
    let analysis = Analyzer::new(AnalysisOptions::default()).finish(None);
    assert!(matches!(encode(&map, &analysis), Err(crate::VizError::NoCapture)));
}
