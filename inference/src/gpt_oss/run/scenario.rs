//! A whole run: build the weights, open the mesh with the faults, run the module tests (or
//! the whole model), finish the trace.

use super::error::RunError;
use super::faults::{resolve, FaultContext};
use super::module::{Module, ModuleResult};
use super::options::{Mode, ModelSource, RunOptions};
use super::session::Session;
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::device::TpReduce;
use crate::gpt_oss::{load_checkpoint, random_weights, ModelWeights};
use crate::sim::{Mesh, MeshConfig, RunStats};
use std::sync::Arc;
use ttsan_shim::Recorder;

/// What a run produced besides its trace.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Module results in run order (the whole model appears as `model`).
    pub modules: Vec<ModuleResult>,
    /// The logits `[tokens, vocab]` of a whole-model prefill.
    pub logits: Option<(Vec<usize>, Vec<f32>)>,
    /// Simulator counts.
    pub stats: RunStats,
}

/// The model a run uses. `tiny` is tiny-tt (tile-aligned widths on 1x8 and 4x8); the released
/// sizes do not fit in host memory as f32 and are for `--plan`.
pub fn load_model(source: &ModelSource, seed: u64) -> Result<ModelWeights, RunError> {
    match source {
        ModelSource::Checkpoint(dir) => Ok(load_checkpoint(dir)?),
        ModelSource::Preset(name) => match name.as_str() {
            "tiny" | "tiny-tt" => Ok(random_weights(&GptOssConfig::tiny_tt(), seed)),
            "20b" | "120b" | "gpt-oss-20b" | "gpt-oss-120b" => Err(RunError::Usage(format!(
                "--config {name}: random f32 weights of the released sizes do not fit in host memory; use --plan"
            ))),
            other => Err(RunError::Usage(format!("unknown --config `{other}` (tiny, 20b, 120b)"))),
        },
    }
}

/// Runs `opts`, recording through `recorder`; `progress` hears each step as it starts.
pub fn run(opts: &RunOptions, recorder: Arc<dyn Recorder>, progress: &dyn Fn(&str)) -> Result<RunOutcome, RunError> {
    match opts.mode {
        Some(Mode::Prefill) => {}
        Some(Mode::Decode) => {
            return Err(RunError::Usage(
                "--mode decode: the device decode path is not wired into `ttsan run gpt-oss` yet; use --mode prefill"
                    .into(),
            ))
        }
        None => {
            return Err(RunError::Usage(
                "without --mode the run is a prefill then decode steps, and the device decode path is not wired \
                 into `ttsan run gpt-oss` yet; use --mode prefill"
                    .into(),
            ))
        }
    }
    let modules = opts.modules.clone().unwrap_or_else(|| vec![Module::Model]);
    let ctx = FaultContext { rows: opts.rows, modules: &modules, fix_all_reduce: opts.fix_all_reduce };
    let faults = resolve(&opts.inject, &ctx)?;
    let weights = load_model(&opts.model, opts.seed)?;
    let mut config = MeshConfig::new(opts.arch, opts.rows, opts.cols).detect(opts.detect).command(&opts.command);
    for g in &opts.guard_globs {
        config = config.guard_glob(g);
    }
    if let Some(roles) = &opts.guard_roles {
        config = config.guard_roles(roles);
    }
    for f in faults {
        config = config.fault(f);
    }
    let mesh = Mesh::new(config, recorder)?;
    let layer = opts.layers.first().copied().unwrap_or(0);
    let reduce = if opts.fix_all_reduce { TpReduce::AllReduce } else { TpReduce::ReduceScatterAllGather };
    let tokens = opts.input_ids.as_ref().map_or(opts.seq_len, Vec::len);
    let mut session = Session::new(mesh, &weights, layer, tokens, reduce, opts.seed)?;
    let mut results = Vec::new();
    let mut logits = None;
    for (i, &module) in modules.iter().enumerate() {
        progress(&format!("[{}/{}] module {module}", i + 1, modules.len()));
        if module == Module::Model {
            let (pcc, values) = session.model(opts.input_ids.as_deref())?;
            logits = Some((vec![tokens, weights.config.vocab_size], values));
            results.push(ModuleResult { module, pcc, threshold: module.threshold() });
        } else {
            results.push(session.run_module(module)?);
        }
    }
    let stats = session.finish()?;
    Ok(RunOutcome { modules: results, logits, stats })
}
