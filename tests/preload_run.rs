//! `ttsan run -- CMD` over C++ programs that drive the real tt-metal library in mock mode.
//!
//! The program (tests/cpp/preload_prog.cpp) prints every buffer it allocates with the address
//! the real allocator gave it; the tests check each of them against the trace the preload shim
//! wrote. Tests that need the library or g++ skip loudly when they are missing (run
//! scripts/fetch-ttnn) and fail instead under CI=true.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use support::{skip, stderr, ttsan, BIN};
use ttsan_events::trace::{read_all, ReadStats};
use ttsan_events::{Event, Space};

/// The runtime root and the compiled test program, or `None` after a loud SKIPPED line.
fn setup(test: &str) -> Option<(PathBuf, PathBuf)> {
    let root = support::tt_metal_root(test)?;
    match program(root.path()) {
        Ok(p) => Some((root.path().to_path_buf(), p)),
        Err(e) => {
            skip(test, &e);
            None
        }
    }
}

/// Compiles tests/cpp/preload_prog.cpp once per test binary.
fn program(root: &Path) -> Result<PathBuf, String> {
    static PROG: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROG.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cpp/preload_prog.cpp");
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("preload-prog-{}", std::process::id()));
        std::fs::create_dir_all(&out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
        let exe = out_dir.join("preload_prog");
        let lib = root.join("ttnn/build/lib");
        let libs = root.join("ttnn.libs");
        let out = Command::new("g++")
            .args(["-std=c++20", "-O1", "-pthread", "-o"])
            .arg(&exe)
            .arg(&src)
            .arg(format!("-L{}", lib.display()))
            .args(["-l:_ttnncpp.so", "-ltt_metal"])
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .arg(format!("-Wl,-rpath,{}", libs.display()))
            // Only `main`: dladdr names what the dynamic symbol table holds, so the program's
            // own frame gets a name a test can look for (and nothing else of it is exported).
            .arg("-Wl,--export-dynamic-symbol=main")
            .output()
            .map_err(|e| format!("g++ is not available: {e}"))?;
        if !out.status.success() {
            return Err(format!("g++ failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(exe)
    })
    .clone()
}

/// `ttsan run [extra] -- prog mode chips` in a fresh directory with tt-metal's mock-mode env.
fn run(root: &Path, prog: &Path, dir: &Path, extra: &[&str], mode: &[&str]) -> Output {
    ttsan()
        .current_dir(dir)
        .env("TT_METAL_RUNTIME_ROOT", root.join("ttnn"))
        .env("TT_METAL_SHM_TRACKING_DISABLED", "1")
        .env("OMPI_MCA_btl", "self")
        .env("TT_METAL_CACHE", dir.join("cache"))
        .env("TT_METAL_LOGGER_LEVEL", "error")
        .env_remove("LD_PRELOAD")
        .arg("run")
        .args(extra)
        .arg("--")
        .arg(prog)
        .args(mode)
        .output()
        .unwrap()
}

/// One `ALLOC` line of the program.
#[derive(Debug, Clone)]
struct Printed {
    tag: String,
    uid: u64,
    addr: u64,
    size: u64,
    space: Space,
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|w| w.strip_prefix('='))).unwrap_or("")
}

fn printed(out: &Output) -> (Vec<Printed>, Vec<u64>) {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut allocs = Vec::new();
    let mut frees = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("ALLOC ") {
            let space = match field(line, "type") {
                "0" => Space::Dram,
                "1" => Space::L1,
                "3" => Space::L1Small,
                "4" => Space::Trace,
                other => panic!("unexpected buffer type {other}"),
            };
            allocs.push(Printed {
                tag: rest.split_whitespace().next().unwrap_or("").to_string(),
                uid: field(line, "uid").parse().unwrap(),
                addr: field(line, "addr").parse().unwrap(),
                size: field(line, "size").parse().unwrap(),
                space,
            });
        } else if line.starts_with("FREE ") {
            frees.push(field(line, "uid").parse().unwrap());
        }
    }
    (allocs, frees)
}

fn trace(path: &Path) -> (Vec<Event>, ReadStats) {
    read_all(path).unwrap_or_else(|e| panic!("trace {} unreadable: {e}", path.display()))
}

fn allocs_of(events: &[Event]) -> HashMap<u64, &ttsan_events::BufferAlloc> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::BufferAlloc(b) => Some((b.id, b)),
            _ => None,
        })
        .collect()
}

fn freed(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::BufferFree(f) => Some(f.id),
            _ => None,
        })
        .collect()
}

