//! Every generic fault, on 1x8 and 4x8, in writes and digests mode: the sanitizer names the
//! injecting op call as culprit, the buffer hit as victim, and the right kind.

mod sim_support;

use sim_support::{analyze, describe, ints, load_weights, mesh, op_index};
use ttsan_inference::sim::ccl::{self, CclArgs, CclManager, ReduceScatterAsync, Topology};
use ttsan_inference::sim::ops::{self, MatmulArgs, Out};
use ttsan_inference::sim::{
    parse_faults, Canaries, DType, DetectMode, Distribution, Fault, Mesh, MeshConfig, SimError, SimResult, TensorSpec,
};
use ttsan_sanitizer::{Finding, FindingKind};
use ttsan_shim::events::{Arch, CoreCoord, CoreRange, Event, Role};
use ttsan_shim::MemoryRecorder;

const MESHES: [(u32, u32); 2] = [(1, 8), (4, 8)];
const MODES: [DetectMode; 2] = [DetectMode::Writes, DetectMode::Digests];

/// Runs `scenario` on a fresh mesh; returns the trace and the scenario's value.
fn run<T>(
    rows: u32,
    cols: u32,
    mode: DetectMode,
    faults: &str,
    scenario: impl Fn(&mut Mesh) -> SimResult<T>,
) -> (Vec<Event>, T) {
    let faults = parse_faults(faults).expect("fault syntax");
    let (mut m, rec) = mesh(rows, cols, mode, faults);
    let out = scenario(&mut m).expect("scenario runs");
    m.finish().expect("every fault fired");
    (rec.take(), out)
}

/// Weights, then two matmuls; returns the sinks' address.
fn two_matmuls(m: &mut Mesh) -> SimResult<u64> {
    let w = load_weights(m)?;
    let spec = TensorSpec::new(&[1, 1, 32, 64], DType::Bf16);
    let x = m.from_host(&ints(&[1, 1, 32, 64], 30), &spec, &Distribution::Replicate, "x", Role::Activation)?;
    let y = ops::matmul(m, &x, &w.w, MatmulArgs::default(), &Out::dram())?;
    let z = ops::matmul(m, &y, &w.w, MatmulArgs::default(), &Out::dram())?;
    m.deallocate(&y)?;
    m.deallocate(&z)?;
    Ok(w.sinks.address())
}

/// An add whose output lands in a hole right below a guarded weight; returns the weight's name.
fn add_below_weight(m: &mut Mesh) -> SimResult<String> {
    let spec = TensorSpec::new(&[1, 1, 64, 64], DType::Bf16);
    let rep = Distribution::Replicate;
    let a = m.from_host(&ints(&[1, 1, 64, 64], 31), &spec, &rep, "a", Role::Activation)?;
    let b = m.from_host(&ints(&[1, 1, 64, 64], 32), &spec, &rep, "b", Role::Activation)?;
    let hole = m.allocate(&spec, "hole", Role::Activation)?;
    let banks = m.geometry().dram_banks as usize;
    let wspec = TensorSpec::new(&[1, 1, 32, 32 * banks], DType::Bf16);
    let router = m.from_host(&ints(&[1, 1, 32, 32 * banks], 33), &wspec, &rep, "layer0.mlp.router", Role::Weight)?;
    m.deallocate(&hole)?;
    let c = ops::add(m, &a, &b, &Out::dram())?;
    assert_eq!(c.address(), hole.address(), "the output reuses the hole");
    Ok(router.name().to_string())
}

/// Two reduce-scatters; between them the sinks are allocated where the first one's
/// intermediate was.
fn two_reduce_scatters(m: &mut Mesh) -> SimResult<()> {
    let cols = m.desc().cols as usize;
    let cores = CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(1, 0));
    let mut ccl_mgr = CclManager::new(m, cores, Topology::Ring, 1)?;
    let shape = [1, 1, 32, 32 * cols];
    let spec = TensorSpec::new(&shape, DType::Bf16);
    let x = m.from_host(&ints(&shape, 34), &spec, &Distribution::Replicate, "experts.partial", Role::Activation)?;
    let mut rs = |m: &mut Mesh| {
        let sems = ccl_mgr.rs_semaphores();
        let extra = ReduceScatterAsync { semaphores: sems, ..Default::default() };
        ccl::reduce_scatter_minimal_async(m, &x, 3, &CclArgs::axis(1), &extra)
    };
    let first = rs(m)?;
    let sinks = m.from_host(&ints(&shape, 35), &spec, &Distribution::Replicate, "layer1.attn.sinks", Role::Weight)?;
    let second = rs(m)?;
    m.deallocate(&first)?;
    m.deallocate(&second)?;
    m.deallocate(&sinks)?;
    Ok(())
}

