//! `ttsan run gpt-oss` end to end through the binary: the README scenario, the JSON
//! `modules[]`, and one-line usage errors with exit 2.

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::{ttsan, BIN};

/// The release binary next to the test's target dir, when it is already built.
fn release() -> Option<PathBuf> {
    let debug = PathBuf::from(BIN);
    let release = debug.parent()?.parent()?.join("release").join("ttsan");
    release.exists().then_some(release)
}

#[test]
fn readme_scenario_reports_the_late_writes_and_writes_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("sink-map.html");
    let json = dir.path().join("report.json");
    // The README's seq-len 2048 with a built release binary; a short prefill shows the same
    // effect in debug builds.
    let (bin, seq) = match release() {
        Some(r) => (r, "2048"),
        None => (PathBuf::from(BIN), "32"),
    };
    let out = Command::new(bin)
        .args(["run", "gpt-oss", "--mesh", "1x8", "--layers", "1", "--mode", "prefill", "--seq-len", seq])
        .args(["--modules", "experts,attention", "--inject", "ccl-stale-scratch", "--html"])
        .arg(&html)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("module experts: PCC"), "{stdout}");
    assert!(stdout.contains("module attention: PCC") && stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("culprit: op #") && stdout.contains("reduce_scatter_minimal_async"), "{stdout}");
    // The peer whose fabric writes landed late: chip 0's ring predecessor.
    assert!(stdout.contains("(call 1) on chip 7"), "{stdout}");
    // The layer, sinks included, is uploaded before any component (the real lifecycle); the
    // late writes hit the attention's input, uploaded into the space the experts freed.
    assert!(stdout.contains("victim:  'layer1.attn.input'"), "{stdout}");
    assert!(!stdout.contains("layer1.attn.sinks"), "{stdout}");
    assert!(stdout.contains("caught in either module order"), "{stdout}");
    assert!(std::fs::metadata(&html).unwrap().len() > 0);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let modules = report["modules"].as_array().unwrap();
    assert_eq!(modules[0]["name"], "experts");
    assert_eq!(modules[1]["name"], "attention");
    assert!(modules[1]["pcc"].as_f64().unwrap() < 0.95);
}

/// `--cases`: a cross-test sequence on one mesh, results labelled by case; `--skew-seed`
/// decides whether `ccl-peer-skew` corrupts (seed 4) or lands on time (seed 2).
#[test]
fn cases_and_skew_seeds_from_the_command_line() {
    let run = |extra: &[&str]| {
        let out = ttsan()
            .args(["run", "gpt-oss", "--mesh", "1x8", "--layers", "1", "--modules", "experts,attention"])
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, stdout) = run(&["--cases", "prefill:32,prefill:64"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("module experts [prefill:32]: PCC"), "{stdout}");
    assert!(stdout.contains("module attention [prefill:64]: PCC"), "{stdout}");
    let skew = ["--mode", "prefill", "--seq-len", "64", "--inject", "ccl-peer-skew", "--skew-seed"];
    let (code, stdout) = run(&[&skew[..], &["2"]].concat());
    assert_eq!(code, Some(0), "seed 2 is on time: {stdout}");
    let (code, stdout) = run(&[&skew[..], &["4"]].concat());
    assert_eq!(code, Some(1), "seed 4 is late: {stdout}");
    assert!(stdout.contains("on device 5") && stdout.contains("on chip 4"), "{stdout}");
}

#[test]
fn bad_input_exits_2_with_one_line() {
    for args in [
        vec!["--modules", "bogus"],
        vec!["--mesh", "8"],
        vec!["--mesh", "0x8"],
        vec!["--modules", "attention", "--inject", "ccl-stale-scratch"],
        vec!["--modules", "attention", "--inject", "ccl-peer-skew"],
        vec!["--modules", "attention", "--inject", "nonsense"],
        vec!["--modules", "attention", "--canary", "bogus"],
        vec!["--modules", "attention", "--guard-role", "weight,nonsense"],
    ] {
        let out = ttsan().args(["run", "gpt-oss", "--mode", "prefill"]).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}

/// Digest mode's guard and canary selection, from flags and from TTSAN_OPTIONS (flags win):
/// the sparse matmul's overrun into free DRAM is seen by default (the past-end canary) and not
/// with weights-only guards and no canaries, the digest mode of before.
#[test]
fn digest_selection_from_flags_and_ttsan_options() {
    let run = |env: &str, extra: &[&str]| {
        let out = ttsan()
            .args(["run", "gpt-oss", "--mesh", "1x8", "--layers", "1", "--mode", "prefill", "--seq-len", "32"])
            .args(["--modules", "experts", "--inject", "sparse-matmul-oob", "--detect", "digests"])
            .args(extra)
            .env("TTSAN_OPTIONS", env)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    let (code, text) = run("", &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("oob-write") && text.contains("ttnn.sparse_matmul"), "{text}");
    assert!(text.contains("(past-end)"), "the past-end canary saw it: {text}");
    let (code, text) = run("guard_role=weight:canary=none", &[]);
    assert_eq!(code, Some(0), "weights only, no canary: {text}");
    let (code, text) = run("guard_role=weight:canary=none", &["--canary", "past-end"]);
    assert_eq!(code, Some(1), "the flag wins over TTSAN_OPTIONS: {text}");
}

/// The default run (no --mode): the whole model's prefill, then its decode steps, clean, with
/// both phases in the JSON report and the logits of every row.
#[test]
fn default_run_prefills_then_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let logits = dir.path().join("logits.npy");
    let out = ttsan()
        .args(["run", "gpt-oss", "--mesh", "1x8", "--decode-steps", "2", "--json"])
        .arg(&json)
        .arg("--logits-out")
        .arg(&logits)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("module model: PCC") && stdout.contains("module model decode: PCC"), "{stdout}");
    // stderr is a pipe here: no progress bar.
    assert!(!String::from_utf8_lossy(&out.stderr).contains("ttsan: ["), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let modes: Vec<&str> = report["modules"].as_array().unwrap().iter().map(|m| m["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["prefill", "decode"]);
    assert!(std::fs::metadata(&logits).unwrap().len() > 34 * 1024 * 4, "34 rows of 1024 f32 logits");
}

/// --plan through the binary: the full 120b on 4x8 is clean; on 1x8 the allocator's refusal is
/// the message and the exit is 1.
#[test]
fn plan_120b_clean_on_4x8_out_of_memory_on_1x8() {
    let base = ["run", "gpt-oss", "--plan", "--config", "120b", "--seq-len", "4096", "--decode-steps", "2"];
    let out = ttsan().args(base).args(["--mesh", "4x8"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("clean"), "{stdout}");
    let out = ttsan().args(base).args(["--mesh", "1x8"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("plan: out of memory") && stderr.contains(".experts."), "{stderr}");
}
