//! `ttsan import graph-capture`: real captures, hand-built edge cases, and (with the real
//! library) a capture of a replay whose addresses and lifetimes must match what replay printed.

mod support;

use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use support::{stderr, ttsan_in};
use ttsan_events::trace::read_all;
use ttsan_events::{Arch, CoreCoord, CoreRange, Event, Layout, Space};
use ttsan_graph_capture::{import_str, import_value, ImportError, ImportOptions};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn opts() -> ImportOptions {
    ImportOptions::default()
}

#[test]
fn imports_the_real_normal_capture() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("example.ttsan");
    let src = data("graph_capture_normal_example.json");
    let out = ttsan_in(dir.path(), &["import", "graph-capture", src.to_str().unwrap(), "-o", trace.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "a clean capture imports without warnings: {}", stderr(&out));

    let (events, stats) = read_all(&trace).unwrap();
    assert!(!stats.is_damaged());
    let Some(Event::CaptureStart(start)) = events.first() else { panic!("no CaptureStart first") };
    // The capture came from an 8-chip T3K mock: 8x7 compute cores per chip.
    assert_eq!(start.geometry.arch, Arch::WormholeB0);
    assert_eq!(start.geometry.l1_banks(), 56);
    assert_eq!(start.geometry.l1_unreserved_base, 105_824);
    // One `devices` entry (the mesh), eight chips in the cluster descriptor.
    assert_eq!(start.mesh.device_ids, (0..8).collect::<Vec<u32>>());
    let body: Vec<&Event> = events[1..events.len() - 1].iter().collect();
    assert_eq!(body.len(), 4, "{body:?}");
    let (Event::BufferAlloc(d), Event::BufferAlloc(l)) = (body[0], body[1]) else { panic!("{body:?}") };
    assert_eq!((d.space, d.address, d.size, d.page_size), (Space::Dram, 1_136_704, 262_144, 2048));
    assert_eq!((l.space, l.address, l.size, l.page_size), (Space::L1, 1_495_040, 32_768, 2048));
    assert_eq!(d.layout, Layout::Interleaved);
    assert_ne!(d.id, l.id);
    let (Event::BufferFree(f1), Event::BufferFree(f2)) = (body[2], body[3]) else { panic!("{body:?}") };
    assert_eq!((f1.id, f2.id), (d.id, l.id));
    assert!(matches!(events.last(), Some(Event::CaptureEnd { dropped: 0 })));
}

