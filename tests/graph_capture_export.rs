//! `ttsan export --graph-capture`: a ttsan trace as ttnn's graph-capture report, imported by the
//! ttnn wheel's own `ttnn/graph_report.py` (copied out of the package with its sibling
//! `stack_trace_source.py`, since run in place the package's `types.py` shadows the standard
//! library's) into a ttnn-visualizer database, which is then checked against the trace.
//! Needs the wheel (scripts/fetch-ttnn) and Python's loguru (scripts/test installs both); skips
//! loudly without them, and fails under CI=true.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{skip, text, ttsan, ttsan_in, BIN};
use ttsan_events::trace::read_all;
use ttsan_events::Event;

/// The wheel's importer and its sibling, copied into `dir`.
fn importer(test: &str, dir: &Path) -> Option<PathBuf> {
    let pkg = std::env::var_os("TTSAN_TTNN_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ttnn/root"))
        .join("ttnn");
    let script = pkg.join("graph_report.py");
    if !script.is_file() {
        skip(
            test,
            &format!("the ttnn wheel's graph_report.py is missing ({}): run scripts/fetch-ttnn", script.display()),
        );
        return None;
    }
    let loguru = Command::new("python3").args(["-c", "import loguru"]).output();
    if !loguru.is_ok_and(|o| o.status.success()) {
        skip(test, "python3 cannot import loguru (scripts/test installs it)");
        return None;
    }
    for f in ["graph_report.py", "stack_trace_source.py"] {
        std::fs::copy(pkg.join(f), dir.join(f)).unwrap();
    }
    Some(dir.join("graph_report.py"))
}

/// One SQL answer per query, as JSON, from the database the importer wrote.
fn query(db: &Path, queries: &[&str]) -> Vec<serde_json::Value> {
    let program = "import json, sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nprint(json.dumps([c.execute(q).fetchall() for q in sys.argv[2:]]))";
    let out = Command::new("python3").arg("-c").arg(program).arg(db).args(queries).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

/// What the importer makes operations of: each top-level op, and each free outside an op (it
/// synthesizes a `ttnn::deallocate` operation for those).
fn expected_operations(events: &[Event]) -> (usize, usize) {
    let (mut open, mut top, mut loose_frees) = (0usize, 0usize, 0usize);
    for e in events {
        match e {
            Event::OpBegin(_) => {
                if open == 0 {
                    top += 1;
                }
                open += 1;
            }
            Event::OpEnd { .. } => open = open.saturating_sub(1),
            Event::BufferFree(_) if open == 0 => loose_frees += 1,
            _ => {}
        }
    }
    (top, loose_frees)
}

/// Buffers alive on each chip when the first top-level op ends.
fn live_after_first_op(events: &[Event], chips: usize) -> usize {
    let mut live: HashMap<u64, usize> = HashMap::new();
    let mut open = 0usize;
    for e in events {
        match e {
            Event::BufferAlloc(b) => {
                live.insert(b.id, if b.device.is_some() { 1 } else { chips });
            }
            Event::BufferFree(f) => {
                live.remove(&f.id);
            }
            Event::OpBegin(_) => open += 1,
            Event::OpEnd { .. } => {
                open -= 1;
                if open == 0 {
                    return live.values().sum();
                }
            }
            _ => {}
        }
    }
    0
}

#[test]
fn an_exported_trace_opens_in_the_wheels_own_importer_with_its_ops_buffers_and_finding() {
    let test = "an_exported_trace_opens_in_the_wheels_own_importer_with_its_ops_buffers_and_finding";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(script) = importer(test, d) else { return };
    let run = ttsan_in(d, &["run", "gpt-oss", "--inject", "semaphore-reuse", "--trace", "t.ttsan"]);
    assert_eq!(run.status.code(), Some(1), "the planted fault is found: {}", text(&run));
    let out = ttsan_in(d, &["export", "t.ttsan", "--graph-capture", "gc.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let import = Command::new("python3").current_dir(d).arg(&script).args(["gc.json", "db"]).output().unwrap();
    assert!(import.status.success(), "graph_report.py failed: {}", text(&import));

    let (events, _) = read_all(d.join("t.ttsan")).unwrap();
    let Some(Event::CaptureStart(start)) = events.first() else { panic!("no capture start") };
    let chips = start.mesh.device_ids.len();
    let (top, loose) = expected_operations(&events);
    let answers = query(
        &d.join("db/db.sqlite"),
        &[
            "select count(*) from operations",
            "select count(*) from devices",
            "select operation_id, error_type, error_message from errors",
            "select o.name from operations o join errors e on e.operation_id = o.operation_id",
            "select count(*) from buffers where operation_id = (select min(operation_id) from operations where name != 'ttnn::deallocate')",
            "select count(distinct address) from buffers",
        ],
    );
    assert_eq!(answers[0][0][0], top + loose, "top-level ops {top} and frees outside ops {loose}");
    assert_eq!(answers[1][0][0], chips);
    let errors = answers[2].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0][1], "ttsan:foreign-write");
    let message = errors[0][2].as_str().unwrap();
    assert!(message.contains("ttnn.experimental.all_gather_async -> ccl.rs0.sem0 (op #13) on chip 0"), "{message}");
    assert!(message.contains("4 bytes at 0x16dfe0 in l1 core (0,0)"), "{message}");
    assert_eq!(answers[3][0][0], "ttnn.experimental.all_gather_async", "the error belongs to its culprit op");
    assert_eq!(answers[4][0][0], live_after_first_op(&events, chips), "buffers alive after the first op, per chip");
    // Every address the trace allocated at shows up in the visualizer's buffer snapshots.
    let addresses: HashSet<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::BufferAlloc(b) => Some(b.address),
            _ => None,
        })
        .collect();
    assert!(answers[5][0][0].as_u64().unwrap() as usize <= addresses.len());
    assert!(answers[5][0][0].as_u64().unwrap() > 0);
}

