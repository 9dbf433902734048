//! Plan mode (`ttsan run gpt-oss --plan`): the model's buffers and ops at full size (gpt-oss-20b
//! or 120b) with allocation and op events only. No kernel runs and no byte is written, so the
//! trace shows what the allocator does with the real shapes (per-chip placement as the demo
//! shards it, section 3.10's op order, prefill then decode) in seconds, and an out-of-memory
//! stops the plan exactly where the allocator refuses.
//!
//! On several rows whose chips divide the experts the MLP is the throughput experts'
//! ([`throughput`]), in prefill and in decode: one placement of the experts, as the demo's
//! model object holds one (both would not fit gpt-oss-120b on 4x8).
//!
//! Every program places its static circular buffers as the data path's op does (the plan's
//! stand-ins through [`place_default_cbs`], the collectives by calling the simulator's own on a
//! placement-only mesh, which also gives them their op-cache intermediates and semaphores), and
//! the CCL manager's global semaphores are created first, as the data path's fixture does. So
//! the plan's L1 and its out-of-memory points are the data path's, and a circular-buffer region
//! that does not fit ends the plan with the simulator's error, as tt-metal throws at dispatch.

mod l1;
mod throughput;

pub use l1::L1Peak;

use super::error::RunError;
use super::scenario::Progress;
use crate::alloc::AllocError;
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::device::throughput_prefill;
use crate::sim::ccl::{self, AllGatherAsync, CclArgs, CclManager, ReduceScatterAsync, Topology};
use crate::sim::ops::{place_default_cbs, Out};
use crate::sim::{DType, Mesh, MeshConfig, SimError, Tensor, TensorSpec};
use l1::L1Watch;
use std::sync::Arc;
use ttsan_events::{Arch, Role};
use ttsan_shim::Recorder;

/// Token rows of one down-projection split in prefill (the demo's `down_split_size`).
const DOWN_SPLIT: usize = 1024;
/// The attention all-reduce's reduce-scatter.
const RS: &str = "ttnn.experimental.reduce_scatter_minimal_async";
/// Rows of a decode activation: one token padded to a tile.
const TILE: usize = 32;

/// What a plan covers.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The model (full-size presets are the point).
    pub config: GptOssConfig,
    /// Chip architecture.
    pub arch: Arch,
    /// Mesh rows (the experts split over them).
    pub rows: u32,
    /// Mesh columns (tensor parallelism).
    pub cols: u32,
    /// Prefill tokens (0: no prefill).
    pub seq_len: usize,
    /// Decode steps after the prefill.
    pub decode_steps: usize,
    /// The command line, for the trace header.
    pub command: String,
}

/// What a plan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOutcome {
    /// Ops recorded.
    pub ops: u64,
    /// Buffers allocated (weights, activations, op-cache scratch, semaphores).
    pub allocations: u64,
    /// The allocator's refusal, with the buffer it refused, when the plan ran out of memory.
    pub out_of_memory: Option<String>,
    /// The device's error when a program's circular buffers did not fit in L1 (a clash with an
    /// L1 buffer, or beyond the end of L1): tt-metal's message; the plan ends there.
    pub program_error: Option<String>,
    /// Per-core L1 at its fullest.
    pub l1: L1Peak,
}

struct Planner {
    mesh: Mesh,
    ccl: CclManager,
}

fn spec(shape: &[usize]) -> TensorSpec {
    TensorSpec::new(shape, DType::Bf16)
}

impl Planner {
    fn alloc(&mut self, shape: &[usize], name: &str, role: Role) -> Result<Tensor, RunError> {
        self.alloc_spec(&spec(shape), name, role)
    }

    fn alloc_spec(&mut self, spec: &TensorSpec, name: &str, role: Role) -> Result<Tensor, RunError> {
        self.mesh.allocate(spec, name, role).map_err(|e| named(e, name))
    }

    /// One op reading `inputs` and producing fresh bf16 tiled DRAM outputs of the given shapes.
    fn op(&mut self, name: &str, inputs: &[&Tensor], outs: &[(&[usize], &str)]) -> Result<Vec<Tensor>, RunError> {
        let specs: Vec<(TensorSpec, &str)> = outs.iter().map(|(shape, n)| (spec(shape), *n)).collect();
        self.op_specs(name, inputs, &specs)
    }