/// Every buffer the program printed is in the trace with its real address, size and type; and
/// every free it printed is recorded.
fn assert_matches_printout(out: &Output, events: &[Event]) {
    let (printed_allocs, printed_frees) = printed(out);
    assert!(!printed_allocs.is_empty(), "the program printed no allocation: {}", String::from_utf8_lossy(&out.stdout));
    let traced = allocs_of(events);
    for p in &printed_allocs {
        let b = traced.get(&p.uid).unwrap_or_else(|| panic!("{} (uid {}) missing from the trace", p.tag, p.uid));
        assert_eq!((b.address, b.size, b.space), (p.addr, p.size, p.space), "{}", p.tag);
        assert_eq!(b.device, None, "{}: a mesh buffer is on every chip", p.tag);
    }
    let traced_frees = freed(events);
    for uid in &printed_frees {
        assert!(traced_frees.contains(uid), "free of uid {uid} missing from the trace");
    }
}

/// The circular-buffer placements in a trace.
fn cbs_of(events: &[Event]) -> Vec<&ttsan_events::CbAlloc> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CbAlloc(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn ops(events: &[Event]) -> Vec<(u64, String, Option<u64>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::OpBegin(o) => Some((o.index, o.name.clone(), o.parent)),
            _ => None,
        })
        .collect()
}

#[test]
fn one_chip_allocations_ops_and_guards_are_traced() {
    let test = "one_chip_allocations_ops_and_guards_are_traced";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &["--trace", "t.ttsan"], &["basic", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SHIM present"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ttsan: clean"), "{}", String::from_utf8_lossy(&out.stdout));

    let (events, stats) = trace(&dir.path().join("t.ttsan"));
    assert!(!stats.is_damaged(), "{stats:?}");
    let Some(Event::CaptureStart(start)) = events.first() else { panic!("the trace does not start with CaptureStart") };
    assert!(start.producer.contains("ttsan-preload"), "{}", start.producer);
    assert!(start.producer.contains("read from the allocator"), "{}", start.producer);
    assert_eq!((start.geometry.dram_banks, start.geometry.l1_banks(), start.mesh.len()), (12, 64, 1));
    assert_eq!(start.geometry.dram_unreserved_base, 0x10_0040);
    assert!(matches!(events.last(), Some(Event::CaptureEnd { dropped: 0 })));
    assert_matches_printout(&out, &events);

    // Ops as the program marked them, the inner one nested in `ttnn.add`.
    let ops = ops(&events);
    assert_eq!(
        ops,
        vec![(0, "ttnn.matmul".into(), None), (1, "ttnn.add".into(), None), (2, "ttnn.add.inner".into(), Some(1))]
    );
    let (p, _) = printed(&out);
    let traced = allocs_of(&events);
    let op_of = |tag: &str| traced[&p.iter().find(|x| x.tag == tag).unwrap().uid].op;
    assert_eq!(op_of("weight.embed"), None);
    assert_eq!(op_of("weight.norm"), None);
    assert_eq!(op_of("matmul.out"), Some(0));
    assert_eq!(op_of("matmul.scratch"), Some(0));
    assert_eq!(op_of("add.out"), Some(2));
    // Frees carry the op they happen in (matmul.out is freed inside ttnn.add).
    let free_op: HashMap<u64, Option<u64>> = events
        .iter()
        .filter_map(|e| match e {
            Event::BufferFree(f) => Some((f.id, f.op)),
            _ => None,
        })
        .collect();
    let uid = |tag: &str| p.iter().find(|x| x.tag == tag).unwrap().uid;
    assert_eq!(free_op[&uid("matmul.scratch")], Some(0));
    assert_eq!(free_op[&uid("matmul.out")], Some(1));
    assert_eq!(free_op[&uid("add.out")], None);
    // Stacks are named native frames, the shim's own frames dropped.
    let stack = traced[&uid("weight.embed")].stack.as_deref().unwrap_or("");
    assert!(stack.lines().next().unwrap_or("").contains("libtt_metal.so"), "{stack}");
    assert!(!stack.contains("libttsan_preload"), "{stack}");

    // The guard the program asked for: registered, digested around each top-level op, and
    // never claimed readable on a mock chip.
    assert!(events.iter().any(|e| matches!(e,
        Event::GuardRegister { buffer, reason } if *buffer == uid("weight.embed") && reason.contains("weight.embed"))));
    // ... and the one it named by type and address; an address with no buffer is refused.
    assert!(events.iter().any(|e| matches!(e,
        Event::GuardRegister { buffer, reason } if *buffer == uid("weight.norm") && reason.contains("weight.norm"))));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("GUARD weight.norm rc=0") && stdout.contains("GUARD nothing rc=-1"), "{stdout}");
    let digests: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::GuardDigest(g) => Some(g),
            _ => None,
        })
        .collect();
    let points: Vec<Option<u64>> = digests.iter().map(|g| g.after_op).collect();
    assert_eq!(points, vec![None, None, Some(0), Some(0), Some(1), Some(1)]);
    assert!(digests.iter().all(|g| !g.readable && g.pages.is_empty()));
}

