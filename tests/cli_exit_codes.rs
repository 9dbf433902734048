//! Exit codes and one-line errors of `ttsan analyze` and `ttsan trace dump`.

mod support;

use support::{stderr, stdout, ttsan, write_trace};
use ttsan_events::Event;
use ttsan_test_support::fixtures;

fn one_line_error(out: &std::process::Output) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected a one-line reason, got: {err}");
    assert!(lines[0].starts_with("ttsan: "), "{err}");
    lines[0].to_string()
}

#[test]
fn clean_findings_and_error_exitcode() {
    let dir = support::tempdir();
    let clean = dir.path().join("clean.ttsan");
    let bad = dir.path().join("bad.ttsan");
    write_trace(&clean, &fixtures::clean());
    write_trace(&bad, &fixtures::use_after_free());
    assert_eq!(ttsan().arg("analyze").arg(&clean).output().unwrap().status.code(), Some(0));
    assert_eq!(ttsan().arg("analyze").arg(&bad).output().unwrap().status.code(), Some(1));
    let out = ttsan().arg("analyze").arg(&bad).args(["--error-exitcode", "42"]).output().unwrap();
    assert_eq!(out.status.code(), Some(42));
    // TTSAN_OPTIONS supplies defaults; flags win.
    let out = ttsan().arg("analyze").arg(&bad).env("TTSAN_OPTIONS", "error_exitcode=7:format=json").output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json on stdout");
    assert_eq!(json["status"], "findings");
    let out = ttsan()
        .arg("analyze")
        .arg(&bad)
        .args(["--error-exitcode", "9", "--format", "text"])
        .env("TTSAN_OPTIONS", "error_exitcode=7:format=json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9));
    assert!(stdout(&out).contains("==ttsan== ERROR: use-after-free"));
}

#[test]
fn json_report_file_has_the_documented_fields() {
    let dir = support::tempdir();
    let trace = dir.path().join("t.ttsan");
    let json = dir.path().join("r.json");
    write_trace(&trace, &fixtures::use_after_free());
    let out = ttsan().arg("analyze").arg(&trace).arg("--json").arg(&json).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["status"], "findings");
    assert_eq!(r["summary"]["by_kind"]["use-after-free"], 1);
    assert_eq!(r["summary"]["ops"], 3);
    let f = &r["findings"][0];
    for key in ["kind", "device", "space", "bank", "core", "address", "size"] {
        assert!(f.get(key).is_some(), "missing {key}");
    }
    assert_eq!(f["kind"], "use-after-free");
    assert_eq!(f["culprit"]["op"], "ttnn.experimental.reduce_scatter_minimal_async");
    assert_eq!(f["culprit"]["op_index"], 2);
    assert_eq!(f["victim"]["name"], "layer1.attn.sinks");
    assert_eq!(f["related"]["name"], "experts.tp_allreduce.rs_intermediate");
    assert_eq!(f["related"]["relation"], "stale-address");
}

#[test]
fn unreadable_input_is_exit_2_with_one_line() {
    let dir = support::tempdir();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "empty"),
        ("random", (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect(), "not a ttsan trace"),
        ("magic", b"NOTATRACE-------".to_vec(), "not a ttsan trace"),
        (
            "version",
            {
                let mut v = b"TTSANTRC".to_vec();
                v.extend_from_slice(&[7, 0, 16, 0, 0, 0, 0, 0]);
                v
            },
            "unsupported trace format version 7",
        ),
        (
            "old-version",
            {
                let mut v = b"TTSANTRC".to_vec();
                v.extend_from_slice(&[1, 0, 16, 0, 0, 0, 0, 0]);
                v
            },
            "unsupported trace format version 1 (this ttsan reads version 2; the trace was written by an older ttsan",
        ),
        ("short", b"TTSANTR".to_vec(), "truncated"),
    ];
    for (name, bytes, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        for cmd in [&["analyze"][..], &["trace", "dump"][..]] {
            let out = ttsan().args(cmd).arg(&path).output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{name} {cmd:?}: {}", stderr(&out));
            let line = one_line_error(&out);
            assert!(line.contains(needle), "{name}: {line}");
        }
    }
    let out = ttsan().args(["analyze", "/nonexistent/trace.ttsan"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("No such file"));
}