    /// One op reading `inputs` and producing fresh outputs of the given specs. Its program
    /// places its circular buffers as the simulator's per-chip ops place theirs (two pages per
    /// input, two of the first output), for the inputs the plan gives it.
    fn op_specs(
        &mut self,
        name: &str,
        inputs: &[&Tensor],
        outs: &[(TensorSpec, &str)],
    ) -> Result<Vec<Tensor>, RunError> {
        let mut run = self.mesh.begin_op(name, String::new(), inputs, &[], &[])?;
        let mut out = Vec::with_capacity(outs.len());
        for (spec, oname) in outs {
            out.push(run.alloc_output(spec, oname, Role::Activation).map_err(|e| named(e, oname))?);
        }
        if let Some((first, _)) = outs.first() {
            place_default_cbs(&mut run, inputs, first)?;
        }
        run.finish()?;
        Ok(out)
    }

    /// One op with a single output of `spec`.
    fn op1_spec(&mut self, name: &str, inputs: &[&Tensor], spec: TensorSpec, oname: &str) -> Result<Tensor, RunError> {
        let mut v = self.op_specs(name, inputs, &[(spec, oname)])?;
        v.pop().ok_or_else(|| RunError::Usage(format!("{name} produced no output")))
    }

    /// One op with a single output.
    fn op1(&mut self, name: &str, inputs: &[&Tensor], shape: &[usize], oname: &str) -> Result<Tensor, RunError> {
        let mut v = self.op(name, inputs, &[(shape, oname)])?;
        v.pop().ok_or_else(|| RunError::Usage(format!("{name} produced no output")))
    }

    /// An op that writes an existing tensor (the cache updates); its circular buffers are sized
    /// from the target, as the simulator's cache ops size them.
    fn op_into(&mut self, name: &str, inputs: &[&Tensor], target: &Tensor) -> Result<(), RunError> {
        let mut run = self.mesh.begin_op(name, String::new(), inputs, &[target], &[])?;
        place_default_cbs(&mut run, inputs, target.spec())?;
        Ok(run.finish()?)
    }

    /// The collectives' common arguments: the CCL manager's topology and links, a DRAM output.
    fn ccl_args(&self, axis: usize, out: &str) -> CclArgs {
        CclArgs {
            cluster_axis: Some(axis),
            topology: self.ccl.topology,
            num_links: self.ccl.num_links,
            out: Out::dram().named(out),
        }
    }

    /// `ttnn.all_reduce` over `axis`, the simulator's own (its op-cache semaphore and
    /// intermediate included).
    fn all_reduce(&mut self, x: &Tensor, axis: usize, out: &str) -> Result<Tensor, RunError> {
        let args = self.ccl_args(axis, out);
        ccl::all_reduce(&mut self.mesh, x, &args).map_err(|e| within(e, "ttnn.all_reduce", out))
    }

    fn free(&mut self, ts: &[&Tensor]) -> Result<(), RunError> {
        for t in ts {
            self.mesh.deallocate(t)?;
        }
        Ok(())
    }
}

/// Per-chip sizes.
struct Dims {
    h: usize,
    d: usize,
    heads: usize,
    kv_heads: usize,
    experts: usize,
    inter: usize,
    vocab: usize,
    top_k: usize,
    rows: usize,
    tp: usize,
    /// Whether the MLP is the throughput experts' (experts sharded over every chip).
    throughput: bool,
    /// Experts per chip under the throughput placement.
    local: usize,
}

struct LayerW {
    input_norm: Tensor,
    wqkv: Tensor,
    wqkv_bias: Tensor,
    sinks: Tensor,
    o_proj: Tensor,
    o_bias: Tensor,
    post_norm: Tensor,
    router: Tensor,
    router_bias: Tensor,
    gate_up: Tensor,
    gate_up_bias: Tensor,
    down: Tensor,
    down_bias: Tensor,
    /// The throughput experts' one-hot expert-to-chip mapping.
    mapping: Option<Tensor>,
    k_cache: Tensor,
    v_cache: Tensor,
}

