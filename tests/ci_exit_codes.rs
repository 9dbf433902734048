//! `ttsan ci` end to end: one test per exit path, and the artifacts each path leaves behind.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use support::{stderr, stdout, ttsan, write_trace};
use ttsan_events::{Event, Role, Space};
use ttsan_test_support::fixtures::{self, TraceBuilder, DRAM_BASE};

struct Run {
    out: Output,
    dir: PathBuf,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("r.json")).expect("JSON report written")).unwrap()
    }
    fn junit(&self) -> String {
        std::fs::read_to_string(self.dir.join("r.xml")).expect("JUnit written")
    }
    fn sarif(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("r.sarif")).expect("SARIF written")).unwrap()
    }
    fn explain(&self) -> String {
        format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", self.code(), stdout(&self.out), stderr(&self.out))
    }
}

/// `ttsan ci TRACE --json --junit --sarif EXTRA...` with every artifact in `dir`.
fn ci(dir: &Path, trace: &Path, extra: &[&str]) -> Run {
    let out = ttsan()
        .arg("ci")
        .arg(trace)
        .arg("--json")
        .arg(dir.join("r.json"))
        .arg("--junit")
        .arg(dir.join("r.xml"))
        .arg("--sarif")
        .arg(dir.join("r.sarif"))
        .args(extra)
        .output()
        .unwrap();
    Run { out, dir: dir.to_path_buf() }
}

fn trace(dir: &Path, name: &str, events: &[Event]) -> PathBuf {
    let path = dir.join(format!("{name}.ttsan"));
    write_trace(&path, events);
    path
}