#[test]
fn a_header_only_trace_is_an_error_never_clean() {
    let dir = support::tempdir();
    let path = dir.path().join("h.ttsan");
    write_trace(&path, &[]);
    let out = ttsan().args(["analyze"]).arg(&path).args(["--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let r: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(r["status"], "error");
}

#[test]
fn a_torn_trace_still_reports_what_it_holds() {
    let dir = support::tempdir();
    let path = dir.path().join("torn.ttsan");
    write_trace(&path, &fixtures::use_after_free());
    let bytes = std::fs::read(&path).unwrap();
    // Drop the capture_end record and half of the one before... keep the write of interest.
    std::fs::write(&path, &bytes[..bytes.len() - 6]).unwrap();
    let out = ttsan().arg("analyze").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("torn record"), "{}", stderr(&out));
    assert!(stdout(&out).contains("use-after-free"));
}

#[test]
fn bad_options_are_usage_errors() {
    let dir = support::tempdir();
    let path = dir.path().join("c.ttsan");
    write_trace(&path, &fixtures::clean());
    let out = ttsan().arg("analyze").arg(&path).env("TTSAN_OPTIONS", "bogus=1").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("unknown TTSAN_OPTIONS key `bogus`"));
    let out = ttsan().arg("analyze").arg(&path).env("TTSAN_OPTIONS", "quarantine=lots").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = ttsan().args(["analyze", "--format", "yaml"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(ttsan().arg("frobnicate").output().unwrap().status.code(), Some(2));
}

#[test]
fn help_on_every_command() {
    for cmd in
        [&[][..], &["analyze"], &["trace"], &["trace", "dump"], &["tt-metal", "replay"], &["import", "graph-capture"]]
    {
        let out = ttsan().args(cmd).arg("--help").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{cmd:?}");
        assert!(stdout(&out).contains("Usage:"), "{cmd:?}");
    }
}

#[test]
fn trace_dump_is_json_lines_with_event_and_buffer_fields() {
    let dir = support::tempdir();
    let path = dir.path().join("d.ttsan");
    let events = fixtures::oob_write();
    write_trace(&path, &events);
    let out = ttsan().args(["trace", "dump"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines.len(), events.len());
    assert_eq!(lines[0]["event"], "capture_start");
    let alloc = lines.iter().find(|l| l["event"] == "buffer_alloc").unwrap();
    for key in ["id", "name", "role", "device", "space", "address", "size", "page_size", "layout"] {
        assert!(alloc.get(key).is_some(), "buffer_alloc lacks {key}: {alloc}");
    }
    assert_eq!(alloc["layout"], "INTERLEAVED");
    assert_eq!(alloc["space"], "dram");
    let op = lines.iter().find(|l| l["event"] == "op_begin").unwrap();
    assert_eq!(op["name"], "ttnn.all_gather");
    assert_eq!(op["index"], 0);
}

#[test]
fn interned_stacks_show_as_definitions_in_dump_and_as_text_in_reports() {
    let dir = support::tempdir();
    let path = dir.path().join("s.ttsan");
    // The use-after-free fixture as the preload shim would write it: every allocation and free
    // refers to one stack definition, written once, before the first reference.
    let frames = "alloc_site+0x10 (libprog.so)\nmain+0x20 (prog)";
    let mut events = vec![];
    for (i, mut e) in fixtures::use_after_free().into_iter().enumerate() {
        match &mut e {
            Event::BufferAlloc(b) => b.stack_id = Some(5),
            Event::BufferFree(f) => f.stack_id = Some(5),
            _ => {}
        }
        events.push(e);
        if i == 0 {
            events.push(Event::StackDef { id: 5, frames: frames.into() });
        }
    }
    write_trace(&path, &events);
    let out = ttsan().args(["trace", "dump"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "no warning: every reference resolves");
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), events.len());
    let defs: Vec<&serde_json::Value> = lines.iter().filter(|l| l["event"] == "stack_def").collect();
    assert_eq!(defs.len(), 1);
    assert_eq!((&defs[0]["id"], &defs[0]["frames"]), (&serde_json::json!(5), &serde_json::json!(frames)));
    let alloc = lines.iter().find(|l| l["event"] == "buffer_alloc").unwrap();
    assert_eq!((&alloc["stack_id"], &alloc["stack"]), (&serde_json::json!(5), &serde_json::json!(frames)));
    let free = lines.iter().find(|l| l["event"] == "buffer_free").unwrap();
    assert_eq!((&free["stack_id"], &free["stack"]), (&serde_json::json!(5), &serde_json::json!(frames)));

    // The report names the frames of the victim's allocation, as with inline stacks.
    let out = ttsan().arg("analyze").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("alloc_site+0x10 (libprog.so)"), "{}", stdout(&out));
    assert_eq!(stderr(&out), "");

    // A reference nothing defines: the records still count, with a warning and no stack.
    let mut undefined = events.clone();
    undefined.retain(|e| !matches!(e, Event::StackDef { .. }));
    write_trace(&path, &undefined);
    let out = ttsan().arg("analyze").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("use-after-free"));
    assert!(!stdout(&out).contains("alloc_site"));
    assert!(stderr(&out).contains("refer to a stack id no earlier stack_def defines"), "{}", stderr(&out));
}

#[test]
fn analyze_writes_the_html_map_too() {
    let dir = support::tempdir();
    let trace = dir.path().join("t.ttsan");
    let html = dir.path().join("map.html");
    write_trace(&trace, &fixtures::use_after_free());
    let out = ttsan().arg("analyze").arg(&trace).arg("--html").arg(&html).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(
        page.starts_with("<!DOCTYPE html>") || page.starts_with("<!doctype html>"),
        "{}",
        &page[..60.min(page.len())]
    );
    assert!(page.len() > 1000);
    // The report is the one `analyze` prints without the map (the map's pass analyses for it).
    let plain = ttsan().arg("analyze").arg(&trace).output().unwrap();
    assert_eq!(plain.status.code(), Some(1), "{}", stderr(&plain));
    assert!(stdout(&out).contains("use-after-free"), "{}", stdout(&out));
    assert_eq!(stdout(&out), stdout(&plain));
    let json = |extra: &[&str]| {
        let mut cmd = ttsan();
        cmd.arg("analyze").arg(&trace).args(["--format", "json"]).args(extra);
        stdout(&cmd.output().unwrap())
    };
    assert_eq!(json(&["--html", &html.display().to_string()]), json(&[]));
    // An unwritable map path is a usage error, and the report is not claimed clean.
    let out = ttsan().arg("analyze").arg(&trace).args(["--html", "/nonexistent/dir/map.html"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