fn upload_layer(p: &mut Planner, n: &Dims, l: usize, max_seq: usize) -> Result<LayerW, RunError> {
    let qkv = (n.heads + 2 * n.kv_heads) * n.d;
    let pre = format!("model.layers.{l}");
    let w = |p: &mut Planner, shape: &[usize], name: &str| p.alloc(shape, &format!("{pre}.{name}"), Role::Weight);
    // The throughput experts hold E / chips whole experts per chip (gate and up fused); the
    // low-latency ones E / rows experts with I split over the columns.
    let (e, i, names) = match n.throughput {
        true => (n.local, n.inter * n.tp, ["w1_w3", "w1_w3_bias", "w2", "w2_bias"]),
        false => (n.experts, n.inter, ["gate_up_proj", "gate_up_proj_bias", "down_proj", "down_proj_bias"]),
    };
    let [gu, gub, dn, dnb] = names.map(|x| format!("mlp.experts.{x}"));
    Ok(LayerW {
        input_norm: w(p, &[1, 1, 1, n.h], "input_layernorm.weight")?,
        wqkv: w(p, &[1, 1, n.h, qkv], "self_attn.wqkv")?,
        wqkv_bias: w(p, &[1, 1, 1, qkv], "self_attn.wqkv_bias")?,
        sinks: w(p, &[1, n.heads, 1, 1], "self_attn.sinks")?,
        o_proj: w(p, &[1, 1, n.heads * n.d, n.h], "self_attn.o_proj")?,
        o_bias: w(p, &[1, 1, 1, n.h], "self_attn.o_proj_bias")?,
        post_norm: w(p, &[1, 1, 1, n.h], "post_attention_layernorm.weight")?,
        router: w(p, &[1, 1, n.h, n.experts * n.rows], "mlp.router.weight")?,
        router_bias: w(p, &[1, 1, 1, n.experts * n.rows], "mlp.router.bias")?,
        gate_up: w(p, &[1, e, n.h, 2 * i], &gu)?,
        gate_up_bias: w(p, &[1, e, 1, 2 * i], &gub)?,
        down: w(p, &[1, e, i, n.h], &dn)?,
        down_bias: w(p, &[1, e, 1, n.h], &dnb)?,
        mapping: match n.throughput {
            true => {
                // uint32 row-major, as the data path uploads it.
                let mapping = TensorSpec::new(&[1, 1, n.experts * n.rows, n.rows * n.tp], DType::U32).row_major();
                Some(p.alloc_spec(&mapping, &format!("{pre}.mlp.experts.expert_mapping"), Role::Weight)?)
            }
            false => None,
        },
        k_cache: p.alloc(&[1, n.kv_heads, max_seq, n.d], &format!("{pre}.self_attn.k_cache"), Role::KvCache)?,
        v_cache: p.alloc(&[1, n.kv_heads, max_seq, n.d], &format!("{pre}.self_attn.v_cache"), Role::KvCache)?,
    })
}

