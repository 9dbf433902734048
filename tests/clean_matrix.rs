//! The clean matrix, CI-sized: GPT-OSS with no fault on 1x1 and 1x2 meshes, prefill and decode,
//! every module in one run, every detection mode: not one finding, every run exits 0. The full
//! matrix is `scripts/clean-matrix` (docs/reliability.md).

mod support;

#[test]
fn no_fault_means_no_finding_across_meshes_modes_modules_and_detection() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = 0;
    let mut not_clean = Vec::new();
    for mesh in ["1x1", "1x2"] {
        for mode in ["prefill", "decode"] {
            for detect in ["writes", "digests", "both"] {
                let json = dir.path().join(format!("{mesh}-{mode}-{detect}.json"));
                let out = support::ttsan()
                    .current_dir(dir.path())
                    .args(["run", "gpt-oss", "--mesh", mesh, "--mode", mode, "--modules", "all", "--detect", detect])
                    .arg("--json")
                    .arg(&json)
                    .output()
                    .unwrap();
                runs += 1;
                let report: serde_json::Value = std::fs::read(&json)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(serde_json::Value::Null);
                let findings = report["summary"]["findings"].as_u64();
                if out.status.code() != Some(0) || findings != Some(0) {
                    not_clean.push(format!(
                        "{mesh} {mode} {detect}: exit {:?}, findings {findings:?}: {}",
                        out.status.code(),
                        String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
                    ));
                }
            }
        }
    }
    assert_eq!(runs, 12);
    assert!(not_clean.is_empty(), "{} of {runs} runs not clean:\n{}", not_clean.len(), not_clean.join("\n"));
}
