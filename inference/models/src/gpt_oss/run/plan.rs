//! Plan mode (`ttsan run gpt-oss --plan`): the full-size model (gpt-oss-20b or 120b) through the
//! data path's own device code, on a placement-only mesh with shape-only weights
//! ([`ModelWeights::shapes`]). Every op places exactly what it places in a data run (outputs,
//! op-cache scratch, circular buffers, semaphores) and runs no kernel
//! ([`ttsan_sim::OpRun::compute`]); host uploads write nothing. So the trace shows what the
//! allocator does with the real shapes, the whole model uploaded, then a prefill and decode
//! steps with the KV cache, in seconds, and an out-of-memory stops the plan exactly where the
//! allocator refuses.
//!
//! The model holds one experts placement, as the demo's model object does
//! ([`ExpertsPlacement::Single`]): the throughput experts where the chips divide the experts,
//! the low-latency ones elsewhere. gpt-oss-120b on a Galaxy fits no other way. The experts'
//! tensor-parallel reduction is the data path's default (`reduce_scatter_minimal_async` +
//! `all_gather_async`, [`TpReduce::ReduceScatterAllGather`]).
//!
//! The CCL manager's global semaphores are created first, as the data path's fixture does, so
//! the plan's L1 and its out-of-memory points are the data path's, and a circular-buffer region
//! that does not fit ends the plan with the simulator's error, as tt-metal throws at dispatch.

mod l1;

pub use l1::L1Peak;

use super::error::RunError;
use super::scenario::Progress;
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::device::{DecodeModel, DeviceError, DeviceKvCache, ExpertsPlacement, TpReduce, KV_BLOCK};
use crate::gpt_oss::ModelWeights;
use l1::L1Watch;
use std::sync::Arc;
use ttsan_alloc_model::AllocError;
use ttsan_events::Arch;
use ttsan_shim::Recorder;
use ttsan_sim::ccl::{CclManager, Topology};
use ttsan_sim::{Mesh, MeshConfig, SimError};

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
    /// Prefill tokens (0: no prefill). Any length: the prompt is padded to a tile as the data
    /// path pads it.
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

/// The simulator's error inside a run error, wherever the device path wrapped it.
fn sim_error(e: &RunError) -> Option<&SimError> {
    match e {
        RunError::Sim(s) | RunError::Device(DeviceError::Sim(s)) => Some(s),
        _ => None,
    }
}

fn oom(e: &RunError) -> Option<String> {
    match sim_error(e) {
        Some(SimError::Alloc(AllocError::OutOfMemory(msg))) => Some(msg.clone()),
        _ => None,
    }
}

/// The circular-buffer errors tt-metal throws at a program's dispatch.
fn cb_error(e: &RunError) -> Option<String> {
    match sim_error(e) {
        Some(sim @ (SimError::CbClash { .. } | SimError::CbBeyondL1 { .. })) => Some(sim.to_string()),
        _ => None,
    }
}

/// Rejects a mesh the model does not divide over, naming the flag's numbers.
fn check_divides(c: &GptOssConfig, rows: usize, tp: usize) -> Result<(), RunError> {
    let divides = |what: &str, n: usize, by: usize| match by == 0 || n % by != 0 {
        true => Err(RunError::Usage(format!("--plan: {what} ({n}) do not divide over {by}"))),
        false => Ok(()),
    };
    divides("attention heads", c.num_attention_heads, tp)?;
    divides("kv heads", c.num_key_value_heads, tp)?;
    divides("experts", c.num_local_experts, rows)?;
    divides("the intermediate size", c.intermediate_size, tp)?;
    divides("the vocabulary", c.vocab_size, tp)
}