fn the_finding<'a>(findings: &'a [Finding], kind: FindingKind, ctx: &str) -> &'a Finding {
    let hits: Vec<&Finding> = findings.iter().filter(|f| f.kind == kind).collect();
    assert_eq!(hits.len(), 1, "{ctx}: expected one {kind}, got:\n{}", describe(findings));
    hits[0]
}

fn check(f: &Finding, op: &str, index: u64, victim: Option<&str>, ctx: &str) {
    let culprit = f.culprit.as_ref().unwrap_or_else(|| panic!("{ctx}: no culprit"));
    assert_eq!((culprit.op.as_str(), culprit.op_index), (op, index), "{ctx}: {}", f.mechanism);
    assert_eq!(f.victim.as_ref().map(|v| v.name.as_str()), victim, "{ctx}: {}", f.mechanism);
}

#[test]
fn stray_write_into_a_weight_is_a_foreign_write_or_guard_corruption() {
    for (rows, cols) in MESHES {
        let (_, sinks_at) = run(rows, cols, DetectMode::Writes, "", two_matmuls);
        let device = rows * cols - 1;
        let spec = format!("stray-write:op=ttnn.matmul#2,device={device},space=dram,bank=0,addr={sinks_at:#x},len=32");
        for mode in MODES {
            let ctx = format!("{rows}x{cols} {mode}");
            let (events, _) = run(rows, cols, mode, &spec, two_matmuls);
            let a = analyze(&events);
            let want = if mode.writes() { FindingKind::ForeignWrite } else { FindingKind::GuardCorruption };
            let f = the_finding(&a.findings, want, &ctx);
            check(f, "ttnn.matmul", op_index(&events, "ttnn.matmul", 2), Some("layer1.attn.sinks"), &ctx);
            assert_eq!(f.device, Some(device), "{ctx}");
            assert_eq!(a.findings.len(), 1, "{ctx}:\n{}", describe(&a.findings));
        }
    }
}

#[test]
fn stray_write_into_free_space_is_a_wild_write() {
    for (rows, cols) in MESHES {
        let (_, sinks_at) = run(rows, cols, DetectMode::Writes, "", two_matmuls);
        let free = sinks_at + (256 << 20);
        let spec = format!("stray-write:op=ttnn.matmul,device=0,space=dram,bank=3,addr={free},len=64");
        let (events, _) = run(rows, cols, DetectMode::Writes, &spec, two_matmuls);
        let a = analyze(&events);
        let f = the_finding(&a.findings, FindingKind::WildWrite, &format!("{rows}x{cols}"));
        check(f, "ttnn.matmul", op_index(&events, "ttnn.matmul", 1), None, "wild");
        assert_eq!((f.bank, f.address, f.size), (Some(3), free, 64));
        // No buffer lives there, but the free-memory canary digests it: the same finding, at
        // page granularity (the changed page holds the 64 bytes).
        let (events, _) = run(rows, cols, DetectMode::Digests, &spec, two_matmuls);
        let a = analyze(&events);
        let ctx = format!("{rows}x{cols} digests");
        let f = the_finding(&a.findings, FindingKind::WildWrite, &ctx);
        check(f, "ttnn.matmul", op_index(&events, "ttnn.matmul", 1), None, &ctx);
        assert_eq!(a.findings.len(), 1, "{ctx}:\n{}", describe(&a.findings));
        assert_eq!((f.device, f.bank), (Some(0), Some(3)), "{ctx}");
        assert!(f.address <= free && free + 64 <= f.address + f.size, "{ctx}: {:#x}+{}", f.address, f.size);
        assert!(f.size <= ttsan_inference::sim::CANARY_PAGE, "{ctx}: one canary page");
        // Without the free-memory canary (past-end and quarantine only) it is out of reach: it
        // is far from every output and from every freed buffer.
        let (mut m, rec) = mesh_with(rows, cols, Canaries { free: false, ..Canaries::ALL }, &spec);
        two_matmuls(&mut m).expect("scenario runs");
        m.finish().expect("the fault fired");
        assert!(analyze(&rec.take()).findings.is_empty(), "{ctx}: only the free canary reaches it");
    }
}

