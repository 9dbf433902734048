//! A whole run: build the weights, open the mesh with the faults, run the module tests (or
//! the whole model), finish the trace.

use super::error::RunError;
use super::faults::{resolve, wants_cb_clash, FaultContext};
use super::module::{Module, ModuleResult};
use super::options::{Mode, ModelSource, RunOptions};
use super::session::Session;
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::device::{DeviceError, TpReduce};
use crate::gpt_oss::{load_checkpoint, random_weights, ModelWeights};
use std::sync::Arc;
use ttsan_shim::Recorder;
use ttsan_sim::{Mesh, MeshConfig, RunStats, SimError};

/// What a run produced besides its trace.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Module results in run order (the whole model appears as `model`).
    pub modules: Vec<ModuleResult>,
    /// The logits of a whole-model run: `[tokens, vocab]` for a prefill, `[tokens + steps,
    /// vocab]` when decode steps follow it.
    pub logits: Option<(Vec<usize>, Vec<f32>)>,
    /// Simulator counts (`None` when a program error stopped the run).
    pub stats: Option<RunStats>,
    /// The error that stopped the run as tt-metal would throw it (a circular-buffer clash),
    /// with its message; the trace up to it is complete.
    pub program_error: Option<String>,
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

/// Where a run is: `done` of `total` units (a module test in one phase, the whole model's
/// prefill, one decode step of the whole model, one layer of a plan pass), and the unit that
/// starts now (empty once `done == total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<'a> {
    /// Units finished.
    pub done: usize,
    /// Units in the run.
    pub total: usize,
    /// The unit starting now.
    pub step: &'a str,
}

/// Units of a run: one per module test and phase; the whole model with decode counts its
/// prefill and each step.
fn units(modules: &[Module], phases: &[Mode], steps: usize) -> usize {
    modules
        .iter()
        .map(|m| match (m, phases) {
            (Module::Model, [Mode::Prefill]) => 1,
            (Module::Model, _) => 1 + steps,
            _ => phases.len(),
        })
        .sum()
}

