//! Shared helpers of the simulator tests: meshes with an in-memory trace, analysis, and a
//! small workload that touches every op.
#![allow(dead_code)]

use std::sync::Arc;
use ttsan_inference::sim::ccl::{self, AllGatherAsync, CclArgs, CclManager, ReduceScatterAsync, Topology};
use ttsan_inference::sim::ops::{self, MatmulArgs, Out, ReduceOp, SdpaArgs, UnaryOp};
use ttsan_inference::sim::{
    DType, DetectMode, Distribution, Fault, HostTensor, MemoryConfig, Mesh, MeshConfig, PageLayout, SimResult, Tensor,
    TensorSpec,
};
use ttsan_sanitizer::{Analysis, AnalysisOptions, Analyzer, Finding};
use ttsan_shim::events::{Arch, CoreCoord, CoreRange, Event, Role};
use ttsan_shim::MemoryRecorder;

/// The mesh shapes the brief names.
pub const SHAPES: [(u32, u32); 4] = [(1, 1), (1, 8), (2, 4), (4, 8)];

/// A Wormhole mesh recording into memory.
pub fn mesh(rows: u32, cols: u32, mode: DetectMode, faults: Vec<Fault>) -> (Mesh, Arc<MemoryRecorder>) {
    mesh_arch(Arch::WormholeB0, rows, cols, mode, faults)
}

/// A mesh of `arch` recording into memory.
pub fn mesh_arch(
    arch: Arch,
    rows: u32,
    cols: u32,
    mode: DetectMode,
    faults: Vec<Fault>,
) -> (Mesh, Arc<MemoryRecorder>) {
    let rec = Arc::new(MemoryRecorder::new());
    let mut cfg = MeshConfig::new(arch, rows, cols).detect(mode).guard_glob("*.sinks").command("sim test");
    for f in faults {
        cfg = cfg.fault(f);
    }
    let mesh = Mesh::new(cfg, rec.clone()).expect("mesh opens");
    (mesh, rec)
}

/// Runs the sanitizer over a trace.
pub fn analyze(events: &[Event]) -> Analysis {
    let mut a = Analyzer::new(AnalysisOptions::default());
    for e in events {
        a.feed(e);
    }
    a.finish(None)
}

/// Small whole numbers, exact in bf16 and in sums of a few dozen of them.
pub fn ints(shape: &[usize], seed: usize) -> HostTensor {
    HostTensor::from_fn(shape, |i| ((i * 7 + seed * 13) % 5) as f32 - 2.0)
}

/// Values in [0, 1), deterministic.
pub fn smooth(shape: &[usize], seed: usize) -> HostTensor {
    HostTensor::from_fn(shape, |i| (((i + 1) * 2654435761usize + seed * 97) % 1000) as f32 / 1000.0)
}

/// Uploads `host` to every chip as a bf16 tiled DRAM tensor of its own shape.
pub fn replicated(mesh: &mut Mesh, host: &HostTensor, name: &str, role: Role) -> SimResult<Tensor> {
    mesh.from_host(host, &TensorSpec::new(&host.shape, DType::Bf16), &Distribution::Replicate, name, role)
}

/// Index of the `call`-th OpBegin named `name` in a trace.
pub fn op_index(events: &[Event], name: &str, call: usize) -> u64 {
    events
        .iter()
        .filter_map(|e| match e {
            Event::OpBegin(b) if b.name == name => Some(b.index),
            _ => None,
        })
        .nth(call - 1)
        .unwrap_or_else(|| panic!("{name} call {call} not in trace"))
}

/// A one-line description of findings, for assertion messages.
pub fn describe(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} by {:?} on {:?}: {}",
                f.kind,
                f.culprit.as_ref().map(|c| (&c.op, c.op_index)),
                f.victim.as_ref().map(|v| &v.name),
                f.mechanism
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Weights of the workload.
pub struct Weights {
    pub sinks: Tensor,
    pub w: Tensor,
    pub bias: Tensor,
    pub embed: Tensor,
}