/// A digest-mode mesh with these canaries and faults.
fn mesh_with(rows: u32, cols: u32, canaries: Canaries, faults: &str) -> (Mesh, std::sync::Arc<MemoryRecorder>) {
    let rec = std::sync::Arc::new(MemoryRecorder::new());
    let mut cfg = MeshConfig::new(Arch::WormholeB0, rows, cols).detect(DetectMode::Digests).canaries(canaries);
    for f in parse_faults(faults).expect("fault syntax") {
        cfg = cfg.fault(f);
    }
    (Mesh::new(cfg, rec.clone()).expect("mesh opens"), rec)
}

/// An overrun past an output into never-allocated memory: writes mode's out-of-bounds write;
/// digests mode's past-end canary says the same (kind, culprit, the output it ran past), and
/// so does the free-memory canary alone. With weights-only guards and no canary it is invisible.
#[test]
fn overrun_into_free_memory_is_an_oob_write_in_every_mode() {
    let scenario = |m: &mut Mesh| -> SimResult<()> {
        let spec = TensorSpec::new(&[1, 1, 64, 64], DType::Bf16);
        let a = m.from_host(&ints(&[1, 1, 64, 64], 36), &spec, &Distribution::Replicate, "a", Role::Activation)?;
        ops::silu(m, &a, &Out::dram())?;
        Ok(())
    };
    for (rows, cols) in MESHES {
        for (mode, canaries) in [
            (DetectMode::Writes, Canaries::ALL),
            (DetectMode::Digests, Canaries::ALL),
            (DetectMode::Both, Canaries::ALL),
            (DetectMode::Digests, Canaries { past_end: true, ..Canaries::NONE }),
            (DetectMode::Digests, Canaries { free: true, ..Canaries::NONE }),
        ] {
            let ctx = format!("{rows}x{cols} {mode} {canaries}");
            let (events, ()) = run_with(rows, cols, mode, canaries, "overrun:op=ttnn.silu,bytes=100", scenario);
            let a = analyze(&events);
            assert_eq!(a.findings.len(), 1, "{ctx}:\n{}", describe(&a.findings));
            let f = &a.findings[0];
            assert_eq!(f.kind, FindingKind::OobWrite, "{ctx}: {}", f.mechanism);
            check(f, "ttnn.silu", op_index(&events, "ttnn.silu", 1), None, &ctx);
            let related = f.related.as_ref().expect("the output it ran past");
            assert_eq!((related.buffer.name.as_str(), related.distance), ("ttnn.silu.out", 0), "{ctx}");
            assert_eq!(f.count, u64::from(rows * cols), "{ctx}: once per chip, merged");
            assert_eq!(f.confirmed_by_digest, mode == DetectMode::Both, "{ctx}");
        }
        let (events, ()) =
            run_with(rows, cols, DetectMode::Digests, Canaries::NONE, "overrun:op=ttnn.silu,bytes=100", scenario);
        assert!(analyze(&events).findings.is_empty(), "{rows}x{cols}: no canary, nothing to see");
    }
}

/// [`run`] with a canary selection.
fn run_with<T>(
    rows: u32,
    cols: u32,
    mode: DetectMode,
    canaries: Canaries,
    faults: &str,
    scenario: impl Fn(&mut Mesh) -> SimResult<T>,
) -> (Vec<Event>, T) {
    let rec = std::sync::Arc::new(MemoryRecorder::new());
    let mut cfg = MeshConfig::new(Arch::WormholeB0, rows, cols).detect(mode).canaries(canaries);
    for f in parse_faults(faults).expect("fault syntax") {
        cfg = cfg.fault(f);
    }
    let mut m = Mesh::new(cfg, rec.clone()).expect("mesh opens");
    let out = scenario(&mut m).expect("scenario runs");
    m.finish().expect("every fault fired");
    (rec.take(), out)
}

#[test]
fn overrun_past_the_first_output_hits_the_next_buffer() {
    for (rows, cols) in MESHES {
        for mode in MODES {
            let ctx = format!("{rows}x{cols} {mode}");
            let (events, victim) = run(rows, cols, mode, "overrun:op=ttnn.add,bytes=64", add_below_weight);
            let a = analyze(&events);
            let want = if mode.writes() { FindingKind::OobWrite } else { FindingKind::GuardCorruption };
            let f = the_finding(&a.findings, want, &ctx);
            check(f, "ttnn.add", op_index(&events, "ttnn.add", 1), Some(&victim), &ctx);
            if mode.writes() {
                let related = f.related.as_ref().expect("the overrun output");
                assert_eq!(related.buffer.name, "ttnn.add.out", "{ctx}");
                assert_eq!(f.size, 64, "{ctx}");
            }
        }
    }
}

