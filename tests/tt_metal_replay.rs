//! `ttsan tt-metal replay` against the real tt-metal library in mock mode.
//!
//! The expected addresses are the ones measured with the real library and recorded in
//! shared/reference/tt-metal-mock-mode.md. Tests that need the library skip loudly when it is
//! absent (run scripts/fetch-ttnn), and fail instead under CI=true, where it must have been
//! fetched.

mod support;

use support::ttsan;

use std::path::Path;
use std::process::Output;
use ttsan_events::trace::read_all;
use ttsan_events::{Arch, CaptureStart, Event, Space};

fn replay(dir: &Path, script: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("script.txt"), script).unwrap();
    ttsan().current_dir(dir).args(["tt-metal", "replay", "script.txt"]).args(extra).output().unwrap()
}

fn lines(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "ttsan failed ({:?}): {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// Replays `script` with `args` and a trace, asserts it printed `want`, and returns the
/// CaptureStart the trace must open with.
fn replay_traced(dir: &Path, script: &str, args: &[&str], want: &[String]) -> CaptureStart {
    let mut args = args.to_vec();
    args.extend(["--trace", "trace.ttsan"]);
    let out = replay(dir, script, &args);
    assert_eq!(lines(&out), want);
    let (events, _) = read_all(dir.join("trace.ttsan")).unwrap();
    let Some(Event::CaptureStart(start)) = events.into_iter().next() else { panic!("no CaptureStart") };
    start
}

fn assert_no_litter(dir: &Path) {
    // tt-metal writes generated/fabric/*.yaml into the cwd unless the driver moves it away.
    assert!(!dir.join("generated").exists(), "tt-metal left generated/ in the caller's directory");
}

const WH_SCRIPT: &str = "\
# first DRAM buffer, a second one after it, an L1 buffer (top-down), reuse after free
a d1 dram 131072 2048
a d2 dram 1048576 2048
a w l1 32768 2048
f d1
a d3 dram 131072 2048
a huge dram 100000000000 2048
f d2
f w
f d3
";

#[test]
fn wormhole_one_chip_matches_the_measured_addresses_and_traces_them() {
    let Some(_) = support::tt_metal_root("wormhole_one_chip_matches_the_measured_addresses_and_traces_them") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = replay(dir.path(), WH_SCRIPT, &["--arch", "wormhole", "--chips", "1", "--trace", "run.ttsan"]);
    let got = lines(&out);
    let want: Vec<String> = [
        format!("d1 {}", 0x10_0040),
        format!("d2 {}", 0x10_3040),
        format!("w {}", 0x16_d800),
        "d1 FREED".into(),
        format!("d3 {}", 0x10_0040),
        "huge OOM".into(),
        "d2 FREED".into(),
        "w FREED".into(),
        "d3 FREED".into(),
    ]
    .into();
    assert_eq!(got, want);
    assert_no_litter(dir.path());

    let (events, stats) = read_all(dir.path().join("run.ttsan")).unwrap();
    assert!(!stats.is_damaged(), "{stats:?}");
    let Some(Event::CaptureStart(start)) = events.first() else { panic!("trace does not start with CaptureStart") };
    assert_eq!(start.geometry.arch, Arch::WormholeB0);
    assert_eq!(start.geometry.dram_banks, 12);
    assert_eq!(start.geometry.l1_banks(), 64);
    assert_eq!(start.geometry.dram_unreserved_base, 0x10_0040);
    assert_eq!(start.geometry.l1_size, 1_499_136);
    assert_eq!(start.mesh.len(), 1);
    // Every printed address is in the trace, under the script's name, in order.
    let allocs: Vec<(String, u64, Space, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::BufferAlloc(b) => Some((b.name.clone(), b.address, b.space, b.id)),
            _ => None,
        })
        .collect();
    let names: Vec<(&str, u64, Space)> = allocs.iter().map(|(n, a, s, _)| (n.as_str(), *a, *s)).collect();
    assert_eq!(
        names,
        vec![
            ("d1", 0x10_0040, Space::Dram),
            ("d2", 0x10_3040, Space::Dram),
            ("w", 0x16_d800, Space::L1),
            ("d3", 0x10_0040, Space::Dram)
        ]
    );
    let freed: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::BufferFree(f) => Some(f.id),
            _ => None,
        })
        .collect();
    let id = |name: &str| allocs.iter().find(|a| a.0 == name).map(|a| a.3).unwrap();
    assert_eq!(freed, vec![id("d1"), id("d2"), id("w"), id("d3")]);
    assert!(events.iter().any(|e| matches!(e, Event::Mark { text } if text.starts_with("huge OOM"))));
    assert!(matches!(events.last(), Some(Event::CaptureEnd { dropped: 0 })));
}

