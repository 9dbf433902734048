//! `ttsan export --perfetto`: the output checked against the Chrome trace-event format
//! (the JSON both ui.perfetto.dev and chrome://tracing load): required fields per phase,
//! properly nested slices per thread, and the content (ops per chip, counters, findings).

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use support::{stderr, ttsan, write_trace};
use ttsan_events::{Event, Role, Space};
use ttsan_test_support::fixtures::{self, TraceBuilder, DRAM_BASE};

fn export(dir: &Path, events: &[Event]) -> Value {
    let trace = dir.join("t.ttsan");
    let json = dir.join("t.json");
    write_trace(&trace, events);
    let out = ttsan().arg("export").arg(&trace).arg("--perfetto").arg(&json).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&std::fs::read(&json).unwrap()).expect("the export is JSON")
}

fn int(e: &Value, key: &str) -> i64 {
    e[key].as_i64().unwrap_or_else(|| panic!("`{key}` must be an integer: {e}"))
}

fn number(e: &Value, key: &str) -> f64 {
    e[key].as_f64().unwrap_or_else(|| panic!("`{key}` must be a number: {e}"))
}

/// The trace-event format's required fields for the phases ttsan writes, and nesting.
fn check_format(doc: &Value) {
    let events = doc["traceEvents"].as_array().expect("object form with a traceEvents array");
    let mut slices: BTreeMap<(i64, i64), Vec<(f64, f64)>> = BTreeMap::new();
    for e in events {
        assert!(e["name"].is_string(), "every event has a name: {e}");
        let ph = e["ph"].as_str().unwrap_or_else(|| panic!("ph: {e}"));
        let pid = int(e, "pid");
        match ph {
            "X" => {
                let (ts, dur) = (number(e, "ts"), number(e, "dur"));
                assert!(dur >= 0.0, "{e}");
                slices.entry((pid, int(e, "tid"))).or_default().push((ts, ts + dur));
            }
            "C" => {
                number(e, "ts");
                let args = e["args"].as_object().expect("counter args");
                assert!(!args.is_empty() && args.values().all(Value::is_number), "counter values are numbers: {e}");
            }
            "i" | "I" => {
                number(e, "ts");
                int(e, "tid");
                assert!(matches!(e["s"].as_str(), Some("g" | "p" | "t")), "instant scope: {e}");
            }
            "M" => match e["name"].as_str() {
                Some("process_name" | "thread_name") => assert!(e["args"]["name"].is_string(), "{e}"),
                Some("process_sort_index" | "thread_sort_index") => {
                    assert!(e["args"]["sort_index"].is_i64(), "{e}")
                }
                other => panic!("unknown metadata event {other:?}"),
            },
            other => panic!("phase {other} is not one ttsan writes: {e}"),
        }
    }
    // Complete events on one thread must nest, or the viewers drop or misdraw them.
    for ((pid, tid), mut spans) in slices {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut stack: Vec<f64> = Vec::new();
        for (start, end) in spans {
            while stack.last().is_some_and(|&top| top <= start) {
                stack.pop();
            }
            if let Some(&top) = stack.last() {
                assert!(end <= top, "pid {pid} tid {tid}: [{start}, {end}) overlaps its parent ending at {top}");
            }
            stack.push(end);
        }
    }
}

fn events<'a>(doc: &'a Value, ph: &str) -> Vec<&'a Value> {
    doc["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == ph).collect()
}

#[test]
fn every_fixture_exports_in_the_trace_event_format() {
    let dir = support::tempdir();
    for (name, trace) in fixtures::all() {
        let doc = export(dir.path(), &trace);
        check_format(&doc);
        assert!(!events(&doc, "X").is_empty() || name == "overlap" || name == "cb-clash" || name == "leak", "{name}");
    }
}

#[test]
fn ops_counters_and_findings_land_on_their_chips() {
    let dir = support::tempdir();
    let doc = export(dir.path(), &fixtures::use_after_free());
    check_format(&doc);
    let ops: Vec<&str> = events(&doc, "X").iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        [
            "ttnn.experimental.reduce_scatter_minimal_async",
            "ttnn.deallocate",
            "ttnn.experimental.reduce_scatter_minimal_async"
        ]
    );
    let rs2 = events(&doc, "X")[2];
    let finding = events(&doc, "i").into_iter().find(|e| e["cat"] == "finding").expect("the finding");
    assert_eq!(finding["name"], "use-after-free: ttnn.experimental.reduce_scatter_minimal_async -> layer1.attn.sinks");
    assert_eq!(finding["pid"], 0);
    assert_eq!(number(finding, "ts"), number(rs2, "ts") + number(rs2, "dur"), "at the end of the culprit op");
    let dram: Vec<i64> = events(&doc, "C")
        .iter()
        .filter(|e| e["name"] == "dram bytes in use")
        .map(|e| e["args"]["bytes"].as_i64().unwrap())
        .collect();
    let buf = 12 * 2048;
    assert_eq!(dram, [buf, 2 * buf, buf, 2 * buf], "alloc, alloc, free, alloc");
    let names: Vec<&Value> =
        events(&doc, "M").into_iter().filter(|e| e["name"] == "process_name").map(|e| &e["args"]["name"]).collect();
    assert_eq!(names, ["chip 0"]);
}

#[test]
fn mesh_ops_are_drawn_on_every_chip_and_nested_ops_on_their_own_track() {
    let dir = support::tempdir();
    let mut b = TraceBuilder::wormhole(1, 2);
    b.alloc(1, "w", Role::Weight, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    b.alloc_on(1, 2, "chip1.scratch", DRAM_BASE + 0x10_0000, 12 * 2048);
    let outer = b.op("ttnn.linear", &[1], &[], &[]);
    let inner = b.op("ttnn.matmul", &[1], &[], &[]);
    b.end(inner);
    b.end(outer);
    let doc = export(dir.path(), &b.finish());
    check_format(&doc);
    let slices = events(&doc, "X");
    assert_eq!(slices.len(), 4, "two ops on two chips");
    for e in &slices {
        let want = if e["name"] == "ttnn.linear" { 1 } else { 2 };
        assert_eq!(e["tid"], want, "{e}");
    }
    let on_chip1: Vec<i64> =
        events(&doc, "C").iter().filter(|e| e["pid"] == 1).map(|e| e["args"]["bytes"].as_i64().unwrap()).collect();
    assert_eq!(on_chip1, [12 * 2048, 24 * 2048], "the mesh buffer, then chip 1's own");
}

#[test]
fn export_needs_an_output_and_a_readable_trace() {
    let dir = support::tempdir();
    let trace = dir.path().join("t.ttsan");
    write_trace(&trace, &fixtures::clean());
    let out = ttsan().arg("export").arg(&trace).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Without a format the error names every format, not only the first.
    assert!(stderr(&out).contains("--perfetto") && stderr(&out).contains("--graph-capture"), "{}", stderr(&out));
    let garbage = dir.path().join("g.ttsan");
    std::fs::write(&garbage, b"NOTATRACE-------").unwrap();
    let out = ttsan().arg("export").arg(&garbage).arg("--perfetto").arg(dir.path().join("o.json")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = ttsan().arg("export").arg(&trace).arg("--perfetto").arg("/nonexistent/dir/o.json").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