/// One decoder layer (`l`) over `s` rows (prefill: the prompt; decode: one token in a tile).
fn layer(
    p: &mut Planner,
    n: &Dims,
    l: usize,
    w: &LayerW,
    x: Tensor,
    s: usize,
    decode: bool,
) -> Result<Tensor, RunError> {
    let (h, d) = (n.h, n.d);
    let hn = p.op1("ttnn.rms_norm", &[&x, &w.input_norm], &[1, 1, s, h], "layer.input_norm")?;
    let qkv_w = (n.heads + 2 * n.kv_heads) * d;
    let xqkv = p.op1("ttnn.linear", &[&hn, &w.wqkv, &w.wqkv_bias], &[1, 1, s, qkv_w], "attn.xqkv")?;
    p.free(&[&hn])?;
    let heads_op =
        if decode { "ttnn.experimental.nlp_create_qkv_heads_decode" } else { "ttnn.experimental.nlp_create_qkv_heads" };
    let qkv = p.op(
        heads_op,
        &[&xqkv],
        &[(&[1, n.heads, s, d], "attn.q"), (&[1, n.kv_heads, s, d], "attn.k"), (&[1, n.kv_heads, s, d], "attn.v")],
    )?;
    p.free(&[&xqkv])?;
    let [q, k, v] = <[Tensor; 3]>::try_from(qkv).map_err(|_| RunError::Usage("qkv heads".into()))?;
    let q_rot = p.op1("ttnn.experimental.rotary_embedding", &[&q], &[1, n.heads, s, d], "attn.q_rot")?;
    let k_rot = p.op1("ttnn.experimental.rotary_embedding", &[&k], &[1, n.kv_heads, s, d], "attn.k_rot")?;
    p.free(&[&q, &k])?;
    let cache_op = if decode { "ttnn.experimental.paged_update_cache" } else { "ttnn.fill_cache" };
    p.op_into(cache_op, &[&k_rot], &w.k_cache)?;
    p.op_into(cache_op, &[&v], &w.v_cache)?;
    let sdpa_op = if decode {
        "ttnn.transformer.scaled_dot_product_attention_decode"
    } else {
        "ttnn.transformer.scaled_dot_product_attention"
    };
    let (kk, vv) = if decode { (&w.k_cache, &w.v_cache) } else { (&k_rot, &v) };
    let attn = p.op1(sdpa_op, &[&q_rot, kk, vv, &w.sinks], &[1, n.heads, s, d], "attn.sdpa")?;
    p.free(&[&q_rot, &k_rot, &v])?;
    let concat_op =
        if decode { "ttnn.experimental.nlp_concat_heads_decode" } else { "ttnn.experimental.nlp_concat_heads" };
    let concat = p.op1(concat_op, &[&attn], &[1, 1, s, n.heads * d], "attn.concat_heads")?;
    p.free(&[&attn])?;
    let o = p.op1("ttnn.linear", &[&concat, &w.o_proj, &w.o_bias], &[1, 1, s, h], "attn.o_proj")?;
    p.free(&[&concat])?;
    // The data path's call sites: its cached reduce-scatter intermediates are one per name.
    let name = if decode { "attn.decode.allreduce".to_string() } else { format!("layer{l}.attn.tp_allreduce") };
    let a = allreduce_rs_ag(p, &o, &name)?;
    p.free(&[&o])?;
    let x1 = p.op1("ttnn.add", &[&x, &a], &[1, 1, s, h], "layer.residual_attn")?;
    p.free(&[&x, &a])?;
    let h2 = p.op1("ttnn.rms_norm", &[&x1, &w.post_norm], &[1, 1, s, h], "layer.post_norm")?;
    if n.throughput {
        let moe = throughput::mlp(p, n, w, &h2, s, !decode)?;
        p.free(&[&h2])?;
        return residual_mlp(p, n, x1, moe, s);
    }
    let e_all = n.experts * n.rows;
    let logits = p.op1("ttnn.linear", &[&h2, &w.router, &w.router_bias], &[1, 1, s, e_all], "router.logits")?;
    let [vals, idx] = topk(p, &logits, s, n.top_k)?;
    p.free(&[&logits])?;
    let wts = p.op1("ttnn.softmax", &[&vals], &[1, 1, s, n.top_k], "router.weights")?;
    p.free(&[&vals])?;
    let routing = p.op1("ttnn.scatter", &[&idx, &wts], &[1, 1, s, e_all], "router.scores")?;
    p.free(&[&idx, &wts])?;
    let moe = experts(p, n, l, w, &h2, &routing, s, decode)?;
    p.free(&[&h2, &routing])?;
    residual_mlp(p, n, x1, moe, s)
}

/// The MLP's residual add; frees both inputs.
fn residual_mlp(p: &mut Planner, n: &Dims, x1: Tensor, moe: Tensor, s: usize) -> Result<Tensor, RunError> {
    let x2 = p.op1("ttnn.add", &[&x1, &moe], &[1, 1, s, n.h], "layer.residual_mlp")?;
    p.free(&[&x1, &moe])?;
    Ok(x2)
}