#[test]
fn wormhole_t3k_eight_chips_shares_one_allocator() {
    let Some(_) = support::tt_metal_root("wormhole_t3k_eight_chips_shares_one_allocator") else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = "a d dram 1048576 2048\na w l1 65536 2048\nf d\nf w\n";
    let want = [format!("d {}", 0x10_0040), format!("w {}", 0x16_d800), "d FREED".into(), "w FREED".into()];
    let start = replay_traced(dir.path(), script, &["--chips", "8"], &want);
    assert_eq!((start.mesh.rows, start.mesh.cols, start.mesh.len()), (2, 4, 8));
    // T3K keeps a worker row for dispatch: 8x7 compute cores.
    assert_eq!(start.geometry.l1_banks(), 56);
    assert_no_litter(dir.path());
}

#[test]
fn blackhole_one_chip_matches_the_measured_addresses() {
    let Some(_) = support::tt_metal_root("blackhole_one_chip_matches_the_measured_addresses") else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = "a d dram 131072 2048\na w l1 32768 2048\nf d\na e dram 131072 2048\n";
    let want = [format!("d {}", 0x10_0080), format!("w {}", 0x17_f800), "d FREED".into(), format!("e {}", 0x10_0080)];
    let start = replay_traced(dir.path(), script, &["--arch", "blackhole"], &want);
    assert_eq!(start.geometry.arch, Arch::Blackhole);
    assert_eq!((start.geometry.dram_banks, start.geometry.dram_alignment), (8, 64));
}

#[test]
fn galaxy_thirty_two_chips_opens_as_an_8x4_mesh() {
    let Some(_) = support::tt_metal_root("galaxy_thirty_two_chips_opens_as_an_8x4_mesh") else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = "a d dram 1048576 2048\na w l1 65536 2048\n";
    let want = [format!("d {}", 0x10_0040), format!("w {}", 0x16_d800)];
    let start = replay_traced(dir.path(), script, &["--chips", "32"], &want);
    assert_eq!(start.mesh.len(), 32);
    // 6u_cluster_desc.yaml opens as 8 rows by 4 columns (not 4x8).
    assert_eq!((start.mesh.rows, start.mesh.cols), (8, 4));
    // Galaxy dispatches from ethernet cores: the whole harvested 8x9 grid computes.
    assert_eq!(start.geometry.l1_banks(), 72);
}

#[test]
fn l1_small_interleaved_is_refused_by_the_real_allocator() {
    let Some(_) = support::tt_metal_root("l1_small_interleaved_is_refused_by_the_real_allocator") else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = replay(dir.path(), "a s l1_small 4096 2048\na d dram 4096 2048\n", &[]);
    assert_eq!(lines(&out), vec!["s OOM".to_string(), format!("d {}", 0x10_0040)]);
}

/// A script that exercises reuse, top-down L1, refusals of several kinds and odd page sizes.
const MIXED_SCRIPT: &str = "\
a d1 dram 131072 2048
a d2 dram 1048576 2048
a w l1 32768 2048
f d1
a d3 dram 131072 2048
a huge dram 100000000000 2048
a s l1_small 4096 2048
a w2 l1 65536 1024
a odd dram 100000 3000
f d2
a d4 dram 4096 32
a w3 l1 1000000 4096
f w
a w4 l1 2048 2048
f d3
";

#[test]
fn model_answers_like_the_real_library() {
    let Some(_) = support::tt_metal_root("model_answers_like_the_real_library") else { return };
    let dir = tempfile::tempdir().unwrap();
    for args in [
        ["--arch", "wormhole", "--chips", "1"],
        ["--arch", "wormhole", "--chips", "8"],
        ["--arch", "blackhole", "--chips", "1"],
    ] {
        let real = lines(&replay(dir.path(), MIXED_SCRIPT, &args));
        let mut with_model = args.to_vec();
        with_model.push("--model");
        let model = lines(&replay(dir.path(), MIXED_SCRIPT, &with_model));
        assert_eq!(real.len(), 15, "{args:?}: {real:?}");
        assert_eq!(model, real, "{args:?}: model and real library disagree");
    }
}

#[test]
fn freeing_a_refused_allocation_exits_2() {
    let Some(_) = support::tt_metal_root("freeing_a_refused_allocation_exits_2") else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = replay(dir.path(), "a huge dram 100000000000 2048\nf huge\n", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "huge OOM\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no buffer"));
}

#[test]
fn bad_script_exits_2_naming_the_line() {
    // Parsing happens before the library is touched: no skip needed.
    let dir = tempfile::tempdir().unwrap();
    let out = replay(dir.path(), "a x dram 4096 2048\na y hbm 1 1\n", &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert!(out.stdout.is_empty());

    let out = replay(dir.path(), "f never\n", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never allocated"));
}

#[test]
fn missing_library_exits_2_with_the_fetch_hint() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-ttnn-here");
    let out = replay(dir.path(), "a x dram 4096 2048\n", &["--ttnn-root", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tt-metal library not found at") && err.contains("scripts/fetch-ttnn"), "{err}");
    assert!(err.contains("no-ttnn-here"), "{err}");
}