#[test]
fn stacks_are_defined_once_per_call_site_and_read_back_as_text() {
    let test = "stacks_are_defined_once_per_call_site_and_read_back_as_text";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    // 100 warm-up pairs from one call site, then 300 from another.
    let out = run(&root, &prog, dir.path(), &["--trace", "t.ttsan"], &["bench", "1", "300"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (events, stats) = trace(&dir.path().join("t.ttsan"));
    assert!(!stats.is_damaged(), "{stats:?}");

    // Every definition comes before its first use, and no id is defined twice.
    let mut defs: HashMap<u64, &str> = HashMap::new();
    let mut allocs = Vec::new();
    let mut frees = 0;
    for e in &events {
        match e {
            Event::StackDef { id, frames } => assert!(defs.insert(*id, frames).is_none(), "stack {id} defined twice"),
            Event::BufferAlloc(b) => {
                let id = b.stack_id.expect("an allocation without a stack id");
                assert_eq!(b.stack.as_deref(), Some(defs[&id]), "allocation {} resolves to its definition", b.id);
                allocs.push((b.id, id));
            }
            Event::BufferFree(f) => {
                let id = f.stack_id.expect("a free without a stack id");
                assert_eq!(f.stack.as_deref(), Some(defs[&id]), "free {} resolves to its definition", f.id);
                frees += 1;
            }
            _ => {}
        }
    }
    assert_eq!((allocs.len(), frees), (400, 400));
    assert!(defs.len() < allocs.len(), "{} definitions for {} allocations", defs.len(), allocs.len());
    // Two allocation sites, two free sites: one definition each, whatever the chain cache did.
    assert_eq!(defs.len(), 4, "{defs:#?}");
    let loop_ids: std::collections::HashSet<u64> = allocs[100..].iter().map(|&(_, id)| id).collect();
    assert_eq!(loop_ids.len(), 1, "the loop's 300 allocations share one stack");
    assert_ne!(allocs[0].1, allocs[100].1, "the warm-up allocates from another call site");

    // The resolved text is the native stack, tt-metal innermost, down to the program's `main`.
    let text = defs[&allocs[100].1];
    assert!(text.lines().next().unwrap_or("").contains("libtt_metal.so"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("main+") && l.ends_with("(preload_prog)")), "{text}");
    assert!(!text.contains("libttsan_preload"), "{text}");
}

#[test]
fn eight_chip_mesh_is_traced_with_its_geometry() {
    let test = "eight_chip_mesh_is_traced_with_its_geometry";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &["--trace", "t.ttsan", "--html", "map.html"], &["basic", "8"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let html = std::fs::read_to_string(dir.path().join("map.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") || html.contains("<html"), "not an HTML map");
    let (events, _) = trace(&dir.path().join("t.ttsan"));
    let Some(Event::CaptureStart(start)) = events.first() else { panic!("no CaptureStart") };
    assert_eq!((start.mesh.rows, start.mesh.cols, start.mesh.len()), (2, 4, 8));
    let mut ids = start.mesh.device_ids.clone();
    ids.sort();
    assert_eq!(ids, (0..8).collect::<Vec<u32>>());
    // T3K keeps a worker row for dispatch: 8x7 compute cores.
    assert_eq!(start.geometry.l1_banks(), 56);
    assert_matches_printout(&out, &events);
    assert_eq!(ops(&events).len(), 3);
    // One unreadable digest per chip for each of the two guards at each of the three points.
    let digests = events.iter().filter(|e| matches!(e, Event::GuardDigest(g) if !g.readable)).count();
    assert_eq!(digests, 2 * 3 * 8);
}

#[test]
fn threads_allocating_and_freeing_across_threads_keep_trace_order() {
    let test = "threads_allocating_and_freeing_across_threads_keep_trace_order";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &["--trace", "t.ttsan"], &["threads", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (events, stats) = trace(&dir.path().join("t.ttsan"));
    assert!(!stats.is_damaged(), "{stats:?}");
    assert_matches_printout(&out, &events);
    let (p, frees) = printed(&out);
    assert_eq!((p.len(), frees.len()), (24, 24));
    // Every free comes after its allocation, whichever thread made either.
    let mut seen = std::collections::HashSet::new();
    for e in &events {
        match e {
            Event::BufferAlloc(b) => assert!(seen.insert(b.id), "buffer {} allocated twice", b.id),
            Event::BufferFree(f) => assert!(seen.remove(&f.id), "buffer {} freed before it was allocated", f.id),
            _ => {}
        }
    }
    assert!(seen.is_empty());
    assert!(String::from_utf8_lossy(&out.stdout).contains("ttsan: clean"));
}

#[test]
fn a_forked_child_records_nothing_and_the_parent_trace_stays_whole() {
    let test = "a_forked_child_records_nothing_and_the_parent_trace_stays_whole";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &["--trace", "t.ttsan"], &["fork", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("CHILD exit=0"));
    let (events, stats) = trace(&dir.path().join("t.ttsan"));
    assert!(!stats.is_damaged(), "{stats:?}");
    assert_matches_printout(&out, &events);
    // Only the parent's two buffers: the child's allocation and free are not in any trace.
    assert_eq!(allocs_of(&events).len(), 2);
    assert_eq!(freed(&events).len(), 2);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("t.ttsan.")), "{names:?}");
    assert!(matches!(events.last(), Some(Event::CaptureEnd { .. })));
}

#[test]
fn a_crashed_run_leaves_a_readable_trace() {
    let test = "a_crashed_run_leaves_a_readable_trace";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &["--trace", "t.ttsan"], &["segv", "1"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("CRASHING"));
    // No finding: the command's own status (killed by SIGSEGV) is the exit code.
    assert_eq!(out.status.code(), Some(128 + 11), "{}", stderr(&out));
    assert!(stderr(&out).contains("killed by signal 11"), "{}", stderr(&out));
    assert!(stderr(&out).contains("without an orderly exit"), "{}", stderr(&out));
    let (events, stats) = trace(&dir.path().join("t.ttsan"));
    assert!(!stats.is_damaged(), "{stats:?}");
    assert!(matches!(events.first(), Some(Event::CaptureStart(_))));
    assert!(!events.iter().any(|e| matches!(e, Event::CaptureEnd { .. })));
    assert_matches_printout(&out, &events);
    assert_eq!(ops(&events), vec![(0, "ttnn.crashing_op".into(), None)]);
    let (p, _) = printed(&out);
    let traced = allocs_of(&events);
    assert_eq!(traced[&p[1].uid].op, Some(0), "the activation belongs to the op that crashed");
}

#[test]
fn guards_are_selected_without_code_changes() {
    let test = "guards_are_selected_without_code_changes";
    let Some((root, prog)) = setup(test) else { return };
    let registered = |extra: &[&str]| -> Vec<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--trace", "t.ttsan"];
        args.extend_from_slice(extra);
        let out = run(&root, &prog, dir.path(), &args, &["basic", "1"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let (events, _) = trace(&dir.path().join("t.ttsan"));
        let (p, _) = printed(&out);
        let tag = |id: u64| p.iter().find(|x| x.uid == id).map(|x| x.tag.clone()).unwrap_or_default();
        events
            .iter()
            .filter_map(|e| match e {
                Event::GuardRegister { buffer, reason } if !reason.starts_with("ttsan_guard") => {
                    Some((tag(*buffer), reason.clone()))
                }
                _ => None,
            })
            .collect()
    };
    let tags = |v: &[(String, String)]| v.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>();

    let pre = registered(&["--guard-preloaded"]);
    assert_eq!(tags(&pre), vec!["weight.embed", "weight.norm"]);
    assert!(pre[0].1.contains("before the first compute op"), "{}", pre[0].1);
    assert_eq!(tags(&registered(&["--guard-preloaded", "--guard-type", "l1"])), vec!["weight.norm"]);
    assert_eq!(tags(&registered(&["--guard-min-size", "100K"])), vec!["weight.embed", "matmul.out", "add.out"]);
    let by_stack = registered(&["--guard-stack", "*MeshBuffer::create*", "--guard-type", "l1"]);
    assert_eq!(tags(&by_stack), vec!["weight.norm", "matmul.scratch"]);
    assert!(by_stack[0].1.contains("*MeshBuffer::create*"), "{}", by_stack[0].1);
}

#[test]
fn findings_set_the_exit_code() {
    let test = "findings_set_the_exit_code";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &["--leaks"], &["leak", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("leak"), "{stdout}");
    let out = run(&root, &prog, dir.path(), &["--leaks", "--error-exitcode", "9"], &["leak", "1"]);
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let out = run(&root, &prog, dir.path(), &[], &["leak", "1"]);
    assert_eq!(out.status.code(), Some(0), "leaks are off by default: {}", stderr(&out));
}

#[test]
fn tt_metal_loaded_without_allocations_is_never_clean() {
    let test = "tt_metal_loaded_without_allocations_is_never_clean";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &[], &["idle", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no allocation was recorded"), "{}", stderr(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("clean"));
}

#[test]
fn a_shim_that_cannot_record_is_never_clean() {
    let test = "a_shim_that_cannot_record_is_never_clean";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &["--trace", "no/such/dir/t.ttsan"], &["basic", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("could not record"), "{}", stderr(&out));
}

#[test]
fn a_command_without_tt_metal_keeps_its_exit_code() {
    // Needs only the shim, not tt-metal.
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| ttsan().current_dir(dir.path()).arg("run").arg("--").args(args).output();
    let out = run(&["true"]).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("the tt-metal library was never loaded"), "{}", stderr(&out));
    let out = run(&["sh", "-c", "exit 7"]).unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("never loaded"), "{}", stderr(&out));
    let out = run(&["/no/such/program"]).unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // The removed Python-hook flag is refused with the reason, and the command never runs.
    let marker = dir.path().join("ran");
    let out = ttsan().current_dir(dir.path()).args(["run", "--ttnn-ops", "--", "touch"]).arg(&marker).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ttnn-ops was removed"), "{}", stderr(&out));
    assert!(!marker.exists());
}

#[test]
fn a_static_program_that_ignores_the_shim_is_never_clean() {
    let test = "a_static_program_that_ignores_the_shim_is_never_clean";
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("s.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let exe = dir.path().join("s");
    match Command::new("gcc").arg("-static").arg("-o").arg(&exe).arg(&src).output() {
        Ok(o) if o.status.success() => {}
        // Static glibc (libc6-dev's libc.a) is not everywhere; this is not the library CI must have.
        _ => {
            let _ =
                writeln!(std::io::stderr(), "SKIPPED: {test} because gcc -static cannot build a static program here");
            return;
        }
    }
    let out = ttsan().current_dir(dir.path()).arg("run").arg("--").arg(&exe).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("never loaded into"), "{}", stderr(&out));
}

#[test]
fn a_program_that_dlopens_tt_metal_is_traced_too() {
    // Python loads tt-metal with dlopen (RTLD_LOCAL), not at link time; `ttsan tt-metal replay`
    // does the same, so wrapping it checks that interposition reaches a dlopen'ed library.
    let test = "a_program_that_dlopens_tt_metal_is_traced_too";
    let Some(_) = support::tt_metal_root(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("script.txt"), "a d1 dram 131072 2048\na w l1 32768 2048\nf d1\nf w\n").unwrap();
    let out = ttsan()
        .current_dir(dir.path())
        .env_remove("LD_PRELOAD")
        .args(["run", "--trace", "t.ttsan", "--", BIN, "tt-metal", "replay", "script.txt", "--chips", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("d1 {}", 0x10_0040)), "{stdout}");
    let (events, _) = trace(&dir.path().join("t.ttsan"));
    let mut got: Vec<(u64, Space)> = allocs_of(&events).values().map(|b| (b.address, b.space)).collect();
    got.sort();
    assert_eq!(got, vec![(0x10_0040, Space::Dram), (0x16_d800, Space::L1)]);
    assert_eq!(freed(&events).len(), 2);
}

/// ttsan builds the shim but must not link it: the shim's load-time constructor and its
/// interposers of tt-metal's allocator belong in preloaded processes only. The wrapper shares
/// the protocol crate instead; the interposer's exported name is the shim's fingerprint.
#[test]
fn the_ttsan_binary_does_not_carry_the_shim() {
    let binary = std::fs::read(BIN).unwrap();
    let interposer = b"_ZN2tt8tt_metal10BufferImpl13allocate_implERNS0_6BufferE";
    assert!(!binary.windows(interposer.len()).any(|w| w == interposer), "{BIN} links the preload shim");
    let shim = std::fs::read(shim_library()).unwrap();
    assert!(shim.windows(interposer.len()).any(|w| w == interposer), "the fingerprint is the shim's");
}

/// The shim next to the ttsan binary under test (where `ttsan run` finds it too).
fn shim_library() -> PathBuf {
    let dir = Path::new(BIN).parent().unwrap();
    [dir.join("libttsan_preload.so"), dir.join("deps/libttsan_preload.so")]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p)
        .expect("libttsan_preload.so is built with ttsan")
}

#[test]
fn a_terminated_run_flushes_its_trace_from_the_signal_handler() {
    use std::io::{BufRead, BufReader};
    let test = "a_terminated_run_flushes_its_trace_from_the_signal_handler";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let trace_path = dir.path().join("t.ttsan");
    // The shim directly, without ttsan run, so that the test can signal the program itself.
    let mut child = Command::new(&prog)
        .current_dir(dir.path())
        .args(["wait", "1"])
        .env("LD_PRELOAD", shim_library())
        .env("TTSAN_TRACE", &trace_path)
        .env("TT_METAL_RUNTIME_ROOT", root.join("ttnn"))
        .env("TT_METAL_SHM_TRACKING_DISABLED", "1")
        .env("OMPI_MCA_btl", "self")
        .env("TT_METAL_CACHE", dir.path().join("cache"))
        .env("TT_METAL_LOGGER_LEVEL", "error")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line == "WAITING";
        lines.push(line);
        if done {
            break;
        }
    }
    assert_eq!(lines.last().map(String::as_str), Some("WAITING"), "{lines:?}");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15), "{status:?}");

    let (events, stats) = trace(&trace_path);
    assert!(!stats.is_damaged(), "{stats:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::CaptureEnd { .. })));
    let printed_addrs: Vec<u64> =
        lines.iter().filter(|l| l.starts_with("ALLOC ")).map(|l| field(l, "addr").parse().unwrap()).collect();
    let mut traced: Vec<u64> = allocs_of(&events).values().map(|b| b.address).collect();
    traced.sort();
    let mut want = printed_addrs.clone();
    want.sort();
    assert_eq!(traced, want);
    assert_eq!(ops(&events), vec![(0, "ttnn.waiting_op".into(), None)]);
}