/// `ttnn.topk` over the last dim: bf16 values and uint32 indices, as the simulator's op gives.
fn topk(p: &mut Planner, logits: &Tensor, s: usize, k: usize) -> Result<[Tensor; 2], RunError> {
    let values = spec(&[1, 1, s, k]);
    let indices = values.clone().with_dtype(DType::U32);
    let top = p.op_specs("ttnn.topk", &[logits], &[(values, "router.top_values"), (indices, "router.top_indices")])?;
    <[Tensor; 2]>::try_from(top).map_err(|_| RunError::Usage("topk".into()))
}

/// `mesh_config.allreduce` as the data path runs it (`device::allreduce`): the simulator's
/// reduce-scatter then all-gather over the columns, with the CCL manager's ping-pong
/// semaphores and barriers and the reduce-scatter's cached intermediate `<name>.rs_intermediate`.
fn allreduce_rs_ag(p: &mut Planner, x: &Tensor, name: &str) -> Result<Tensor, RunError> {
    let rs_extra = ReduceScatterAsync {
        semaphores: p.ccl.rs_semaphores(),
        barrier: Some(p.ccl.barrier_semaphore()),
        intermediate_name: Some(format!("{name}.rs_intermediate")),
        ..ReduceScatterAsync::default()
    };
    let args = p.ccl_args(1, &format!("{name}.rs"));
    let rs = ccl::reduce_scatter_minimal_async(&mut p.mesh, x, 3, &args, &rs_extra).map_err(|e| within(e, RS, name))?;
    let ag_extra = AllGatherAsync {
        semaphores: p.ccl.ag_semaphores(),
        barrier: Some(p.ccl.barrier_semaphore()),
        persistent_output: None,
    };
    let args = p.ccl_args(1, &format!("{name}.ag"));
    let ag =
        ccl::all_gather_async(&mut p.mesh, &rs, 3, &args, &ag_extra).map_err(|e| named(e, &format!("{name}.ag")))?;
    p.free(&[&rs])?;
    Ok(ag)
}

/// The low-latency experts with this chip's `E / rows` experts and `I / tp` of each: gate and
/// up (`sparse_matmul`), the SwiGLU, the down projection in splits of [`DOWN_SPLIT`] rows
/// weighted by the routing and summed over the experts, then the EP all-reduce over the rows
/// and the TP all-reduce over the columns.
#[allow(clippy::too_many_arguments)]
fn experts(
    p: &mut Planner,
    n: &Dims,
    l: usize,
    w: &LayerW,
    x: &Tensor,
    routing: &Tensor,
    s: usize,
    decode: bool,
) -> Result<Tensor, RunError> {
    let (e, i, h) = (n.experts, n.inter, n.h);
    let gu = p.op1("ttnn.sparse_matmul", &[x, &w.gate_up, routing], &[1, e, s, 2 * i], "experts.gate_up")?;
    let biased = p.op1("ttnn.add", &[&gu, &w.gate_up_bias], &[1, e, s, 2 * i], "experts.gate_up_bias")?;
    p.free(&[&gu])?;
    let act = p.op1("ttnn.swiglu", &[&biased], &[1, e, s, i], "experts.swiglu")?;
    p.free(&[&biased])?;
    let mut parts = Vec::new();
    let split = DOWN_SPLIT.min(s);
    for start in (0..s).step_by(split) {
        let rows = split.min(s - start);
        let a = p.op1("ttnn.slice", &[&act], &[1, e, rows, i], "experts.act_split")?;
        let down = p.op1("ttnn.matmul", &[&a, &w.down], &[1, e, rows, h], "experts.down")?;
        p.free(&[&a])?;
        let db = p.op1("ttnn.add", &[&down, &w.down_bias], &[1, e, rows, h], "experts.down_bias")?;
        p.free(&[&down])?;
        let weighted = p.op1("ttnn.mul", &[&db, routing], &[1, e, rows, h], "experts.weighted")?;
        p.free(&[&db])?;
        let sum = p.op1("ttnn.experimental.fast_reduce_nc", &[&weighted], &[1, 1, rows, h], "experts.sum")?;
        p.free(&[&weighted])?;
        parts.push(sum);
    }
    p.free(&[&act])?;
    let refs: Vec<&Tensor> = parts.iter().collect();
    let summed = p.op1("ttnn.concat", &refs, &[1, 1, s, h], "experts.concat")?;
    p.free(&refs)?;
    // The data path's output names (decode: `decode_experts`; prefill: `tp_reduce`).
    let (ep_name, tp_name) = match decode {
        true => ("experts.decode.ep_all_reduce".to_string(), "experts.decode.tp_all_reduce".to_string()),
        false => (format!("layer{l}.experts.ep_allreduce"), format!("layer{l}.experts.tp_allreduce")),
    };
    let summed = if n.rows > 1 {
        let ep = p.all_reduce(&summed, 0, &ep_name)?;
        p.free(&[&summed])?;
        ep
    } else {
        summed
    };
    let out = p.all_reduce(&summed, 1, &tp_name)?;
    p.free(&[&summed])?;
    Ok(out)
}