#[test]
fn default_output_is_the_input_with_a_ttsan_extension() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("cap.json");
    std::fs::copy(data("graph_capture_normal_example.json"), &src).unwrap();
    let out = ttsan_in(dir.path(), &["import", "graph-capture", "cap.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (events, _) = read_all(dir.path().join("cap.ttsan")).unwrap();
    assert_eq!(events.iter().filter(|e| matches!(e, Event::BufferAlloc(_))).count(), 2);
}

/// The older format: every param a string, buffer nodes pointing at tensors, nested ops,
/// circular buffers, an unknown node type and a free of a buffer allocated before capture.
fn older_string_capture() -> serde_json::Value {
    json!([
        {"counter": 0, "node_type": "capture_start", "params": {}, "connections": [1]},
        {"counter": 1, "node_type": "function_start", "params": {"name": "ttnn::add", "inputs": "2"}, "connections": [3]},
        {"counter": 2, "node_type": "tensor", "params": {"tensor_id": "7", "shape": "ttnn.Shape([4, 3, 32, 32])"}, "connections": []},
        {"counter": 3, "node_type": "function_start", "params": {"name": "create_device_tensor"}, "connections": []},
        {"counter": 4, "node_type": "buffer", "params": {"layout": "INTERLEAVED", "size": "24576", "type": "L1"}, "connections": [2]},
        {"counter": 5, "node_type": "buffer_allocate", "params": {"address": "1462272", "layout": "INTERLEAVED", "size": "24576", "type": "L1"}, "connections": [4]},
        {"counter": 6, "node_type": "function_end", "params": {"name": "create_device_tensor"}, "connections": []},
        {"counter": 7, "node_type": "circular_buffer_deallocate_all", "params": {}, "connections": []},
        {"counter": 8, "node_type": "circular_buffer_allocate", "params": {"address": "105824", "size": "4096",
            "core_range_set": "{[(x=0,y=0) - (x=0,y=7)], [(x=1,y=0) - (x=1,y=3)]}", "globally_allocated": "false"}, "connections": []},
        {"counter": 9, "node_type": "mystery_node", "params": {}, "connections": []},
        {"counter": 10, "node_type": "buffer", "params": {"size": "2048", "type": "DRAM"}, "connections": []},
        {"counter": 11, "node_type": "buffer_deallocate", "params": {"layout": "INTERLEAVED", "size": "2048", "type": "DRAM"}, "connections": [10]},
        {"counter": 12, "node_type": "buffer_deallocate", "params": {"layout": "INTERLEAVED", "size": "24576", "type": "L1"}, "connections": [4]},
        {"counter": 13, "node_type": "function_end", "params": {"name": "ttnn::add"}, "connections": []},
        {"counter": 14, "node_type": "capture_end", "params": {}, "connections": []}
    ])
}

#[test]
fn older_all_string_capture_maps_every_node_kind() {
    let imp = import_value(&older_string_capture(), &opts()).unwrap();
    let ev = &imp.events;
    assert!(matches!(ev[0], Event::CaptureStart(_)));
    let Event::OpBegin(add) = &ev[1] else { panic!("{:?}", ev[1]) };
    assert_eq!((add.name.as_str(), add.parent), ("ttnn::add", None));
    let Event::OpBegin(create) = &ev[2] else { panic!("{:?}", ev[2]) };
    assert_eq!((create.name.as_str(), create.parent), ("create_device_tensor", Some(add.index)));
    let Event::BufferAlloc(b) = &ev[3] else { panic!("{:?}", ev[3]) };
    assert_eq!((b.space, b.address, b.size), (Space::L1, 1_462_272, 24_576));
    assert_eq!(b.op, Some(create.index));
    assert_eq!(b.name, "tensor 7 ttnn.Shape([4, 3, 32, 32])");
    // No page size in the older format: one page per buffer, with a warning.
    assert_eq!(b.page_size, 24_576);
    assert!(matches!(ev[4], Event::OpEnd { index } if index == create.index));
    assert!(matches!(ev[5], Event::CbDeallocAll { device: None }));
    let Event::CbAlloc(cb) = &ev[6] else { panic!("{:?}", ev[6]) };
    assert_eq!((cb.address, cb.size, cb.globally_allocated, cb.op), (105_824, 4096, false, Some(add.index)));
    assert_eq!(
        cb.cores,
        vec![
            CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(0, 7)),
            CoreRange::new(CoreCoord::new(1, 0), CoreCoord::new(1, 3))
        ]
    );
    // The free of a buffer allocated before the capture is kept, with an id nothing else has.
    let Event::BufferFree(unknown) = &ev[7] else { panic!("{:?}", ev[7]) };
    assert_ne!(unknown.id, b.id);
    assert_ne!(unknown.id, cb.id);
    let Event::BufferFree(f) = &ev[8] else { panic!("{:?}", ev[8]) };
    assert_eq!(f.id, b.id);
    assert!(matches!(ev[9], Event::OpEnd { index } if index == add.index));
    assert!(matches!(ev[10], Event::CaptureEnd { .. }));
    assert_eq!(ev.len(), 11);

    let all = imp.warnings.join("\n");
    assert!(all.contains("mystery_node x1"), "{all}");
    assert!(all.contains("not allocated in this capture"), "{all}");
    assert!(all.contains("without page_size"), "{all}");
    assert!(!imp.no_dispatch);
    assert_eq!((imp.summary.buffers, imp.summary.frees, imp.summary.circular_buffers, imp.summary.ops), (1, 2, 1, 2));
}