/// A wrapped run of the real library in mock mode (the doctor's workload under `ttsan run`):
/// its ops, circular buffer and buffers, with tt-metal's own addresses, in the visualizer.
#[test]
fn a_wrapped_mock_mode_run_opens_in_the_wheels_own_importer() {
    let test = "a_wrapped_mock_mode_run_opens_in_the_wheels_own_importer";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(script) = importer(test, d) else { return };
    let Some(root) = support::tt_metal_root(test) else { return };
    let run = ttsan()
        .current_dir(d)
        .env("TT_METAL_SHM_TRACKING_DISABLED", "1")
        .env("OMPI_MCA_btl", "self")
        .env("TT_METAL_LOGGER_LEVEL", "error")
        .env("TT_METAL_CACHE", d.join("cache"))
        .args(["run", "--trace", "w.ttsan", "--", BIN, "tt-metal", "doctor-workload", "--chips", "2", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(d.join("w.ttsan").is_file(), "{}", text(&run));
    let out = ttsan_in(d, &["export", "w.ttsan", "--graph-capture", "gc.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let import = Command::new("python3").current_dir(d).arg(&script).args(["gc.json", "db"]).output().unwrap();
    assert!(import.status.success(), "graph_report.py failed: {}", text(&import));

    let (events, _) = read_all(d.join("w.ttsan")).unwrap();
    let (top, loose) = expected_operations(&events);
    let answers = query(
        &d.join("db/db.sqlite"),
        &[
            "select name from operations where name != 'ttnn::deallocate' order by operation_id",
            "select count(*) from operations",
            "select count(*) from devices",
        ],
    );
    let names: Vec<&str> = answers[0].as_array().unwrap().iter().filter_map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["doctor::matmul", "doctor::add", "doctor::stale_write"], "nested ops fold into their parent");
    assert_eq!(answers[1][0][0], top + loose);
    assert_eq!(answers[2][0][0], 2);
    let gc: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("gc.json")).unwrap()).unwrap();
    let cbs: Vec<&serde_json::Value> =
        gc["graph"].as_array().unwrap().iter().filter(|n| n["node_type"] == "circular_buffer_allocate").collect();
    assert_eq!(cbs.len(), 1);
    assert_eq!(cbs[0]["params"]["core_range_set"], "{[(0,0) - (3,1)]}");
    assert_eq!(cbs[0]["params"]["address"], "131072");
}