/// Names the buffer in an out-of-memory, which the allocator's message does not.
fn named(e: SimError, name: &str) -> RunError {
    match e {
        SimError::Alloc(AllocError::OutOfMemory(msg)) => {
            RunError::Sim(SimError::Alloc(AllocError::OutOfMemory(format!("'{name}': {msg}"))))
        }
        other => RunError::Sim(other),
    }
}

/// Names the collective (and its call site) in an out-of-memory: the buffer it could not
/// place is its output or one of its op-cache buffers.
fn within(e: SimError, op: &str, site: &str) -> RunError {
    match e {
        SimError::Alloc(AllocError::OutOfMemory(msg)) => {
            RunError::Sim(SimError::Alloc(AllocError::OutOfMemory(format!("{op} '{site}': {msg}"))))
        }
        other => RunError::Sim(other),
    }
}

fn oom(e: &RunError) -> Option<String> {
    match e {
        RunError::Sim(SimError::Alloc(AllocError::OutOfMemory(msg))) => Some(msg.clone()),
        _ => None,
    }
}

/// The circular-buffer errors tt-metal throws at a program's dispatch.
fn cb_error(e: &RunError) -> Option<String> {
    match e {
        RunError::Sim(sim @ (SimError::CbClash { .. } | SimError::CbBeyondL1 { .. })) => Some(sim.to_string()),
        _ => None,
    }
}