#[test]
fn stale_scratch_address_is_a_use_after_free_of_the_sinks() {
    for (rows, cols) in MESHES {
        for mode in MODES {
            let ctx = format!("{rows}x{cols} {mode}");
            let op = "ttnn.experimental.reduce_scatter_minimal_async";
            let (events, ()) = run(rows, cols, mode, &format!("stale:op={op}"), two_reduce_scatters);
            let a = analyze(&events);
            let want = if mode.writes() { FindingKind::UseAfterFree } else { FindingKind::GuardCorruption };
            let f = the_finding(&a.findings, want, &ctx);
            check(f, op, op_index(&events, op, 2), Some("layer1.attn.sinks"), &ctx);
            if mode.writes() {
                let related = f.related.as_ref().expect("the stale buffer");
                assert_eq!(related.buffer.name, format!("{op}.intermediate"), "{ctx}");
                assert!(related.buffer.freed, "{ctx}");
            }
            // Without the fault the same run is clean: the intermediate stays cached and live.
            let (events, ()) = run(rows, cols, mode, "", two_reduce_scatters);
            assert!(analyze(&events).findings.is_empty(), "{ctx}: clean run has findings");
        }
    }
}

#[test]
fn faults_combine() {
    let (_, sinks_at) = run(1, 8, DetectMode::Writes, "", two_matmuls);
    let spec = format!(
        "stray-write:op=ttnn.matmul#2,device=2,space=dram,bank=0,addr={sinks_at},len=16; \
         stray-write:op=ttnn.matmul#1,device=1,space=l1,core=0.0,addr=0x20000,len=16"
    );
    let (events, _) = run(1, 8, DetectMode::Both, &spec, two_matmuls);
    let a = analyze(&events);
    let foreign = the_finding(&a.findings, FindingKind::ForeignWrite, "combined");
    check(foreign, "ttnn.matmul", op_index(&events, "ttnn.matmul", 2), Some("layer1.attn.sinks"), "combined");
    assert!(foreign.confirmed_by_digest, "both modes: the digest confirms the write");
    let wild = the_finding(&a.findings, FindingKind::WildWrite, "combined");
    check(wild, "ttnn.matmul", op_index(&events, "ttnn.matmul", 1), None, "combined");
    assert_eq!(wild.core, Some([0, 0]));
}

#[test]
fn faults_that_never_run_are_errors() {
    for (spec, why) in [
        ("overrun:op=ttnn.softmax,bytes=8", "ttnn.softmax ran 0 time(s)"),
        ("overrun:op=ttnn.matmul#3,bytes=8", "ttnn.matmul ran 2 time(s)"),
        ("stale:op=ttnn.matmul", "without a cached scratch address"),
    ] {
        let (mut m, _) = mesh(1, 8, DetectMode::Writes, parse_faults(spec).unwrap());
        two_matmuls(&mut m).unwrap();
        match m.finish() {
            Err(SimError::NeverRan { why: w, .. }) => assert!(w.contains(why), "{spec}: {w}"),
            other => panic!("{spec}: expected never-ran, got {other:?}"),
        }
    }
}

#[test]
fn faults_outside_the_mesh_or_memory_fail_the_op() {
    let bad_device = "stray-write:op=ttnn.matmul,device=8,space=dram,bank=0,addr=0,len=4";
    let (mut m, _) = mesh(1, 8, DetectMode::Writes, parse_faults(bad_device).unwrap());
    assert!(matches!(two_matmuls(&mut m), Err(SimError::NoSuchDevice { device: 8, .. })));
    let beyond = "stray-write:op=ttnn.matmul,device=0,space=l1,core=0.0,addr=0x16e000,len=4096";
    let (mut m, _) = mesh(1, 8, DetectMode::Writes, parse_faults(beyond).unwrap());
    assert!(matches!(two_matmuls(&mut m), Err(SimError::OutOfUnit { .. })));
    let bad: Result<Fault, _> = "stray-write:op=ttnn.matmul,device=0,space=l1,bank=1,addr=0,len=4".parse();
    assert!(bad.unwrap_err().to_string().contains("core=X.Y"));
}