#[test]
fn typed_capture_with_devices_and_reallocated_buffer_node() {
    let doc = json!({
        "version": 1,
        "devices": [{"arch": "BLACKHOLE", "device_id": 0, "num_x_compute_cores": 11, "num_y_compute_cores": 10,
                     "l1_num_banks": 110, "worker_l1_size": 1572864, "address_at_first_l1_cb_buffer": 111744,
                     "num_dram_channels": 8, "dram_size_per_channel": 4278190080u64}],
        "graph": [
            {"counter": 0, "node_type": "capture_start", "params": null, "connections": [1]},
            {"counter": 1, "node_type": "buffer", "params": {"buffer_type": 0, "size": 4096}, "connections": []},
            {"counter": 2, "node_type": "buffer_allocate", "params": {"address": 1048704, "buffer_type": 0, "size": 4096,
                "page_size": 2048, "layout": "INTERLEAVED", "device_id": 0, "num_cores": 0}, "connections": [1]},
            {"counter": 3, "node_type": "buffer_deallocate", "params": {"address": 1048704, "buffer_type": 0, "size": 4096}, "connections": [1]},
            {"counter": 4, "node_type": "buffer_allocate", "params": {"address": 1048704, "buffer_type": 0, "size": 4096,
                "page_size": 2048, "device_id": 0}, "connections": [1]},
            {"counter": 5, "node_type": "buffer_allocate", "params": {"address": 1572608, "buffer_type": 1, "size": 8192,
                "page_size": 2048, "layout": "HEIGHT_SHARDED", "num_cores": 4, "device_id": 0}, "connections": []},
            {"counter": 6, "node_type": "buffer_allocate", "params": {"address": 0, "buffer_type": 2, "size": 64}, "connections": []},
            {"counter": 7, "node_type": "circular_buffer_allocate", "params": {"address": 111744, "size": 2048,
                "core_range_set": "{[(x=0,y=0) - (x=10,y=9)]}", "globally_allocated": 1, "device_id": 0}, "connections": []}
        ]
    });
    let imp = import_value(&doc, &opts()).unwrap();
    let Event::CaptureStart(start) = &imp.events[0] else { panic!() };
    assert_eq!(start.geometry.arch, Arch::Blackhole);
    assert_eq!(start.geometry.l1_banks(), 110);
    let allocs: Vec<_> = imp
        .events
        .iter()
        .filter_map(|e| match e {
            Event::BufferAlloc(b) => Some(b),
            _ => None,
        })
        .collect();
    // The host buffer is skipped; the buffer node allocated twice gets two distinct ids.
    assert_eq!(allocs.len(), 3);
    assert_ne!(allocs[0].id, allocs[1].id);
    assert!(allocs.iter().all(|b| b.device.is_none()));
    let Layout::Sharded(spec) = &allocs[2].layout else { panic!("{:?}", allocs[2].layout) };
    assert_eq!((spec.tensor_shape, spec.shard_shape), ([4, 1], [1, 1]));
    let Some(Event::CbAlloc(cb)) = imp.events.iter().find(|e| matches!(e, Event::CbAlloc(_))) else { panic!() };
    assert!(cb.globally_allocated);
    let all = imp.warnings.join("\n");
    assert!(all.contains("SYSTEM_MEMORY") && all.contains("sharded"), "{all}");
}

#[test]
fn per_device_buffers_keep_their_device() {
    let doc = json!([
        {"counter": 0, "node_type": "buffer_allocate", "params": {"address": 64, "buffer_type": 0, "size": 32, "page_size": 32, "device_id": 0}, "connections": []},
        {"counter": 1, "node_type": "buffer_allocate", "params": {"address": 96, "buffer_type": 0, "size": 32, "page_size": 32, "device_id": 3}, "connections": []}
    ]);
    let imp = import_value(&doc, &opts()).unwrap();
    let devices: Vec<_> = imp
        .events
        .iter()
        .filter_map(|e| match e {
            Event::BufferAlloc(b) => Some(b.device),
            _ => None,
        })
        .collect();
    assert_eq!(devices, vec![Some(0), Some(3)]);
    assert!(imp.warnings.iter().any(|w| w.contains("no capture_start")));
}