/// Runs the plan: every weight and the KV cache, a prefill of `seq_len` tokens, then
/// `decode_steps` decode steps, through all layers. An out-of-memory ends the plan (the trace
/// so far is complete and readable) and is returned in the outcome, not as an error.
/// `progress` hears each layer of each pass (prefill, decode steps) as it starts.
pub fn plan(
    opts: &PlanOptions,
    recorder: Arc<dyn Recorder>,
    progress: &dyn Fn(Progress<'_>),
) -> Result<PlanOutcome, RunError> {
    let c = &opts.config;
    let (rows, tp) = (opts.rows as usize, opts.cols as usize);
    let divides = |what: &str, n: usize, by: usize| {
        if by == 0 || n % by != 0 {
            Err(RunError::Usage(format!("--plan: {what} ({n}) do not divide over {by}")))
        } else {
            Ok(n / by)
        }
    };
    let dims = Dims {
        h: c.hidden_size,
        d: c.head_dim,
        heads: divides("attention heads", c.num_attention_heads, tp)?,
        kv_heads: divides("kv heads", c.num_key_value_heads, tp)?,
        experts: divides("experts", c.num_local_experts, rows)?,
        inter: divides("the intermediate size", c.intermediate_size, tp)?,
        vocab: divides("the vocabulary", c.vocab_size, tp)?,
        top_k: c.num_experts_per_tok,
        rows,
        tp,
        throughput: throughput_prefill(rows, tp, c.num_local_experts),
        local: c.num_local_experts / (rows * tp).max(1),
    };

    if opts.seq_len % TILE != 0 {
        return Err(RunError::Usage(format!("--plan: --seq-len {} is not a multiple of {TILE}", opts.seq_len)));
    }
    // Writes mode records allocations and ops; no kernel runs, so the only writes are the
    // semaphores' initial values, as in the data path.
    let config = MeshConfig::new(opts.arch, opts.rows, opts.cols)
        .detect(crate::sim::DetectMode::Writes)
        .placement_only()
        .command(&opts.command);
    let watch = Arc::new(L1Watch::new(recorder));
    let mut mesh = Mesh::new(config, watch.clone())?;
    // The CCL manager first, as the data path's fixture creates it: its semaphores take the top
    // of L1 before anything else is placed.
    let ccl = CclManager::gpt_oss(&mut mesh, Topology::Ring, 1)?;
    let mut p = Planner { mesh, ccl };
    let result = walk(&mut p, &dims, c.num_hidden_layers, opts, progress);
    let (out_of_memory, program_error) = match result {
        Ok(()) => (None, None),
        Err(e) => match (oom(&e), cb_error(&e)) {
            (Some(msg), _) => {
                p.mesh.mark(&format!("plan: out of memory: {msg}"));
                (Some(msg), None)
            }
            (None, Some(msg)) => {
                p.mesh.mark(&format!("plan: program error: {msg}"));
                (None, Some(msg))
            }
            (None, None) => return Err(e),
        },
    };
    let stats = p.mesh.finish()?;
    let total = c.num_hidden_layers * passes(opts).len();
    progress(Progress { done: total, total, step: "" });
    Ok(PlanOutcome { ops: stats.ops, allocations: stats.buffers, out_of_memory, program_error, l1: watch.peak() })
}

/// The passes of a plan: `(rows, decode)`.
fn passes(opts: &PlanOptions) -> Vec<(usize, bool)> {
    let mut passes: Vec<(usize, bool)> = Vec::new();
    if opts.seq_len > 0 {
        passes.push((opts.seq_len, false));
    }
    passes.extend(std::iter::repeat_n((TILE, true), opts.decode_steps));
    passes
}

fn walk(
    p: &mut Planner,
    n: &Dims,
    layers: usize,
    opts: &PlanOptions,
    progress: &dyn Fn(Progress<'_>),
) -> Result<(), RunError> {
    let max_seq = (opts.seq_len + opts.decode_steps).div_ceil(TILE).max(1) * TILE;
    p.mesh.mark("plan: weights");
    let embed_spec = spec(&[1, 1, n.vocab * n.tp, n.h]).row_major();
    let embed = p.alloc_spec(&embed_spec, "model.embed_tokens.weight", Role::Weight)?;
    let ws = (0..layers).map(|l| upload_layer(p, n, l, max_seq)).collect::<Result<Vec<_>, _>>()?;
    let norm = p.alloc(&[1, 1, 1, n.h], "model.norm.weight", Role::Weight)?;
    let lm_head = p.alloc(&[1, 1, n.h, n.vocab], "lm_head.weight", Role::Weight)?;
    let passes = passes(opts);
    let total = layers * passes.len();
    for (i, &(s, decode)) in passes.iter().enumerate() {
        let pass = if decode { format!("decode step {i}") } else { format!("prefill {s}") };
        p.mesh.mark(&format!("plan: {pass}"));
        // Token ids as the data path uploads them: uint32, row-major.
        let ids_spec = TensorSpec::new(&[1, 1, s], DType::U32).row_major();
        let ids = p.alloc_spec(&ids_spec, "tokens", Role::Activation)?;
        let mut x = p.op1("ttnn.embedding", &[&ids, &embed], &[1, 1, s, n.h], "embedding")?;
        p.free(&[&ids])?;
        for (l, w) in ws.iter().enumerate() {
            progress(Progress { done: i * layers + l, total, step: &format!("{pass}, layer {l}") });
            x = layer(p, n, l, w, x, s, decode)?;
        }
        // The demo keeps only the last token's tile for the logits.
        let last = p.op1("ttnn.slice", &[&x], &[1, 1, TILE, n.h], "last_tile")?;
        p.free(&[&x])?;
        let normed = p.op1("ttnn.rms_norm", &[&last, &norm], &[1, 1, TILE, n.h], "final_norm")?;
        p.free(&[&last])?;
        let logits = p.op1("ttnn.matmul", &[&normed, &lm_head], &[1, 1, TILE, n.vocab], "lm_head.out")?;
        p.free(&[&normed, &logits])?;
    }
    Ok(())
}
