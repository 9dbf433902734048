//! Golden tests: the text and JSON reports of each hand-built fixture trace.
//!
//! Regenerate with `UPDATE_GOLDEN=1 cargo test --test golden_reports` and review the diff.

mod support;

use support::{stdout, test_path, ttsan, write_trace};

#[test]
fn reports_match_golden_files() {
    let dir = support::tempdir();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for (name, events) in ttsan_test_support::fixtures::all() {
        let trace = dir.path().join(format!("{name}.ttsan"));
        write_trace(&trace, &events);
        for (format, ext) in [("text", "txt"), ("json", "json")] {
            let mut cmd = ttsan();
            cmd.arg("analyze").arg(&trace).args(["--format", format]);
            if name == "leak" {
                cmd.arg("--leaks");
            }
            let out = cmd.output().expect("run ttsan");
            let expected_code = if name == "clean" { 0 } else { 1 };
            assert_eq!(out.status.code(), Some(expected_code), "{name} {format}: {}", support::stderr(&out));
            let golden = test_path(&format!("golden/{name}.{ext}"));
            let got = stdout(&out);
            if update {
                std::fs::write(&golden, &got).expect("write golden");
                continue;
            }
            let want = std::fs::read_to_string(&golden).unwrap_or_default();
            if got != want {
                mismatches.push(format!("--- {}\n+++ actual\n{got}", golden.display()));
            }
        }
    }
    assert!(mismatches.is_empty(), "reports differ from golden files:\n{}", mismatches.join("\n"));
}
