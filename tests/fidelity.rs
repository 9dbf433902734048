//! Fidelity of the allocator model: thousands of random request sequences run through the real
//! tt-metal allocator (`ttsan tt-metal replay`, mock mode) and through the model
//! (`ttsan_inference::alloc::replay::run_model`) must give identical answers, line by line.
//!
//! tt-metal cannot be reconfigured many times in one process, so all sequences of one
//! configuration go into one script. Every sequence ends by freeing what it allocated, which
//! returns the allocator to its initial state before the next one starts.
//!
//! Needs the real library (`scripts/fetch-ttnn`): without it the test skips loudly, except
//! under `CI=true`, where it fails.

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use support::{skip, ttsan};
use ttsan_events::{Arch, Space};
use ttsan_inference::alloc::replay::run_model;
use ttsan_inference::alloc::script::{parse, Request, Response};
use ttsan_inference::alloc::{AllocRequest, Allocator, AllocatorConfig};

/// Sequences per configuration.
const SEQUENCES: usize = 2000;
const MIB: u64 = 1 << 20;

/// SplitMix64: small, seedable and good enough to draw test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi]`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// Log-uniform in `[lo, hi]`, so that small and huge values are both common.
    fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo.max(1) as f64).ln(), (hi as f64).ln());
        let x = a + (b - a) * (self.next() as f64 / u64::MAX as f64);
        (x.exp() as u64).clamp(lo, hi)
    }
}

fn page_size(rng: &mut Rng) -> u64 {
    match rng.range(0, 9) {
        0..=5 => 1 << rng.range(5, 16),
        6 | 7 => rng.range(1, 2048) * 32,
        8 => rng.range(2, 4096) * 16,
        _ => rng.range(32, 65_536),
    }
}

/// One request line plus, for allocations, enough to track what stays live.
fn alloc_line(id: &str, space: Space, size: u64, page: u64) -> String {
    format!("a {id} {} {size} {page}\n", space.as_str())
}

/// Appends one random sequence to `script`, returning how many requests it added. The model
/// decides which allocations succeed, so that frees only name live buffers; if the model is
/// wrong about one, the real replay will say so.
fn sequence(rng: &mut Rng, seq: usize, model: &mut Allocator, script: &mut String) -> usize {
    // Mostly short sequences; some long ones build up deep fragmentation.
    let len = if rng.chance(10) { rng.range(100, 400) } else { rng.range(4, 80) } as usize;
    let mut live: Vec<(String, Space, u64)> = Vec::new();
    let mut count = 0;
    for n in 0..len {
        if !live.is_empty() && rng.chance(30) {
            let (id, space, addr) = live.swap_remove(rng.range(0, live.len() as u64 - 1) as usize);
            model.deallocate(space, addr);
            let _ = writeln!(script, "f {id}");
            count += 1;
            continue;
        }
        let id = format!("s{seq}n{n}");
        let space = match rng.range(0, 99) {
            0..=49 => Space::Dram,
            50..=96 => Space::L1,
            _ => Space::L1Small,
        };
        let page = page_size(rng);
        let max_size = if space == Space::Dram { 16 << 30 } else { 128 * MIB };
        let mut size = rng.log_range(page, max_size) / page * page;
        if rng.chance(1) {
            size = 0;
        } else if rng.chance(1) {
            size += rng.range(1, page - 1);
        }
        script.push_str(&alloc_line(&id, space, size, page));
        count += 1;
        if let Ok(addr) = model.allocate(&AllocRequest::interleaved(space, size, page)) {
            live.push((id, space, addr));
        }
    }
    while !live.is_empty() {
        let (id, space, addr) = live.swap_remove(rng.range(0, live.len() as u64 - 1) as usize);
        model.deallocate(space, addr);
        let _ = writeln!(script, "f {id}");
        count += 1;
    }
    count
}

/// The script of one configuration and the number of sequences and requests in it.
fn script_for(arch: Arch, chips: u32, seed: u64) -> (String, usize, usize) {
    let mut rng = Rng(seed);
    let mut model = Allocator::new(AllocatorConfig::mock(arch, chips).expect("mock configuration"));
    let mut script = format!("# fidelity script: {arch}, {chips} chip(s), seed {seed}\n");
    let mut requests = 0;
    for seq in 0..SEQUENCES {
        let _ = writeln!(script, "# sequence {seq}");
        requests += sequence(&mut rng, seq, &mut model, &mut script);
    }
    (script, SEQUENCES, requests)
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ttnn_root() -> PathBuf {
    std::env::var_os("TTSAN_TTNN_ROOT").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target/ttnn/root"))
}

fn parse_response(line: &str) -> Option<Response> {
    let (id, rest) = line.trim().split_once(' ')?;
    Some(match rest {
        "OOM" => Response::Oom(id.to_string()),
        "FREED" => Response::Freed(id.to_string()),
        addr => Response::Address(id.to_string(), addr.parse().ok()?),
    })
}

/// Where each request line sits in the script, for context in failure messages.
fn request_lines(script: &str) -> Vec<(usize, &str)> {
    script
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| (i + 1, l))
        .collect()
}

fn sequence_of(script: &str, line_no: usize) -> &str {
    script.lines().take(line_no).filter(|l| l.starts_with("# sequence")).last().unwrap_or("# sequence ?")
}