fn digests(events: &[Event]) -> Vec<&ttsan_events::GuardDigest> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::GuardDigest(g) => Some(g),
            _ => None,
        })
        .collect()
}

/// The program announces ops exactly as ttnn's header template does: through every processor in
/// the graph tracker's list, by vtable slots it finds by name in ttnn's own GraphProcessor. Only
/// the shim's registered processor can turn those calls into ops in the trace.
#[test]
fn ops_announced_to_the_graph_tracker_are_traced_with_nesting_cbs_and_threads() {
    let test = "ops_announced_to_the_graph_tracker_are_traced_with_nesting_cbs_and_threads";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &["--trace", "t.ttsan"], &["processor", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("SLOTS start=8 end=9 end_any=10"), "{stdout}");
    assert!(stdout.contains("PROCESSORS 1 then 1"), "the shim's processor is in the list: {stdout}");
    let version = tt_metal_sys::RuntimeRoot::locate(None).version().unwrap();
    assert!(stdout.contains(&format!("==ttsan== tt-metal: ttnn {version}")), "{stdout}");

    let (events, stats) = trace(&dir.path().join("t.ttsan"));
    assert!(!stats.is_damaged(), "{stats:?}");
    assert_matches_printout(&out, &events);
    let runtime = events
        .iter()
        .find_map(|e| match e {
            Event::Runtime(r) => Some(r),
            _ => None,
        })
        .expect("a runtime record");
    assert_eq!(runtime.unsupported, None);
    assert!(runtime.build.starts_with(&format!("ttnn {version} (")), "{}", runtime.build);
    assert!(runtime.details.iter().any(|d| d == &format!("ttnn {version} is in ttsan's tested set")), "{runtime:?}");
    assert!(runtime.details.iter().any(|d| d.contains("track_function_start=8 track_function_end()=9")), "{runtime:?}");
    assert!(runtime.ops_from.contains("confirmed by ttnn's GraphProcessor"), "{}", runtime.ops_from);

    let ops = ops(&events);
    assert_eq!(
        ops,
        vec![
            (0, "ttnn::matmul".into(), None),
            (1, "MatmulDeviceOperation".into(), Some(0)),
            (2, "ttnn::add".into(), None),
            (3, "ttnn::worker_op".into(), None),
        ]
    );
    let (p, _) = printed(&out);
    let traced = allocs_of(&events);
    let op_of = |tag: &str| traced[&p.iter().find(|x| x.tag == tag).unwrap().uid].op;
    assert_eq!(op_of("weight.sinks"), None);
    assert_eq!(op_of("matmul.out"), Some(1), "allocated inside the nested device operation");
    assert_eq!(op_of("add.tmp"), Some(2));
    assert_eq!(op_of("worker.out"), Some(3), "the second thread registered the processor by itself");

    // The circular buffer reached the shim through the library's own GraphTracker fan-out,
    // with its core range read through CoreRangeSet::ranges and checked against num_cores.
    let cbs = cbs_of(&events);
    assert_eq!(cbs.len(), 1, "{cbs:?}");
    assert_eq!((cbs[0].address, cbs[0].size, cbs[0].op, cbs[0].globally_allocated), (0x20000, 4096, Some(2), false));
    let core = |x, y| ttsan_events::CoreCoord::new(x, y);
    assert_eq!(cbs[0].cores, vec![ttsan_events::CoreRange::new(core(0, 0), core(3, 1))]);
    assert!(events.iter().any(|e| matches!(e, Event::CbDeallocAll { .. })));
}