/// Runs the plan: every weight, the KV cache, a prefill of `seq_len` tokens, then
/// `decode_steps` decode steps, through all layers. An out-of-memory ends the plan (the trace
/// so far is complete and readable) and is returned in the outcome, not as an error.
/// `progress` hears each layer of each pass (prefill, decode steps) as it starts.
pub fn plan(
    opts: &PlanOptions,
    recorder: Arc<dyn Recorder>,
    progress: &dyn Fn(Progress<'_>),
) -> Result<PlanOutcome, RunError> {
    let c = &opts.config;
    check_divides(c, opts.rows as usize, opts.cols as usize)?;
    // Writes mode records allocations and ops; no kernel runs, so the only writes are the
    // semaphores' initial values, as in the data path.
    let config = MeshConfig::new(opts.arch, opts.rows, opts.cols)
        .detect(ttsan_sim::DetectMode::Writes)
        .placement_only()
        .command(&opts.command);
    let watch = Arc::new(L1Watch::new(recorder));
    let mut mesh = Mesh::new(config, watch.clone())?;
    // The CCL manager first, as the data path's fixture creates it: its semaphores take the top
    // of L1 before anything else is placed.
    let mut ccl = crate::gpt_oss::ccl::manager(&mut mesh, Topology::Ring, 1)?;
    let weights = ModelWeights::shapes(c.clone());
    let result = model_passes(&mut mesh, &mut ccl, &weights, opts.seq_len, opts.decode_steps, progress);
    let (out_of_memory, program_error) = match result {
        Ok(()) => (None, None),
        Err(e) => match (oom(&e), cb_error(&e)) {
            (Some(msg), _) => {
                mesh.mark(&format!("plan: out of memory: {msg}"));
                (Some(msg), None)
            }
            (None, Some(msg)) => {
                mesh.mark(&format!("plan: program error: {msg}"));
                (None, Some(msg))
            }
            (None, None) => return Err(e),
        },
    };
    let stats = mesh.finish()?;
    let total = c.num_hidden_layers * passes(opts.seq_len, opts.decode_steps);
    progress(Progress { done: total, total, step: "" });
    Ok(PlanOutcome { ops: stats.ops, allocations: stats.buffers, out_of_memory, program_error, l1: watch.peak() })
}

/// Passes over the layers: the prefill (if any) and each decode step.
fn passes(seq_len: usize, decode_steps: usize) -> usize {
    usize::from(seq_len > 0) + decode_steps
}

/// The model as the plan runs it, on any mesh: every weight of `weights` uploaded with one
/// experts placement, a KV cache for `seq_len + decode_steps` positions, a prefill of `seq_len`
/// tokens (none when 0), then `decode_steps` decode steps. Plan mode calls it on a
/// placement-only mesh with [`ModelWeights::shapes`]; on a data mesh with real weights it is
/// the same model computing, which is how the tests check that a plan places exactly what the
/// data path places.
pub fn model_passes(
    mesh: &mut Mesh,
    ccl: &mut CclManager,
    weights: &ModelWeights,
    seq_len: usize,
    decode_steps: usize,
    progress: &dyn Fn(Progress<'_>),
) -> Result<(), RunError> {
    let c = &weights.config;
    let layers = c.num_hidden_layers;
    let total = layers * passes(seq_len, decode_steps);
    mesh.mark("plan: weights");
    let model = DecodeModel::upload_with(mesh, weights, ExpertsPlacement::Single)?;
    let positions = (seq_len + decode_steps).div_ceil(KV_BLOCK).max(1) * KV_BLOCK;
    let mut cache = DeviceKvCache::new(mesh, c, positions, false)?;
    let mut pass = 0;
    if seq_len > 0 {
        let name = format!("prefill {seq_len}");
        mesh.mark(&format!("plan: {name}"));
        // The ids' values only matter to a data mesh; any in-vocabulary id serves.
        let tokens: Vec<u32> = (0..seq_len).map(|i| (i % c.vocab_size.max(1)) as u32).collect();
        let mut on_layer = |l: usize| progress(Progress { done: l, total, step: &format!("{name}, layer {l}") });
        model.prefill(mesh, ccl, &mut cache, &tokens, TpReduce::ReduceScatterAllGather, &mut on_layer)?;
        pass += 1;
    }
    for step in 0..decode_steps {
        let name = format!("decode step {pass}");
        mesh.mark(&format!("plan: {name}"));
        let done = pass * layers;
        let mut on_layer = |l: usize| progress(Progress { done: done + l, total, step: &format!("{name}, layer {l}") });
        model.decode_step(mesh, ccl, &mut cache, 1, seq_len + step, &mut on_layer)?;
        pass += 1;
    }
    Ok(())
}