/// Runs `opts`, recording through `recorder`; `progress` hears each unit as it starts, and
/// once more at the end.
pub fn run(
    opts: &RunOptions,
    recorder: Arc<dyn Recorder>,
    progress: &dyn Fn(Progress<'_>),
) -> Result<RunOutcome, RunError> {
    let tokens = opts.input_ids.as_ref().map_or(opts.seq_len, Vec::len);
    // One case of the run's mode and length, or the cross-test sequence.
    let cases: Vec<(&'static [Mode], usize, Option<String>)> = if opts.cases.is_empty() {
        vec![(Mode::phases(opts.mode), tokens, None)]
    } else {
        if opts.input_ids.is_some() {
            return Err(RunError::Usage("--cases draws random inputs; it does not take --input-ids".into()));
        }
        opts.cases.iter().map(|c| (Mode::phases(Some(c.mode)), c.tokens, Some(c.to_string()))).collect()
    };
    let mut phases: Vec<Mode> = Vec::new();
    for m in cases.iter().flat_map(|c| c.0.iter()) {
        if !phases.contains(m) {
            phases.push(*m);
        }
    }
    if phases.contains(&Mode::Decode) && opts.decode_steps == 0 {
        return Err(RunError::Usage("decode needs --decode-steps of at least 1".into()));
    }
    let phases = phases.as_slice();
    let modules = opts.modules.clone().unwrap_or_else(|| vec![Module::Model]);
    // The model first: its expert count decides which experts a prefill on several rows runs.
    let weights = load_model(&opts.model, opts.seed)?;
    let ctx = FaultContext {
        arch: opts.arch,
        rows: opts.rows,
        cols: opts.cols,
        experts: weights.config.num_local_experts,
        modules: &modules,
        phases,
        fix_all_reduce: opts.fix_all_reduce,
        skew_seed: opts.skew_seed,
    };
    let faults = resolve(&opts.inject, &ctx)?;
    let mut config = MeshConfig::new(opts.arch, opts.rows, opts.cols).detect(opts.detect).command(&opts.command);
    for g in &opts.guard_globs {
        config = config.guard_glob(g);
    }
    if let Some(roles) = &opts.guard_roles {
        config = config.guard_roles(roles);
    }
    if let Some(canaries) = opts.canaries {
        config = config.canaries(canaries);
    }
    if opts.digest_outputs {
        config = config.digest_outputs();
    }
    for f in faults {
        config = config.fault(f);
    }
    let mesh = Mesh::new(config, recorder)?;
    let layer = opts.layers.first().copied().unwrap_or(0);
    let reduce = if opts.fix_all_reduce { TpReduce::AllReduce } else { TpReduce::ReduceScatterAllGather };
    let first = cases.first().map_or(tokens, |c| c.1);
    let mut session = Session::new(mesh, &weights, layer, first, opts.decode_steps, reduce, opts.seed)?;
    let mut results = Vec::new();
    let mut logits = None;
    let vocab = weights.config.vocab_size;
    let ids = opts.input_ids.as_deref();
    let total = cases.iter().map(|c| units(&modules, c.0, opts.decode_steps)).sum();
    let done = std::cell::Cell::new(0usize);
    let tick = |step: &str| {
        progress(Progress { done: done.get(), total, step });
        done.set(done.get() + 1);
    };
    let staged = if wants_cb_clash(&opts.inject) { session.stage_cb_clash() } else { Ok(()) };
    // Module tests build the whole decoder layer before any component runs; the whole model
    // uploads its own weights.
    let module_tests = modules.iter().any(|m| *m != Module::Model);
    let ran = staged.and_then(|()| {
        for (i, (case_phases, case_tokens, label)) in cases.iter().enumerate() {
            if let Some(label) = label {
                session.mesh().mark(&format!("case {label} begin"));
            }
            if module_tests {
                session.setup_decoder_layer(*case_tokens)?;
            } else {
                session.tokens = *case_tokens;
            }
            let from = results.len();
            for &module in &modules {
                run_one(&mut session, module, case_phases, ids, &tick, &mut results, &mut logits, *case_tokens, vocab)?;
            }
            for r in &mut results[from..] {
                r.case.clone_from(label);
            }
            // The last case's layer lives until the fixture closes the mesh at the run's end.
            if module_tests && i + 1 < cases.len() {
                session.teardown_decoder_layer()?;
            }
            if let Some(label) = label {
                session.mesh().mark(&format!("case {label} end"));
            }
        }
        Ok(())
    });
    let program_error = match ran {
        Ok(()) => None,
        Err(e) => match program_error(&e) {
            Some(sim) => {
                session.mesh().mark("run stopped: program error");
                Some(sim.to_string())
            }
            None => return Err(e),
        },
    };
    // After a program error the device is as the failed dispatch left it; its trace is what
    // matters, and closing may fail on that state.
    let stats = match (&program_error, session.finish()) {
        (_, Ok(stats)) => Some(stats),
        (Some(_), Err(_)) => None,
        (None, Err(e)) => return Err(e),
    };
    progress(Progress { done: total, total, step: "" });
    Ok(RunOutcome { modules: results, logits, stats, program_error })
}

/// The device errors that end a run as tt-metal's throw would (the program never runs), as
/// opposed to the harness's own failures.
fn program_error(e: &RunError) -> Option<&SimError> {
    let sim = match e {
        RunError::Sim(sim) | RunError::Device(DeviceError::Sim(sim)) => sim,
        _ => return None,
    };
    matches!(sim, SimError::CbClash { .. } | SimError::CbBeyondL1 { .. }).then_some(sim)
}

/// One module in every phase of the run, its results and the model's logits appended.
#[allow(clippy::too_many_arguments)]
fn run_one(
    session: &mut Session<'_>,
    module: Module,
    phases: &[Mode],
    ids: Option<&[u32]>,
    tick: &dyn Fn(&str),
    results: &mut Vec<ModuleResult>,
    logits: &mut Option<(Vec<usize>, Vec<f32>)>,
    tokens: usize,
    vocab: usize,
) -> Result<(), RunError> {
    let threshold = module.threshold();
    match (module, phases) {
        (Module::Model, [Mode::Prefill]) => {
            tick("model prefill");
            let (pcc, values) = session.model(ids)?;
            *logits = Some((vec![tokens, vocab], values));
            results.push(ModuleResult { module, mode: Mode::Prefill, pcc, threshold, case: None });
        }
        // The model's decode continues its own prefill (the cache it filled), so one run
        // gives both phases.
        (Module::Model, _) => {
            tick("model prefill");
            session.mesh().mark("module model begin");
            let run = session.model_decode(ids, &|step| tick(&format!("model decode step {step}")))?;
            session.end_module()?;
            session.mesh().mark("module model end");
            if phases.contains(&Mode::Prefill) {
                results.push(ModuleResult { module, mode: Mode::Prefill, pcc: run.prefill_pcc, threshold, case: None });
            }
            results.push(ModuleResult { module, mode: Mode::Decode, pcc: run.decode_pcc, threshold, case: None });
            *logits = Some((vec![run.rows, vocab], run.logits));
        }
        _ => {
            for &phase in phases {
                tick(&format!("{module} {phase}"));
                results.push(session.run_module(module, phase)?);
            }
        }
    }
    Ok(())
}