/// A program built with the public host API (`CreateCircularBuffer` on a 4x2 core range), sent
/// with `EnqueueMeshWorkload`: tt-metal places the circular buffer while it dispatches the
/// program and reports it to the graph tracker, and the trace holds it with its core range, at
/// the bottom of the L1 region CBs grow up from, inside the op that dispatched it. In mock mode
/// the program then stops in `program_dispatch::assemble_device_commands` (it has no kernels,
/// and compiling one needs the device toolchain), after the placement: the run ends by SIGSEGV,
/// and the trace the shim flushed on the signal is what is checked.
#[test]
fn circular_buffers_of_a_dispatched_program_are_traced_with_core_ranges() {
    let test = "circular_buffers_of_a_dispatched_program_are_traced_with_core_ranges";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &["--trace", "t.ttsan"], &["dispatch", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CB handle="), "{stdout}\n{}", stderr(&out));
    assert!(matches!(out.status.code(), Some(0) | Some(139)), "{:?} {}", out.status, stderr(&out));
    let (events, _) = trace(&dir.path().join("t.ttsan"));
    let Some(Event::CaptureStart(start)) = events.first() else { panic!("no CaptureStart") };
    let ops = ops(&events);
    assert_eq!(ops, vec![(0, "dispatch".into(), None)]);
    let cbs = cbs_of(&events);
    assert_eq!(cbs.len(), 1, "{cbs:?}");
    let core = |x, y| ttsan_events::CoreCoord::new(x, y);
    assert_eq!(cbs[0].cores, vec![ttsan_events::CoreRange::new(core(0, 0), core(3, 1))]);
    assert_eq!((cbs[0].size, cbs[0].op, cbs[0].globally_allocated), (4096, Some(0), false));
    assert_eq!(cbs[0].address, start.geometry.l1_unreserved_base, "CBs start at the unreserved L1 base");
}

/// `--guard-preloaded` under the graph tracker: tt-metal announces weight uploads as ops
/// (`Tensor::to_device`), so only an op that runs a program ends the preload phase, and what
/// that op allocated before its program (its output) loses the guard it was given.
#[test]
fn preloaded_guards_end_at_the_first_op_that_runs_a_program() {
    let test = "preloaded_guards_end_at_the_first_op_that_runs_a_program";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &["--trace", "t.ttsan", "--guard-preloaded"], &["preload", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PROGRAM"));
    let (events, _) = trace(&dir.path().join("t.ttsan"));
    let (p, _) = printed(&out);
    let tag = |id: u64| p.iter().find(|x| x.uid == id).map(|x| x.tag.as_str()).unwrap_or("?");
    let ops = ops(&events);
    assert_eq!(
        ops.iter().map(|(i, n, _)| (*i, n.as_str())).collect::<Vec<_>>(),
        vec![(0, "Tensor::to_device"), (1, "ttnn::matmul"), (2, "ttnn::add")]
    );
    // In trace order: what was guarded and withdrawn, with the program among them.
    let story: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::GuardRegister { buffer, reason } => {
                assert!(reason.contains("before the first compute op"), "{reason}");
                Some(format!("guard {}", tag(*buffer)))
            }
            Event::GuardUnregister { buffer } => Some(format!("unguard {}", tag(*buffer))),
            Event::Program(run) => Some(format!("program in op {:?}", run.op)),
            _ => None,
        })
        .collect();
    assert_eq!(
        story,
        vec![
            "guard weight.sinks",
            "guard weight.norm",
            "guard matmul.out",
            "program in op Some(1)",
            "unguard matmul.out",
            "unguard weight.norm",
            "unguard weight.sinks",
        ],
        "add.out, allocated after the first program, is never guarded"
    );
}

