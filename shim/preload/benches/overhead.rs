//! Overhead of the preload shim on tt-metal's allocate/free path.
//!
//! `cargo bench -p ttsan-preload --bench overhead [-- ITERATIONS ROUNDS]` compiles
//! tests/cpp/preload_prog.cpp against the real library (run scripts/fetch-ttnn first), then runs
//! its `bench` mode (MeshBuffer::create + deallocate in a loop, one mock Wormhole chip) without
//! the shim, with it, and with it but without backtraces, interleaved round by round so that
//! machine load hits all three alike. Prints the median per allocate/free pair of wall time,
//! of the calling thread's CPU time (what the shim adds to each tt-metal call) and of the whole
//! process's CPU time (that plus the writer thread), and the median and quartiles of the ratios
//! to the run without the shim taken round by round.
//!
//! Then the same for ops: the program's `bench-ops` mode announces ops to every registered
//! graph processor as ttnn does (a top-level op with one nested device operation, no
//! allocation), which without the shim is a walk over an empty list: what the shim's processor
//! adds per op.
//!
//! With `TTSAN_OVERHEAD_BASELINE=/path/to/an/older/libttsan_preload.so` it also runs that shim
//! (with and without stacks) in the same rounds, for a before/after comparison under the same
//! load.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    if let Err(e) = run() {
        eprintln!("overhead bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let iterations: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(7);
    let root = std::env::var_os("TTSAN_TTNN_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ttnn/root"));
    if !root.join("ttnn/build/lib/libtt_metal.so").is_file() {
        return Err(format!("no tt-metal library under {} (run scripts/fetch-ttnn)", root.display()));
    }
    let shim = shim()?;
    let work = std::env::temp_dir().join(format!("ttsan-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let prog = compile(&root, &work)?;
    println!("shim: {}", shim.display());
    let baseline = std::env::var_os("TTSAN_OVERHEAD_BASELINE").map(PathBuf::from);
    if let Some(b) = &baseline {
        if !b.is_file() {
            return Err(format!("TTSAN_OVERHEAD_BASELINE: no file {}", b.display()));
        }
        println!("baseline shim: {}", b.display());
    }
    let mut configs: Vec<(&str, Option<(&Path, &str)>)> =
        vec![("without shim", None), ("with shim", Some((&shim, "16"))), ("shim, no stacks", Some((&shim, "0")))];
    if let Some(b) = &baseline {
        configs.push(("baseline shim", Some((b, "16"))));
        configs.push(("baseline, no stacks", Some((b, "0"))));
    }
    let run = Run { root: &root, prog: &prog, work: &work, configs: &configs, rounds };
    println!("{iterations} allocate/free pairs per run, {rounds} rounds:");
    run.table("bench", iterations, "pair")?;
    println!("{iterations} ops (each with one nested device operation) per run, {rounds} rounds:");
    run.table("bench-ops", iterations, "op")?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// One side-by-side measurement: every configuration once per round, rounds interleaved.
struct Run<'a> {
    root: &'a Path,
    prog: &'a Path,
    work: &'a Path,
    configs: &'a [(&'a str, Option<(&'a Path, &'a str)>)],
    rounds: usize,
}