#[test]
fn no_dispatch_capture_is_flagged_on_stderr_and_in_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({"graph": [
        {"counter": 0, "node_type": "capture_start", "params": null, "connections": []},
        {"counter": 1, "node_type": "buffer", "params": {"buffer_type": 1, "size": 2097152}, "connections": []},
        {"counter": 2, "node_type": "buffer_allocate", "params": {"address": 0, "buffer_type": 1, "device_id": 1, "layout": "INTERLEAVED",
            "max_size_per_bank": 20480, "num_cores": 0, "page_size": 2048, "size": 2097152, "type": "L1"}, "connections": [1]},
        {"counter": 3, "node_type": "circular_buffer_allocate", "params": {"address": 0, "size": 4096,
            "core_range_set": "{[(x=0,y=0) - (x=7,y=7)]}", "globally_allocated": "0"}, "connections": []},
        {"counter": 4, "node_type": "buffer_deallocate", "params": {"address": 0, "buffer_type": 1, "size": 2097152}, "connections": [1]}
    ]});
    std::fs::write(dir.path().join("nd.json"), doc.to_string()).unwrap();
    let out = ttsan_in(dir.path(), &["import", "graph-capture", "nd.json", "-o", "nd.ttsan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("NO_DISPATCH"), "{}", stderr(&out));
    let (events, _) = read_all(dir.path().join("nd.ttsan")).unwrap();
    assert!(matches!(&events[1], Event::Mark { text } if text.contains("NO_DISPATCH")), "{:?}", events[1]);
}

#[test]
fn malformed_and_misshapen_input_exits_2_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 6] = [
        ("truncated.json", "{\"graph\": [{\"counter\": 0,", "malformed JSON"),
        ("scalar.json", "42", "neither a report object nor a list"),
        ("nograph.json", "{\"devices\": []}", "no `graph` key"),
        ("entry.json", "[1, 2]", "graph entry 0 is not an object"),
        ("addr.json", "[{\"counter\": 5, \"node_type\": \"buffer_allocate\", \"params\": {\"size\": \"64\", \"type\": \"DRAM\"}}]", "node 5 (buffer_allocate): missing parameter `address`"),
        ("cores.json", "[{\"counter\": 1, \"node_type\": \"circular_buffer_allocate\", \"params\": {\"address\": 0, \"size\": 64, \"core_range_set\": \"{[(x=0) - (x=1,y=1)]}\"}}]", "core_range_set"),
    ];
    for (name, text, expect) in cases {
        std::fs::write(dir.path().join(name), text).unwrap();
        let out = ttsan_in(dir.path(), &["import", "graph-capture", name]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(expect), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: not one line: {err}");
        assert!(!dir.path().join(name).with_extension("ttsan").exists(), "{name}: trace written despite the error");
    }
    let out = ttsan_in(dir.path(), &["import", "graph-capture", "missing.json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn library_errors_are_typed() {
    assert!(matches!(import_str("nope", &opts()), Err(ImportError::Json(_))));
    assert!(matches!(import_str("{\"graph\": 3}", &opts()), Err(ImportError::Shape(_))));
    let bad_type = "[{\"counter\": 0, \"node_type\": \"buffer_allocate\", \"params\": {\"address\": 0, \"size\": 1, \"buffer_type\": 9}}]";
    assert!(matches!(import_str(bad_type, &opts()), Err(ImportError::BadParam { param: "buffer_type", .. })));
    let bad_num = "[{\"counter\": 0, \"node_type\": \"buffer_allocate\", \"params\": {\"address\": \"0x10\", \"size\": 1, \"type\": \"DRAM\"}}]";
    assert!(matches!(import_str(bad_num, &opts()), Err(ImportError::BadParam { param: "address", .. })));
}

/// With the real library: replay a script with `--graph-capture`, import the capture, and
/// check every buffer's address, size, space and lifetime against what replay printed.
#[test]
fn replay_capture_round_trips_through_import() {
    let test = "replay_capture_round_trips_through_import";
    let Some(_) = support::tt_metal_root(test) else { return };
    let script = "\
a d1 dram 131072 2048
a d2 dram 1048576 2048
a w1 l1 32768 2048
f d1
a d3 dram 65536 1024
a big dram 100000000000 2048
a w2 l1 4096 64
f w1
f d2
a w3 l1 65536 2048
f d3
f w2
";
    for chips in ["1", "8"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.txt"), script).unwrap();
        let out =
            ttsan_in(dir.path(), &["tt-metal", "replay", "s.txt", "--chips", chips, "--graph-capture", "cap.json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let printed: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();

        // Expected: every allocation the replay answered with an address, in order, and every
        // free, as (kind, space, size, address, index of the allocation it frees).
        let reqs = ttsan_inference::alloc::script::parse(script).unwrap();
        assert_eq!(printed.len(), reqs.len());
        let mut want = Vec::new();
        let mut alloc_index: HashMap<String, usize> = HashMap::new();
        let mut n_allocs = 0;
        for (req, line) in reqs.iter().zip(&printed) {
            match req {
                ttsan_inference::alloc::script::Request::Alloc { id, space, size, .. } => {
                    let answer = line.split_whitespace().nth(1).unwrap();
                    if answer == "OOM" {
                        continue;
                    }
                    want.push(("alloc", *space, *size, answer.parse::<u64>().unwrap(), n_allocs));
                    alloc_index.insert(id.clone(), n_allocs);
                    n_allocs += 1;
                }
                ttsan_inference::alloc::script::Request::Free { id } => {
                    want.push(("free", Space::Dram, 0, 0, alloc_index[id]));
                }
            }
        }

        let out = ttsan_in(dir.path(), &["import", "graph-capture", "cap.json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let (events, _) = read_all(dir.path().join("cap.ttsan")).unwrap();
        let mut got = Vec::new();
        let mut ids = Vec::new();
        for e in &events {
            match e {
                Event::BufferAlloc(b) => {
                    got.push(("alloc", b.space, b.size, b.address, ids.len()));
                    ids.push(b.id);
                }
                Event::BufferFree(f) => {
                    let which =
                        ids.iter().position(|&id| id == f.id).expect("free of a buffer the import never allocated");
                    got.push(("free", Space::Dram, 0, 0, which));
                }
                _ => {}
            }
        }
        assert_eq!(got, want, "{chips} chip(s): capture and replay disagree");
        let Event::CaptureStart(start) = &events[0] else { panic!() };
        assert_eq!(start.geometry.l1_banks(), if chips == "1" { 64 } else { 56 });
        assert_eq!(start.mesh.len(), if chips == "1" { 1 } else { 8 });
    }
}
