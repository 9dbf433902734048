//! `ttsan diff`: two runs of the same GPT-OSS workload on the simulated mesh, compared op by op.

mod support;

use std::path::Path;
use support::{text, ttsan_in};

fn record(dir: &Path, trace: &str, extra: &[&str]) {
    let mut args = vec!["run", "gpt-oss", "--digest-outputs", "--detect", "both", "--trace", trace];
    args.extend_from_slice(extra);
    let out = ttsan_in(dir, &args);
    assert!(dir.join(trace).is_file(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_first_op_whose_outputs_differ_is_named_with_chip_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    record(d, "a.ttsan", &[]);
    record(d, "b.ttsan", &[]);
    record(d, "bad.ttsan", &["--inject", "semaphore-reuse"]);

    let same = ttsan_in(d, &["diff", "a.ttsan", "b.ttsan"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(text(&same).contains("no difference: 251 ops"), "{}", text(&same));

    let differ = ttsan_in(d, &["diff", "a.ttsan", "bad.ttsan"]);
    let t = text(&differ);
    assert_eq!(differ.status.code(), Some(1), "{t}");
    assert!(t.contains("first difference after op #13 `ttnn.experimental.all_gather_async` (call 1"), "{t}");
    assert!(t.contains("guarded buffer `ccl.rs0.sem0` on chip 0: 1 of 56 page(s) differ (page 0)"), "{t}");
    assert!(t.contains("written only in run B:\n    chip 0 l1 core (0,0)"), "{t}");
}

#[test]
fn a_run_without_digests_is_never_called_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ttsan_in(d, &["run", "gpt-oss", "--trace", "plain.ttsan"]);
    assert!(d.join("plain.ttsan").is_file(), "{}", text(&out));
    let out = ttsan_in(d, &["diff", "plain.ttsan", "plain.ttsan"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("run A has no output or guard digests"), "{}", text(&out));
    let out = ttsan_in(d, &["diff", "plain.ttsan", "missing.ttsan"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// A timing-dependent fault: cross-chip skew whose landing depends on `--skew-seed`. The same
/// workload corrupts with one seed and not with another; `ttsan diff` names the first op after
/// which the runs differ, the receiving chip and its pages, and the late record from the peer.
#[test]
fn two_runs_of_a_timing_dependent_fault_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let skew = |trace: &str, seed: &str| {
        let out = ttsan_in(
            d,
            &[
                "run",
                "gpt-oss",
                "--mesh",
                "1x8",
                "--layers",
                "1",
                "--mode",
                "prefill",
                "--seq-len",
                "256",
                "--modules",
                "experts,attention",
                "--inject",
                "ccl-peer-skew",
                "--skew-seed",
                seed,
                "--detect",
                "digests",
                "--digest-outputs",
                "--trace",
                trace,
            ],
        );
        assert!(d.join(trace).is_file(), "{}", text(&out));
        out.status.code()
    };
    assert_eq!(skew("late.ttsan", "4"), Some(1), "seed 4 corrupts");
    assert_eq!(skew("ok.ttsan", "2"), Some(0), "seed 2 does not");
    assert_eq!(skew("ok2.ttsan", "2"), Some(0));

    let out = ttsan_in(d, &["diff", "ok.ttsan", "late.ttsan"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("first difference after op #138 `ttnn.experimental.all_gather_async`"), "{t}");
    assert!(t.contains("guarded buffer `layer1.attn.input` on chip 5: 128 of 128 page(s) differ"), "{t}");
    assert!(t.contains("only in run B: op record `ttnn.experimental.reduce_scatter_minimal_async` on chip 4"), "{t}");

    let same = ttsan_in(d, &["diff", "ok.ttsan", "ok2.ttsan"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(text(&same).contains("no difference"), "{}", text(&same));
}
