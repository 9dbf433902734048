//! `ttsan doctor` in mock mode against the real tt-metal library: every line printed, the read
//! lines as not possible in mock mode, exit 0. Skips loudly without the library (fails under
//! CI=true).

mod support;

use support::ttsan;

#[test]
fn doctor_in_mock_mode_prints_every_line() {
    let test = "doctor_in_mock_mode_prints_every_line";
    let Some(root) = support::tt_metal_root(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = ttsan()
        .current_dir(dir.path())
        .env("TT_METAL_CACHE", dir.path().join("cache"))
        .env_remove("LD_PRELOAD")
        .args(["doctor", "--mock", "--chips", "8", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |what: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ").starts_with(what))
            .unwrap_or_else(|| panic!("no `{what}` line in {stdout}"))
            .to_string()
    };
    let version = root.version().unwrap();
    assert!(line("tt-metal build").starts_with("OK") && line("tt-metal build").contains(&format!("ttnn {version}")));
    assert!(line("graph processor").starts_with("OK") && line("graph processor").contains("track_function_start=8"));
    assert!(line("ops named").starts_with("OK") && line("ops named").contains("4 of 4"), "{stdout}");
    assert!(line("allocations in ops").starts_with("OK"), "{stdout}");
    assert!(line("circular buffers").starts_with("OK") && line("circular buffers").contains("(0,0)-(3,1)"), "{stdout}");
    let digests = line("guard digests");
    assert!(
        digests.starts_with("N/A") && digests.contains("not possible in mock mode") && digests.contains("8 of 8 chips"),
        "{digests}"
    );
    // The write through the freed buffer's address really ran (the guard took that buffer's
    // place, the library accepted the write on the last chip); only its effect needs hardware.
    let planted = line("planted corruption");
    assert!(planted.starts_with("N/A") && planted.contains("not possible in mock mode"), "{planted}");
    assert!(planted.contains("into the guard on chip 7 inside doctor::stale_write"), "{planted}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
}

#[test]
fn doctor_without_the_library_says_why_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = ttsan().args(["doctor", "--mock", "--root"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tt-metal library is unusable"));
}