pub fn load_weights(mesh: &mut Mesh) -> SimResult<Weights> {
    let rep = Distribution::Replicate;
    let sinks = mesh.from_host(
        &ints(&[1, 2, 1, 1], 1),
        &TensorSpec::new(&[1, 2, 1, 1], DType::Bf16),
        &rep,
        "layer1.attn.sinks",
        Role::Weight,
    )?;
    let w = mesh.from_host(
        &ints(&[1, 1, 64, 64], 2),
        &TensorSpec::new(&[1, 1, 64, 64], DType::Bf16),
        &rep,
        "layer1.mlp.w",
        Role::Weight,
    )?;
    let bias = mesh.from_host(
        &ints(&[1, 1, 1, 64], 3),
        &TensorSpec::new(&[1, 1, 1, 64], DType::Bf16),
        &rep,
        "layer1.mlp.bias",
        Role::Weight,
    )?;
    let embed = mesh.from_host(
        &ints(&[1, 1, 16, 64], 4),
        &TensorSpec::new(&[1, 1, 16, 64], DType::Bf16).row_major(),
        &rep,
        "embedding",
        Role::Weight,
    )?;
    Ok(Weights { sinks, w, bias, embed })
}

/// A small model-like sequence touching every op and collective; returns the final tensor.
pub fn workload(mesh: &mut Mesh) -> SimResult<Tensor> {
    let wts = load_weights(mesh)?;
    let n = mesh.num_devices();
    let ids = mesh.from_host(
        &HostTensor::from_fn(&[1, 1, 32], |i| (i % 16) as f32),
        &TensorSpec::new(&[1, 1, 32], DType::U32).row_major(),
        &Distribution::Replicate,
        "tokens",
        Role::Activation,
    )?;
    let x = ops::embedding(mesh, &ids, &wts.embed, &Out::dram().layout(PageLayout::Tile).named("x"))?;
    let x4 = ops::to_layout(mesh, &x, PageLayout::RowMajor, &Out::dram())?;
    let x4t = ops::to_layout(mesh, &x4, PageLayout::Tile, &Out::l1())?;
    mesh.deallocate(&x4)?;
    let h = ops::linear(mesh, &x4t, &wts.w, Some(&wts.bias), MatmulArgs::default(), &Out::dram())?;
    let g = ops::unary(mesh, UnaryOp::Clamp(-7.0, 7.0), &h, &Out::dram())?;
    let s = ops::silu(mesh, &g, &Out::l1())?;
    let m = ops::multiply(mesh, &s, &h, &Out::dram())?;
    let sharded = MemoryConfig::L1HeightSharded { cores: CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(0, 0)) };
    let sh = ops::to_memory_config(mesh, &m, sharded, &Out::default())?;
    let back = ops::to_memory_config(mesh, &sh, MemoryConfig::DramInterleaved, &Out::default())?;
    let sm = ops::softmax(mesh, &back, -1, &Out::dram())?;
    let (vals, idx) = ops::topk(mesh, &sm, 4, &Out::dram())?;
    let red = ops::reduce(mesh, ReduceOp::Sum, &vals, -1, &Out::dram())?;
    let norm = ops::rms_norm(mesh, &back, Some(&wts.bias), 1e-5, &Out::dram())?;
    let part = ops::slice(mesh, &norm, &[0, 0, 0, 0], &[1, 1, 32, 32], &Out::dram())?;
    let cat = ops::concat(mesh, &[&part, &part], -1, &Out::dram())?;
    let q = mesh.from_host(
        &smooth(&[1, 2, 32, 32], 5),
        &TensorSpec::new(&[1, 2, 32, 32], DType::Bf16),
        &Distribution::Replicate,
        "q",
        Role::Activation,
    )?;
    let kv = mesh.from_host(
        &smooth(&[1, 1, 32, 32], 6),
        &TensorSpec::new(&[1, 1, 32, 32], DType::Bf16),
        &Distribution::Replicate,
        "kv",
        Role::KvCache,
    )?;
    let cs = mesh.from_host(
        &smooth(&[1, 1, 32, 32], 7),
        &TensorSpec::new(&[1, 1, 32, 32], DType::Bf16),
        &Distribution::Replicate,
        "cos",
        Role::Weight,
    )?;
    let qr = ops::rotary_embedding(mesh, &q, &cs, &cs, &Out::dram())?;
    let args = SdpaArgs { is_causal: true, sliding_window: Some(8), scale: None };
    let att = ops::scaled_dot_product_attention(mesh, &qr, &kv, &kv, Some(&wts.sinks), args, &Out::dram())?;
    let spa = mesh.from_host(
        &ints(&[2, 1, 32, 64], 8),
        &TensorSpec::new(&[2, 1, 32, 64], DType::Bf16),
        &Distribution::Replicate,
        "tokens_blocks",
        Role::Activation,
    )?;
    let experts = mesh.from_host(
        &ints(&[1, 2, 64, 32], 9),
        &TensorSpec::new(&[1, 2, 64, 32], DType::Bf16),
        &Distribution::Replicate,
        "experts.w",
        Role::Weight,
    )?;
    let mask = mesh.from_host(
        &HostTensor::new(vec![1, 1, 2, 2], vec![1.0, 0.0, 0.0, 1.0])?,
        &TensorSpec::new(&[1, 1, 2, 2], DType::Bf16),
        &Distribution::Replicate,
        "sparsity",
        Role::Activation,
    )?;
    let sp = ops::sparse_matmul(mesh, &spa, &experts, &mask, &Out::dram())?;
    for t in [&x, &x4t, &g, &s, &sh, &sm, &vals, &idx, &red, &part, &qr, &att, &sp, &spa, &mask] {
        mesh.deallocate(t)?;
    }

    // Collectives along the row axis and the whole mesh.
    let cols = mesh.desc().cols as usize;
    let rows = mesh.desc().rows as usize;
    let mut ccl_mgr =
        CclManager::new(mesh, CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(1, 0)), Topology::Ring, 1)?;
    let wide = mesh.from_host(
        &ints(&[1, 1, 32, 32 * cols], 10),
        &TensorSpec::new(&[1, 1, 32, 32 * cols], DType::Bf16),
        &Distribution::Replicate,
        "partial",
        Role::Activation,
    )?;
    for _ in 0..2 {
        let rs_sems = ccl_mgr.rs_semaphores();
        let barrier = Some(ccl_mgr.barrier_semaphore());
        let rs = ccl::reduce_scatter_minimal_async(
            mesh,
            &wide,
            3,
            &CclArgs::axis(1),
            &ReduceScatterAsync { semaphores: rs_sems, barrier: barrier.clone(), ..Default::default() },
        )?;
        let ag = ccl::all_gather_async(
            mesh,
            &rs,
            3,
            &CclArgs::axis(1),
            &AllGatherAsync { semaphores: ccl_mgr.ag_semaphores(), barrier, persistent_output: None },
        )?;
        mesh.deallocate(&rs)?;
        mesh.deallocate(&ag)?;
    }
    let ar = ccl::all_reduce(mesh, &cat, &CclArgs::axis(0).topology(Topology::Linear))?;
    let gathered = ccl::all_gather(mesh, &ar, 2, &CclArgs::default())?;
    let tall = mesh.from_host(
        &ints(&[1, 1, 32 * rows, 32], 11),
        &TensorSpec::new(&[1, 1, 32 * rows, 32], DType::Bf16),
        &Distribution::Replicate,
        "tall",
        Role::Activation,
    )?;
    let scattered = ccl::reduce_scatter(mesh, &tall, 2, &CclArgs::axis(0))?;

    // Expert routing over the whole mesh: one expert per chip, two experts per token.
    let (b, k, hdim) = (2usize, 2usize, 32usize);
    let tokens = mesh.from_host_per_device(
        (0..n).map(|d| ints(&[b, 1, 1, hdim], 20 + d)).collect(),
        &TensorSpec::new(&[b, 1, 1, hdim], DType::Bf16).row_major(),
        "moe.tokens",
        Role::Activation,
    )?;
    let choice = (0..n).map(|d| HostTensor::from_fn(&[b, 1, 1, k], |i| ((d + i * 3) % n) as f32)).collect();
    let choice = mesh.from_host_per_device(
        choice,
        &TensorSpec::new(&[b, 1, 1, k], DType::U32).row_major(),
        "moe.indices",
        Role::Activation,
    )?;
    let mapping = HostTensor::from_fn(&[1, 1, n, n], |i| if i / n == i % n { 1.0 } else { 0.0 });
    let mapping = mesh.from_host(
        &mapping,
        &TensorSpec::new(&[1, 1, n, n], DType::U32).row_major(),
        &Distribution::Replicate,
        "moe.mapping",
        Role::Weight,
    )?;
    let (disp, meta) = ccl::all_to_all_dispatch(mesh, &tokens, &choice, &mapping, &CclArgs::default())?;
    let comb = ccl::all_to_all_combine(mesh, &disp, &meta, &mapping, &CclArgs::default())?;
    for t in [&wide, &ar, &tall, &scattered, &tokens, &choice, &disp, &meta, &comb, &cat, &norm, &back, &m, &h] {
        mesh.deallocate(t)?;
    }
    Ok(gathered)
}