#[test]
fn clean_run_passes_with_a_short_summary() {
    let dir = support::tempdir();
    let t = trace(dir.path(), "clean", &fixtures::clean());
    let r = ci(dir.path(), &t, &[]);
    assert_eq!(r.code(), Some(0), "{}", r.explain());
    let text = stdout(&r.out);
    assert!(text.starts_with("ttsan ci: PASS: 0 new finding(s)"), "{text}");
    assert!(text.contains(&format!("full report: {}", dir.path().join("r.json").display())), "{text}");
    assert_eq!(r.json()["ci"]["verdict"], "pass");
    assert!(r.junit().contains(r#"tests="1" failures="0" errors="0""#), "{}", r.junit());
    assert_eq!(r.sarif()["runs"][0]["results"].as_array().unwrap().len(), 0);
    assert_eq!(r.sarif()["runs"][0]["invocations"][0]["executionSuccessful"], true);
}

#[test]
fn findings_fail_with_the_findings_code_and_are_in_every_artifact() {
    let dir = support::tempdir();
    let t = trace(dir.path(), "uaf", &fixtures::use_after_free());
    let r = ci(dir.path(), &t, &[]);
    assert_eq!(r.code(), Some(1), "{}", r.explain());
    let text = stdout(&r.out);
    assert!(text.lines().count() <= 20);
    assert!(
        text.contains("FAIL  use-after-free: ttnn.experimental.reduce_scatter_minimal_async -> layer1.attn.sinks"),
        "{text}"
    );
    let json = r.json();
    assert_eq!(json["findings"][0]["ci"]["state"], "active");
    assert_eq!(json["ci"]["active"], 1);
    let junit = r.junit();
    assert!(junit.contains(r#"<failure type="use-after-free""#), "{junit}");
    // The failure carries the finding's full text, as `ttsan analyze` prints it.
    assert!(junit.contains("==ttsan== ERROR: use-after-free on device 0 dram bank 3"), "{junit}");
    let result = &r.sarif()["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "use-after-free");
    assert_eq!(result["level"], "error");
    let logical = &result["locations"][0]["logicalLocations"];
    assert_eq!(logical[0]["name"], "ttnn.experimental.reduce_scatter_minimal_async");
    assert_eq!(logical[0]["kind"], "function");
    assert_eq!(logical[1]["name"], "layer1.attn.sinks");
    assert_eq!(logical[1]["kind"], "variable");
    let out = ttsan().arg("ci").arg(&t).args(["--error-exitcode", "42"]).output().unwrap();
    assert_eq!(out.status.code(), Some(42));
}

#[test]
fn suppressed_findings_pass_and_are_listed_as_suppressed() {
    let dir = support::tempdir();
    let t = trace(dir.path(), "uaf", &fixtures::use_after_free());
    let supp = dir.path().join("ttsan.supp");
    std::fs::write(
        &supp,
        "# known upstream\n\
         kind=use-after-free op=ttnn.experimental.reduce_scatter_* victim=layer*.attn.sinks reason=\"tt-metal#1234: stale CCL scratch\"\n\
         kind=oob-write reason=\"no longer happens\"\n",
    )
    .unwrap();
    let r = ci(dir.path(), &t, &["--suppressions", supp.to_str().unwrap()]);
    assert_eq!(r.code(), Some(0), "{}", r.explain());
    assert!(stdout(&r.out).contains("supp  use-after-free"), "{}", r.explain());
    assert!(stderr(&r.out).contains("unused suppression"), "{}", r.explain());
    assert!(stderr(&r.out).contains("ttsan.supp:3"), "{}", r.explain());
    let json = r.json();
    assert_eq!(json["findings"][0]["ci"]["state"], "suppressed");
    assert_eq!(json["findings"][0]["ci"]["reason"], "tt-metal#1234: stale CCL scratch");
    assert_eq!(json["ci"]["unused_suppressions"].as_array().unwrap().len(), 1);
    assert!(r.junit().contains(r#"<skipped message="suppressed (line 2): tt-metal#1234: stale CCL scratch"/>"#));
    let s = &r.sarif()["runs"][0]["results"][0]["suppressions"][0];
    assert_eq!(s["kind"], "external");
    assert_eq!(s["justification"], "tt-metal#1234: stale CCL scratch");
    // The same through TTSAN_OPTIONS, on `analyze`.
    let out = ttsan()
        .arg("analyze")
        .arg(&t)
        .arg("--ci")
        .env("TTSAN_OPTIONS", format!("suppressions={}", supp.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_suppression_without_a_reason_is_a_usage_error() {
    let dir = support::tempdir();
    let t = trace(dir.path(), "uaf", &fixtures::use_after_free());
    let supp = dir.path().join("bad.supp");
    std::fs::write(&supp, "kind=use-after-free\n").unwrap();
    let out = ttsan().arg("ci").arg(&t).arg("--suppressions").arg(&supp).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.supp:1: every suppression needs a non-empty reason"), "{}", stderr(&out));
}

#[test]
fn baselined_findings_pass_and_new_ones_fail() {
    let dir = support::tempdir();
    let uaf = trace(dir.path(), "uaf", &fixtures::use_after_free());
    let base = dir.path().join("baseline.json");
    let r = ci(dir.path(), &uaf, &["--write-baseline", base.to_str().unwrap()]);
    assert_eq!(r.code(), Some(1), "writing a baseline does not excuse the run that wrote it");
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    assert_eq!(written["findings"][0]["kind"], "use-after-free");
    assert_eq!(written["findings"][0]["victim"], "layer1.attn.sinks");
    assert!(written["findings"][0].get("address").is_none(), "baselines never key on addresses");
    let r = ci(dir.path(), &uaf, &["--baseline", base.to_str().unwrap()]);
    assert_eq!(r.code(), Some(0), "{}", r.explain());
    assert_eq!(r.json()["findings"][0]["ci"]["state"], "baselined");
    assert_eq!(r.sarif()["runs"][0]["results"][0]["baselineState"], "unchanged");
    // The same bug at other addresses is the same finding.
    let mut moved = fixtures::use_after_free();
    for e in &mut moved {
        match e {
            Event::BufferAlloc(a) => a.address += 0x10_0000,
            Event::Write(w) => w.address += 0x10_0000,
            _ => {}
        }
    }
    let moved = trace(dir.path(), "moved", &moved);
    assert_eq!(ci(dir.path(), &moved, &["--baseline", base.to_str().unwrap()]).code(), Some(0));
    let oob = trace(dir.path(), "oob", &fixtures::oob_write());
    let r = ci(dir.path(), &oob, &["--baseline", base.to_str().unwrap()]);
    assert_eq!(r.code(), Some(1), "{}", r.explain());
    assert_eq!(r.sarif()["runs"][0]["results"][0]["baselineState"], "new");
}

#[test]
fn a_panic_inside_ttsan_exits_3_and_still_writes_the_artifacts() {
    let dir = support::tempdir();
    let mut events = fixtures::clean();
    events.insert(1, Event::Mark { text: ttsan_sanitizer::ci::TEST_PANIC_MARK.into() });
    let t = trace(dir.path(), "hook", &events);
    let r = ci(dir.path(), &t, &[]);
    assert_eq!(r.code(), Some(3), "{}", r.explain());
    assert!(stderr(&r.out).contains("ttsan: internal error"), "{}", r.explain());
    assert!(stdout(&r.out).starts_with("ttsan ci: FAIL (internal error)"), "{}", r.explain());
    assert_eq!(r.json()["ci"]["verdict"], "internal-error");
    assert!(r.junit().contains(r#"<error type="internal-error""#), "{}", r.junit());
    assert_eq!(r.sarif()["runs"][0]["invocations"][0]["executionSuccessful"], false);
}

#[test]
fn a_torn_trace_fails_unless_damage_is_allowed() {
    let dir = support::tempdir();
    let t = trace(dir.path(), "torn", &fixtures::use_after_free());
    let bytes = std::fs::read(&t).unwrap();
    std::fs::write(&t, &bytes[..bytes.len() - 6]).unwrap();
    let r = ci(dir.path(), &t, &[]);
    assert_eq!(r.code(), Some(2), "{}", r.explain());
    assert!(stderr(&r.out).contains("1 damaged record(s)"), "{}", r.explain());
    assert!(stdout(&r.out).contains("ERROR damaged-trace"), "{}", r.explain());
    // The findings it holds are still reported, and the failure is in the JUnit file.
    assert_eq!(r.json()["ci"]["active"], 1);
    assert!(r.junit().contains(r#"<error type="damaged-trace""#));
    let r = ci(dir.path(), &t, &["--max-damaged-records", "1"]);
    assert_eq!(r.code(), Some(1), "{}", r.explain());
    // Plain `analyze` keeps its old behaviour (damage is a warning).
    let out = ttsan().arg("analyze").arg(&t).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn an_unreadable_trace_fails_and_says_so_in_the_junit_file() {
    let dir = support::tempdir();
    let t = dir.path().join("garbage.ttsan");
    std::fs::write(&t, b"NOTATRACE-------").unwrap();
    let r = ci(dir.path(), &t, &[]);
    assert_eq!(r.code(), Some(2), "{}", r.explain());
    assert!(stderr(&r.out).contains("not a ttsan trace"), "{}", r.explain());
    assert!(r.junit().contains(r#"<error type="unreadable-trace""#));
    let r = ci(dir.path(), &dir.path().join("missing.ttsan"), &[]);
    assert_eq!(r.code(), Some(2), "{}", r.explain());
}

#[test]
fn a_run_that_recorded_no_allocations_fails() {
    let dir = support::tempdir();
    let mut b = TraceBuilder::wormhole(1, 1);
    let op = b.op("ttnn.matmul", &[], &[], &[]);
    b.end(op);
    let t = trace(dir.path(), "empty", &b.finish());
    let r = ci(dir.path(), &t, &[]);
    assert_eq!(r.code(), Some(2), "{}", r.explain());
    assert!(stderr(&r.out).contains("recorded no allocations"), "{}", r.explain());
    // The same trace is clean to plain `analyze`: CI mode is what refuses it.
    assert_eq!(ttsan().arg("analyze").arg(&t).output().unwrap().status.code(), Some(0));
}

#[test]
fn a_tracer_that_failed_to_load_fails() {
    let dir = support::tempdir();
    let mut events = fixtures::clean();
    events.insert(1, Event::Mark { text: "shim-error: cannot resolve tt::tt_metal::Buffer::allocate".into() });
    let r = ci(dir.path(), &trace(dir.path(), "shim", &events), &[]);
    assert_eq!(r.code(), Some(2), "{}", r.explain());
    assert!(stderr(&r.out).contains("failed to load: cannot resolve"), "{}", r.explain());
    let no_start = &fixtures::clean()[1..];
    let r = ci(dir.path(), &trace(dir.path(), "nostart", no_start), &[]);
    assert_eq!(r.code(), Some(2), "{}", r.explain());
    assert!(stderr(&r.out).contains("no capture_start record"), "{}", r.explain());
}

#[test]
fn the_summary_stays_short_whatever_the_run() {
    let dir = support::tempdir();
    let mut b = TraceBuilder::wormhole(1, 1);
    let n = 60u64;
    for i in 0..n {
        let at = DRAM_BASE + i * 4096;
        b.alloc(i + 1, &format!("layer{i}.weight"), Role::Weight, Space::Dram, at, 12 * 2048, 2048, None);
    }
    for i in 0..n {
        let op = b.op(&format!("ttnn.op{i}"), &[], &[], &[]);
        b.write_dram(0, 0, DRAM_BASE + i * 4096, 64, Some(op));
        b.end(op);
    }
    let t = trace(dir.path(), "many", &b.finish());
    let r = ci(dir.path(), &t, &[]);
    assert_eq!(r.code(), Some(1), "{}", r.explain());
    let text = stdout(&r.out);
    assert_eq!(text.lines().count(), 20, "{text}");
    assert!(text.contains("more line(s) in the full report"), "{text}");
    assert_eq!(r.json()["findings"].as_array().unwrap().len(), n as usize);
}

#[test]
fn help_on_the_ci_commands() {
    for cmd in [&["ci"][..], &["export"]] {
        let out = ttsan().args(cmd).arg("--help").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{cmd:?}");
        assert!(stdout(&out).contains("Usage:"), "{cmd:?}");
    }
    let out = ttsan().args(["analyze", "--help"]).output().unwrap();
    for flag in ["--ci", "--junit", "--sarif", "--suppressions", "--baseline", "--write-baseline"] {
        assert!(stdout(&out).contains(flag), "analyze --help lacks {flag}");
    }
}