fn mismatch_report(
    script: &str,
    reqs: &[Request],
    real: &[Response],
    model: &[Response],
    at: usize,
    script_path: &Path,
) -> String {
    let lines = request_lines(script);
    let mut msg = format!(
        "first difference at request {at} (script line {}, {}): real `{}`, model `{}`\ncontext (request | real | model):\n",
        lines[at].0,
        sequence_of(script, lines[at].0),
        real.get(at).map_or("<missing>".into(), ToString::to_string),
        model.get(at).map_or("<missing>".into(), ToString::to_string),
    );
    let first = at.saturating_sub(12);
    let last = (at + 2).min(reqs.len() - 1);
    for (i, (_, line)) in lines.iter().enumerate().take(last + 1).skip(first) {
        let mark = if i == at { ">>" } else { "  " };
        let r = real.get(i).map_or("<missing>".into(), ToString::to_string);
        let m = model.get(i).map_or("<missing>".into(), ToString::to_string);
        let _ = writeln!(msg, "{mark} {line:<50} | {r:<24} | {m}");
    }
    let _ = write!(msg, "script kept at {}", script_path.display());
    msg
}

fn check(arch: Arch, chips: u32, seed: u64) {
    let root = ttnn_root();
    if !root.join("ttnn/build/lib/libtt_metal.so").is_file() {
        skip(
            "allocator fidelity test",
            &format!("the real tt-metal library is absent under {} (run scripts/fetch-ttnn)", root.display()),
        );
        return;
    }
    let (script, sequences, count) = script_for(arch, chips, seed);
    let reqs = parse(&script).expect("generated script parses");
    assert_eq!(reqs.len(), count);
    let model = run_model(&reqs, arch, chips).expect("model runs the generated script");

    // For debugging a mismatch by hand: keep the script and the model's answers.
    if let Some(keep) = std::env::var_os("TTSAN_FIDELITY_KEEP") {
        let base = Path::new(&keep).join(format!("fidelity-{arch}-{chips}"));
        let answers: String = model.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(base.with_extension("script"), &script).expect("keep script");
        std::fs::write(base.with_extension("model"), answers).expect("keep model answers");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(format!("fidelity-{arch}-{chips}.script"));
    std::fs::write(&path, &script).expect("write script");
    let out = ttsan()
        .args(["tt-metal", "replay"])
        .arg(&path)
        .args(["--arch", &arch.to_string(), "--chips", &chips.to_string()])
        .env("TTSAN_TTNN_ROOT", &root)
        .current_dir(dir.path())
        .output()
        .expect("run ttsan tt-metal replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines answered before any failure still locate the first difference: a free the model
    // thinks valid makes the real replay stop, and the cause is the divergence before it.
    let real: Vec<Response> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| parse_response(l).unwrap_or_else(|| panic!("unreadable replay line `{l}`")))
        .collect();

    let first_diff = (0..reqs.len()).find(|&i| real.get(i) != model.get(i));
    if let Some(at) = first_diff {
        let kept = dir.keep().join(path.file_name().unwrap_or_default());
        let tail: String =
            stderr.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        panic!(
            "{arch} x{chips}: {}\nreplay exit: {}, stderr tail:\n{tail}",
            mismatch_report(&script, &reqs, &real, &model, at, &kept),
            out.status
        );
    }
    assert!(out.status.success(), "ttsan tt-metal replay failed ({}):\n{stderr}", out.status);
    assert_eq!(real.len(), model.len(), "the real replay answered more lines than there are requests");
    let ooms = model.iter().filter(|r| matches!(r, Response::Oom(_))).count();
    let addrs = model.iter().filter(|r| matches!(r, Response::Address(..))).count();
    eprintln!(
        "fidelity {arch} x{chips}: {sequences} sequences, {count} requests compared, all identical \
         ({addrs} addresses, {ooms} refusals)"
    );
}

#[test]
fn wormhole_one_chip_matches_the_real_allocator() {
    check(Arch::WormholeB0, 1, 0x5EED_0001);
}

#[test]
fn wormhole_eight_chips_matches_the_real_allocator() {
    check(Arch::WormholeB0, 8, 0x5EED_0008);
}

#[test]
fn blackhole_one_chip_matches_the_real_allocator() {
    check(Arch::Blackhole, 1, 0x5EED_B001);
}

/// The generator itself: sequences must leave nothing allocated, mix spaces and include
/// refusals, or the comparison above would prove little.
#[test]
fn generated_scripts_exercise_the_allocator() {
    let (script, sequences, count) = script_for(Arch::WormholeB0, 1, 7);
    let reqs = parse(&script).expect("generated script parses");
    assert_eq!(reqs.len(), count);
    assert!(count > sequences * 10, "{count} requests in {sequences} sequences");
    let answers = run_model(&reqs, Arch::WormholeB0, 1).expect("model runs the script");
    let ooms = answers.iter().filter(|r| matches!(r, Response::Oom(_))).count();
    assert!(ooms > 100 && ooms < count / 4, "{ooms} refusals of {count}");
    let spaces = |s: Space| reqs.iter().filter(|r| matches!(r, Request::Alloc { space, .. } if *space == s)).count();
    assert!(spaces(Space::Dram) > 1000 && spaces(Space::L1) > 1000 && spaces(Space::L1Small) > 10);
    // Each sequence frees all it allocated, so the model ends where it began.
    let mut model = Allocator::new(AllocatorConfig::mock(Arch::WormholeB0, 1).expect("mock configuration"));
    let mut rng = Rng(7);
    let mut scratch = String::new();
    for seq in 0..50 {
        sequence(&mut rng, seq, &mut model, &mut scratch);
        for space in [Space::Dram, Space::L1] {
            assert_eq!(model.statistics(space).total_allocated, 0, "sequence {seq} left {space} allocated");
        }
    }
}
