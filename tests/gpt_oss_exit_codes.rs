//! `ttsan run gpt-oss` exit codes for accuracy and for a bad checkpoint path: a module below
//! its PCC threshold exits 4 (not 0, and not 1, which means memory findings) and is a failed
//! JUnit test case; findings still win; a missing `--checkpoint` directory is a usage error.

mod support;

use support::stderr;

/// Experts then attention with the stale reduce-scatter writes: attention's PCC falls far below
/// 0.95 (the README scenario, at a debug-friendly length).
const FAILING: [&str; 14] = [
    "run",
    "gpt-oss",
    "--mesh",
    "1x8",
    "--layers",
    "1",
    "--mode",
    "prefill",
    "--seq-len",
    "32",
    "--modules",
    "experts,attention",
    "--inject",
    "ccl-stale-scratch",
];

#[test]
fn pcc_failure_without_findings_exits_4() {
    let out = support::ttsan().args(FAILING).args(["--detect", "none"]).output().unwrap();
    let (stdout, stderr) = (support::stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(stdout.contains("module attention: PCC") && stdout.contains("FAIL"), "{stdout}");
    assert!(stderr.contains("PCC below threshold: attention prefill"), "{stderr}");
}

#[test]
fn pcc_failure_is_a_failed_junit_case_and_exits_4_when_findings_are_suppressed() {
    let dir = support::tempdir();
    let junit = dir.path().join("junit.xml");
    let suppressions = dir.path().join("suppressions");
    std::fs::write(&suppressions, "kind=* reason=\"the test looks at the PCC verdict alone\"\n").unwrap();
    let out = support::ttsan()
        .args(FAILING)
        .arg("--junit")
        .arg(&junit)
        .arg("--suppressions")
        .arg(&suppressions)
        .output()
        .unwrap();
    let (stdout, stderr) = (support::stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(stdout.contains("FAIL (checks)") && stdout.contains("FAIL attention prefill: PCC"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let case = |name: &str| {
        let open = format!(r#"<testcase classname="ttsan.gpt-oss.modules" name="{name}""#);
        let at = xml.find(&open).unwrap_or_else(|| panic!("no test case {name}:\n{xml}"));
        let end = xml[at..].find("</testcase>").map(|e| at + e).unwrap_or(xml.len());
        xml[at..end].to_string()
    };
    assert!(case("attention prefill").contains(r#"<failure type="check" message="PCC"#), "{xml}");
    assert!(!case("experts prefill").contains("<failure"), "{xml}");
}

#[test]
fn findings_win_over_a_pcc_failure() {
    let dir = support::tempdir();
    let junit = dir.path().join("junit.xml");
    let out = support::ttsan().args(FAILING).arg("--junit").arg(&junit).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}\n{}", support::stdout(&out), stderr(&out));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"name="attention prefill""#) && xml.contains(r#"<failure type="check""#), "{xml}");
}

#[test]
fn missing_checkpoint_directory_exits_2_with_one_line() {
    let dir = support::tempdir();
    let missing = dir.path().join("no-such-checkpoint");
    for path in [missing.clone(), dir.path().to_path_buf()] {
        let out = support::ttsan()
            .args(["run", "gpt-oss", "--mesh", "1x8", "--checkpoint"])
            .arg(&path)
            .args(["--input-ids", "1,2,3"])
            .output()
            .unwrap();
        let stderr = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("--checkpoint"), "{stderr}");
    }
}