/// A guarded mesh buffer on a 1x8 mesh: one digest attempt per chip at every checked op end,
/// each unreadable on mock chips and named by chip, and the per-run read figure printed.
#[test]
fn eight_chip_guards_are_attempted_on_every_chip_after_every_op() {
    let test = "eight_chip_guards_are_attempted_on_every_chip_after_every_op";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &["--trace", "t.ttsan"], &["processor", "8"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("guard reads:"), "{}", stderr(&out));
    let (events, _) = trace(&dir.path().join("t.ttsan"));
    let Some(Event::CaptureStart(start)) = events.first() else { panic!("no CaptureStart") };
    let chips: Vec<u32> = start.mesh.device_ids.clone();
    assert_eq!(chips.len(), 8);
    let (p, _) = printed(&out);
    let sinks = p.iter().find(|x| x.tag == "weight.sinks").unwrap().uid;
    let ds: Vec<_> = digests(&events).into_iter().filter(|g| g.buffer == sinks).collect();
    // A baseline, then after each of the three top-level ops the sinks outlive.
    for point in [None, Some(0), Some(2), Some(3)] {
        let mut on: Vec<u32> = ds.iter().filter(|g| g.after_op == point).map(|g| g.device).collect();
        on.sort_unstable();
        let mut want = chips.clone();
        want.sort_unstable();
        assert_eq!(on, want, "digests of the sinks at {point:?}");
    }
    assert!(ds.iter().all(|g| !g.readable), "mock chips are never read");
    let marks: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Mark { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    // Every chip's copy was resolved through the mesh buffer (one note per distinct reason):
    // the only reason any chip was not read is mock mode itself.
    let sink_notes: Vec<&&str> =
        marks.iter().filter(|m| m.contains(&format!("guarded buffer {sinks} on chip"))).collect();
    assert_eq!(sink_notes.len(), 1, "{marks:?}");
    assert!(sink_notes[0].ends_with("not possible in mock mode (mock chips have no memory)"), "{marks:?}");
    assert!(marks.iter().any(|m| m.contains(&format!("guard reads: {} digest(s) attempted", ds.len()))), "{marks:?}");
}

/// Sampling: with --guard-ops only the matching op's end compares digests (baselines stay).
#[test]
fn guard_sampling_limits_the_checked_ops() {
    let test = "guard_sampling_limits_the_checked_ops";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&root, &prog, dir.path(), &["--trace", "t.ttsan", "--guard-ops", "*add*"], &["processor", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (events, _) = trace(&dir.path().join("t.ttsan"));
    let (p, _) = printed(&out);
    let sinks = p.iter().find(|x| x.tag == "weight.sinks").unwrap().uid;
    let points: Vec<Option<u64>> =
        digests(&events).into_iter().filter(|g| g.buffer == sinks).map(|g| g.after_op).collect();
    assert_eq!(points, vec![None, Some(2)]);
    let out = run(&root, &prog, dir.path(), &["--guard-every", "0"], &["processor", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// A tt-metal whose `IGraphProcessor` vtable the shim cannot name is never reported clean: a
/// preloaded library shadows the exported vtable with one of the same size whose slots name
/// nothing, as a build with a changed interface would look to the shim.
#[test]
fn an_unsupported_graph_processor_layout_is_not_checked_and_exits_3() {
    let test = "an_unsupported_graph_processor_layout_is_not_checked_and_exits_3";
    let Some((root, prog)) = setup(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("shadow.c");
    std::fs::write(&src, "void* _ZTVN2tt8tt_metal15IGraphProcessorE[17];\n").unwrap();
    let lib = dir.path().join("libshadow.so");
    let cc = Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&src).output();
    match cc {
        Ok(o) if o.status.success() => {}
        other => return skip(test, &format!("cc cannot build a shared library: {other:?}")),
    }
    let out = ttsan()
        .current_dir(dir.path())
        .env("TT_METAL_RUNTIME_ROOT", root.join("ttnn"))
        .env("TT_METAL_SHM_TRACKING_DISABLED", "1")
        .env("OMPI_MCA_btl", "self")
        .env("TT_METAL_CACHE", dir.path().join("cache"))
        .env("TT_METAL_LOGGER_LEVEL", "error")
        .env("LD_PRELOAD", &lib)
        .args(["run", "--trace", "t.ttsan", "--"])
        .arg(&prog)
        .args(["processor", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("not checked: unsupported tt-metal build"), "{}", stderr(&out));
    assert!(stderr(&out).contains("named by no symbol table"), "{}", stderr(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("clean"));
    // The trace says so too, so `ttsan analyze` of it is never clean either.
    let (events, _) = trace(&dir.path().join("t.ttsan"));
    assert!(events.iter().any(|e| matches!(e, Event::Runtime(r) if r.unsupported.is_some())));
    let analyzed = ttsan().arg("analyze").arg(dir.path().join("t.ttsan")).output().unwrap();
    let text = String::from_utf8_lossy(&analyzed.stdout);
    assert_eq!(analyzed.status.code(), Some(2), "analysis incomplete: {text}");
    assert!(text.contains("not checked: unsupported tt-metal build") && !text.contains("clean"), "{text}");
}