impl Run<'_> {
    /// Runs the program's `mode` with `n` iterations in every configuration and prints, per
    /// configuration, the median ns per `unit` and the ratios to the run without the shim.
    fn table(&self, mode: &str, n: u64, unit: &str) -> Result<(), String> {
        // samples[config][measure]: wall, calling thread's CPU, whole process's CPU.
        let mut samples: Vec<[Vec<f64>; 3]> = vec![Default::default(); self.configs.len()];
        for _ in 0..self.rounds {
            for (i, (_, with)) in self.configs.iter().enumerate() {
                let m = once(self.root, self.prog, self.work, *with, mode, n)?;
                for (k, v) in m.into_iter().enumerate() {
                    samples[i][k].push(v);
                }
            }
        }
        // Ratios are taken round by round (each configuration against the run without the shim
        // in the same round, seconds apart) and their median reported with the quartiles: on a
        // shared machine the speed of the whole box drifts between rounds by more than the shim
        // costs, and a ratio of medians taken over different rounds carries that drift.
        let medians: Vec<[f64; 3]> = samples
            .iter()
            .map(|s| [median(&mut s[0].clone()), median(&mut s[1].clone()), median(&mut s[2].clone())])
            .collect();
        println!("  {:<20} {:>26} {:>26} {:>26}", "", "wall", "calling-thread CPU", "process CPU");
        for (i, (name, _)) in self.configs.iter().enumerate() {
            let cell = |k: usize| {
                let mut ratios: Vec<f64> =
                    samples[i][k].iter().zip(&samples[0][k]).map(|(with, without)| with / without).collect();
                let (q1, q2, q3) = quartiles(&mut ratios);
                format!("{:>6.0} ns {:.2}x [{:.2}-{:.2}]", medians[i][k], q2, q1, q3)
            };
            println!("  {name:<20} {:>26} {:>26} {:>26}", cell(0), cell(1), cell(2));
        }
        println!("  (median ns per {unit}; median of the per-round ratios to the run without the shim, [quartiles])");
        Ok(())
    }
}

/// The shim built for this bench (`cargo bench` builds the cdylib in the same profile).
fn shim() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let deps = exe.parent().ok_or("no bench directory")?;
    [deps.join("libttsan_preload.so"), deps.join("../libttsan_preload.so")]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p)
        .ok_or_else(|| format!("libttsan_preload.so not found near {}", deps.display()))
}

fn compile(root: &Path, work: &Path) -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cpp/preload_prog.cpp");
    let exe = work.join("preload_prog");
    let lib = root.join("ttnn/build/lib");
    let out = Command::new("g++")
        .args(["-std=c++20", "-O2", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg(format!("-L{}", lib.display()))
        .args(["-l:_ttnncpp.so", "-ltt_metal"])
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", root.join("ttnn.libs").display()))
        .output()
        .map_err(|e| format!("g++: {e}"))?;
    if !out.status.success() {
        return Err(format!("g++ failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(exe)
}

/// One run of the program's `mode`: ns per iteration of wall time, calling-thread CPU and
/// process CPU.
/// `with`: the shim to preload and the stack depth it records, or `None` for the bare program.
fn once(
    root: &Path,
    prog: &Path,
    work: &Path,
    with: Option<(&Path, &str)>,
    mode: &str,
    n: u64,
) -> Result<[f64; 3], String> {
    let trace = work.join("bench.ttsan");
    let _ = std::fs::remove_file(&trace);
    let mut cmd = Command::new(prog);
    cmd.current_dir(work)
        .args([mode, "1", &n.to_string()])
        .env("TT_METAL_RUNTIME_ROOT", root.join("ttnn"))
        .env("TT_METAL_SHM_TRACKING_DISABLED", "1")
        .env("OMPI_MCA_btl", "self")
        .env("TT_METAL_CACHE", work.join("cache"))
        .env("TT_METAL_LOGGER_LEVEL", "error")
        .env_remove("LD_PRELOAD")
        .env_remove("TTSAN_TRACE");
    if let Some((shim, depth)) = with {
        cmd.env("LD_PRELOAD", shim).env("TTSAN_TRACE", &trace).env("TTSAN_STACK_DEPTH", depth);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .ok_or_else(|| format!("no BENCH line from the program: {text} {}", String::from_utf8_lossy(&out.stderr)))?;
    let value = |key: &str| -> Result<f64, String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {key} in `{line}`"))
    };
    Ok([value("ns_per_iteration=")?, value("thread_cpu_ns=")?, value("process_cpu_ns=")?])
}

fn median(v: &mut [f64]) -> f64 {
    quartiles(v).1
}

/// First quartile, median and third quartile (nearest rank).
fn quartiles(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: usize| v[(v.len() - 1) * q / 4];
    (at(1), at(2), at(3))
}
