//! `ttsan run gpt-oss`: the GPT-OSS inference path on the simulated mesh, under the sanitizer.
//!
//! Records the run through a `FileRecorder` (a temporary trace unless `--trace`), analyses the
//! trace as `ttsan analyze` does (same report, same exit codes, plus 4 when nothing was found
//! but a module missed its PCC threshold), prints the module PCCs, adds them to the JSON report
//! as `modules[]` (and to JUnit as test cases), and writes the HTML allocation map on request.

use super::analyze::{analyze_trace, analyze_with_map, emit, emit_with, incomplete};
use super::exit::{plain_verdict, verdict_code, Failure, Outcome, ACCURACY};
use super::gpt_oss_args::{parse_cases, parse_ids, parse_layers, parse_mesh};
use super::options::EnvOptions;
use super::settings::{Format, ReportArgs, Settings};
use anyhow::{anyhow, Context as _};
use clap::Args;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use ttsan_inference::common::npy;
use ttsan_inference::gpt_oss::config::GptOssConfig;
use ttsan_inference::gpt_oss::run::{
    plan, run as run_model, Mode, ModelSource, Module, PlanOptions, Progress, RunError, RunOptions, RunOutcome,
};
use ttsan_inference::sim::{Canaries, DetectMode};
use ttsan_sanitizer::ci::{Check, Verdict};
use ttsan_sanitizer::report::{render_text, Report, Status};
use ttsan_sanitizer::FindingKind;
use ttsan_shim::events::{Arch, Role};
use ttsan_shim::FileRecorder;

/// Options of `ttsan run gpt-oss`.
#[derive(Debug, Args)]
pub struct GptOssArgs {
    /// Mesh shape RxC.
    #[arg(long, default_value = "1x8")]
    pub mesh: String,
    /// Chip architecture: wormhole or blackhole.
    #[arg(long, default_value = "wormhole")]
    pub arch: String,
    /// prefill or decode (default: a prefill of 32 tokens, then decode steps).
    #[arg(long)]
    pub mode: Option<String>,
    /// Prefill tokens (module tests: a multiple of 32; the whole model pads any length).
    #[arg(long, default_value_t = 32)]
    pub seq_len: usize,
    /// Decode steps.
    #[arg(long, default_value_t = 2)]
    pub decode_steps: usize,
    /// Layers (N, N-M, comma separated); module tests run on the first.
    #[arg(long, default_value = "0")]
    pub layers: String,
    /// Module tests in order: attention, router, experts, decoder, model, or all.
    #[arg(long)]
    pub modules: Option<String>,
    /// Model config: tiny, 20b or 120b (random weights).
    #[arg(long, conflicts_with = "checkpoint")]
    pub config: Option<String>,
    /// An HF checkpoint directory.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Random-weight seed.
    #[arg(long, default_value_t = 21)]
    pub seed: u64,
    /// A cross-test sequence on one mesh and program cache, as pytest runs several test ids
    /// with one fixture: MODE:TOKENS, comma separated (prefill:128,prefill:2048). Each case
    /// builds the decoder layer, runs the module tests and frees the layer.
    #[arg(long, value_name = "CASES", conflicts_with_all = ["mode", "input_ids"])]
    pub cases: Option<String>,
    /// Seed of the cross-chip skew of `--inject ccl-peer-skew` (which peer chip's fabric writes
    /// are late, and by how many ops); the weights and inputs do not depend on it.
    #[arg(long, default_value_t = 0)]
    pub skew_seed: u64,
    /// Plan mode: full-size shapes, allocation and op events only.
    #[arg(long)]
    pub plan: bool,
    /// Prompt token ids, comma separated.
    #[arg(long, value_name = "IDS")]
    pub input_ids: Option<String>,
    /// Write the logits of a whole-model run as f32 .npy [tokens (+ decode steps), vocab].
    #[arg(long, value_name = "FILE")]
    pub logits_out: Option<PathBuf>,
    /// Inject a fault: a named fault (ccl-stale-scratch, ...) or the simulator's syntax.
    #[arg(long, value_name = "FAULT")]
    pub inject: Vec<String>,
    /// Apply a fix: all-reduce (the experts' TP all-reduce through ttnn.all_reduce).
    #[arg(long, value_name = "FIX")]
    pub fix: Vec<String>,
    /// Detection: writes, digests, both or none.
    #[arg(long, default_value = "writes")]
    pub detect: String,
    /// Also guard buffers whose name matches GLOB (digest modes).
    #[arg(long, value_name = "GLOB")]
    pub guard: Vec<String>,
    /// Guard buffers of ROLE in digest modes (replaces the default, every role: weights,
    /// activations, kv-cache, ccl-scratch, semaphores; `--guard-role weight` is weights only).
    /// TTSAN_OPTIONS: guard_role='ROLE,ROLE'.
    #[arg(long, value_name = "ROLE", value_delimiter = ',')]
    pub guard_role: Vec<String>,
    /// Canaries over free memory in digest modes: past-end, quarantine, free (comma separated),
    /// all (the default) or none. TTSAN_OPTIONS: canary='LIST'.
    #[arg(long, value_name = "LIST")]
    pub canary: Option<String>,
    /// Digest every op's outputs on every chip when it ends, so that `ttsan diff` can name the
    /// first op where two runs of this workload differ.
    #[arg(long)]
    pub digest_outputs: bool,
    /// Keep the trace in FILE (default: a temporary file).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Write the HTML allocation map to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Report options.
    #[command(flatten)]
    pub report: ReportArgs,
}

/// A `TTSAN_OPTIONS` list value: `key='a,b'` (quoted, because a bare comma separates keys there).
fn split_list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn usage(e: impl std::fmt::Display) -> Failure {
    Failure::usage(anyhow!("{e}"))
}

fn options(args: &GptOssArgs) -> Result<RunOptions, Failure> {
    let (rows, cols) = parse_mesh(&args.mesh).map_err(usage)?;
    let arch = match args.arch.as_str() {
        "wormhole" | "wormhole_b0" => Arch::WormholeB0,
        "blackhole" => Arch::Blackhole,
        other => return Err(usage(format!("unknown --arch `{other}` (wormhole, blackhole)"))),
    };
    let mode = match args.mode.as_deref() {
        None => None,
        Some("prefill") => Some(Mode::Prefill),
        Some("decode") => Some(Mode::Decode),
        Some(other) => return Err(usage(format!("unknown --mode `{other}` (prefill, decode)"))),
    };
    let detect: DetectMode = args.detect.parse().map_err(usage)?;
    let env = EnvOptions::from_env().map_err(Failure::usage)?;
    let env_roles: Vec<String> = env.string("guard_role").map(|v| split_list(&v)).unwrap_or_default();
    let role_names = if args.guard_role.is_empty() { &env_roles } else { &args.guard_role };
    let guard_roles = if role_names.is_empty() {
        None
    } else {
        let roles = role_names
            .iter()
            .map(|r| Role::parse(r).ok_or_else(|| usage(format!("unknown role `{r}`"))))
            .collect::<Result<Vec<_>, _>>()?;
        Some(roles)
    };
    let canaries = args.canary.clone().or_else(|| env.string("canary"));
    let canaries = canaries.as_deref().map(Canaries::parse).transpose().map_err(usage)?;
    let mut fix_all_reduce = false;
    for f in &args.fix {
        match f.as_str() {
            "all-reduce" => fix_all_reduce = true,
            other => return Err(usage(format!("unknown --fix `{other}` (all-reduce)"))),
        }
    }
    let model = match (&args.checkpoint, &args.config) {
        (Some(dir), _) => {
            // A missing checkpoint is the caller's mistake: say so in one line (exit 2) rather
            // than as the loader's I/O error on config.json.
            if !dir.is_dir() {
                return Err(usage(format!("--checkpoint {}: no such directory", dir.display())));
            }
            if !dir.join("config.json").is_file() {
                return Err(usage(format!(
                    "--checkpoint {}: no config.json there (expected a Hugging Face checkpoint directory)",
                    dir.display()
                )));
            }
            ModelSource::Checkpoint(dir.clone())
        }
        (None, Some(c)) => ModelSource::Preset(c.clone()),
        (None, None) => ModelSource::Preset("tiny".into()),
    };
    Ok(RunOptions {
        arch,
        rows,
        cols,
        mode,
        seq_len: args.seq_len,
        decode_steps: args.decode_steps,
        layers: parse_layers(&args.layers).map_err(usage)?,
        modules: args.modules.as_deref().map(Module::parse_list).transpose().map_err(usage)?,
        model,
        seed: args.seed,
        input_ids: args.input_ids.as_deref().map(parse_ids).transpose().map_err(usage)?,
        inject: args.inject.clone(),
        cases: args.cases.as_deref().map(parse_cases).transpose().map_err(usage)?.unwrap_or_default(),
        skew_seed: args.skew_seed,
        fix_all_reduce,
        detect,
        guard_globs: args.guard.clone(),
        guard_roles,
        canaries,
        digest_outputs: args.digest_outputs,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    })
}

/// One bar over the run's units (module tests, decode steps, plan layers) on stderr when it is
/// a terminal; nothing otherwise, so logs and pipes stay clean.
struct ProgressBar(Option<indicatif::ProgressBar>);

impl ProgressBar {
    fn for_stderr() -> Self {
        if !std::io::stderr().is_terminal() {
            return ProgressBar(None);
        }
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template("ttsan: [{bar:30}] {pos}/{len} {msg} ({elapsed})") {
            bar.set_style(style.progress_chars("=> "));
        }
        ProgressBar(Some(bar))
    }

    fn update(&self, p: Progress<'_>) {
        if let Some(bar) = &self.0 {
            bar.set_length(p.total as u64);
            bar.set_message(p.step.to_string());
            bar.set_position(p.done as u64);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// A trace path that is removed when dropped unless it was asked for.
struct TracePath {
    path: PathBuf,
    keep: bool,
}

impl Drop for TracePath {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Runs `work` recording into the run's trace file with a progress bar on a terminal; the trace
/// is complete on disk before the work's own error (usage or internal) is turned into an exit.
fn record<T>(
    args: &GptOssArgs,
    work: impl FnOnce(Arc<FileRecorder>, &ProgressBar) -> Result<T, RunError>,
) -> Result<(TracePath, T), Failure> {
    let trace = trace_path(args);
    let recorder = Arc::new(
        FileRecorder::create(&trace.path).with_context(|| trace.path.display().to_string()).map_err(Failure::usage)?,
    );
    let bar = ProgressBar::for_stderr();
    let outcome = work(recorder.clone(), &bar);
    bar.finish();
    recorder.finish().with_context(|| format!("writing trace {}", trace.path.display())).map_err(Failure::internal)?;
    let outcome = outcome.map_err(|e| {
        let code = if e.is_usage() { super::exit::USAGE } else { super::exit::INTERNAL };
        Failure { code, error: anyhow!("{e}") }
    })?;
    Ok((trace, outcome))
}

fn trace_path(args: &GptOssArgs) -> TracePath {
    match &args.trace {
        Some(p) => TracePath { path: p.clone(), keep: true },
        None => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let name = format!("ttsan-gpt-oss-{}-{nanos}.ttsan", std::process::id());
            TracePath { path: std::env::temp_dir().join(name), keep: false }
        }
    }
}

/// Runs GPT-OSS on the simulated mesh.
pub fn run(args: &GptOssArgs) -> Outcome {
    let settings = args.report.settings()?;
    let opts = options(args)?;
    if args.plan {
        return run_plan(args, &opts, &settings);
    }
    let (trace, outcome) = record(args, |recorder, bar| run_model(&opts, recorder, &|p| bar.update(p)))?;
    if let (Some(path), Some((shape, values))) = (&args.logits_out, &outcome.logits) {
        npy::write_f32(path, shape, values).with_context(|| path.display().to_string()).map_err(Failure::usage)?;
    } else if args.logits_out.is_some() {
        return Err(usage("--logits-out needs a whole-model run (no --modules, or --modules model)"));
    }
    if opts.detect == DetectMode::None {
        // The overhead baseline: nothing was recorded, so there is nothing to analyse, and
        // saying "clean" would claim a check that never happened.
        print_modules(&outcome, &mut std::io::stdout());
        eprintln!("ttsan: --detect none: the sanitizer was off; nothing was recorded or checked");
        let verdict = if pcc_failed(&outcome) { Verdict::Checks } else { Verdict::Pass };
        return verdict_code(verdict, settings.error_exitcode, |_| unreachable!("no failure without a report"));
    }
    if let Some(e) = &outcome.program_error {
        // tt-metal throws here; the trace up to the throw says who and what.
        eprintln!("ttsan: the run stopped with the device's error: {e}");
    }
    let report = analyze_with_map(&trace.path, args.html.as_deref(), &settings)?;
    let checks = || {
        print_modules(&outcome, &mut std::io::stderr());
        module_checks(&outcome)
    };
    emit_with(&report, &settings, checks, || finish(&report, &outcome, &settings))
}

/// `--plan`: the full-size model's allocations and ops, analysed as `ttsan analyze` would; an
/// out-of-memory is reported where the allocator refused and exits 1.
fn run_plan(args: &GptOssArgs, opts: &RunOptions, settings: &Settings) -> Outcome {
    let name = match &opts.model {
        ModelSource::Preset(name) => name.as_str(),
        ModelSource::Checkpoint(_) => return Err(usage("--plan takes --config (20b, 120b, tiny), not a checkpoint")),
    };
    let preset = match name {
        "20b" => "gpt-oss-20b",
        "120b" => "gpt-oss-120b",
        "tiny" => "tiny-tt",
        other => other,
    };
    let config = GptOssConfig::preset(preset).map_err(usage)?;
    let steps = if opts.mode == Some(Mode::Prefill) { 0 } else { opts.decode_steps };
    let seq = if opts.mode == Some(Mode::Decode) && args.seq_len == 0 { 0 } else { opts.seq_len };
    let plan_opts = PlanOptions {
        config,
        arch: opts.arch,
        rows: opts.rows,
        cols: opts.cols,
        seq_len: seq,
        decode_steps: steps,
        command: opts.command.clone(),
    };
    let (trace, outcome) = record(args, |recorder, bar| plan(&plan_opts, recorder, &|p| bar.update(p)))?;
    let report = analyze_trace(&trace.path, settings)?;
    eprintln!("ttsan: plan: {} ops, {} allocations", outcome.ops, outcome.allocations);
    let l1 = &outcome.l1;
    eprintln!(
        "ttsan: plan: L1 per core: circular buffers up to {} B ({}), L1 buffers {} B, {} B free between them at \
         the narrowest, of {} B",
        l1.circular_buffers,
        if l1.op.is_empty() { "no program" } else { l1.op.as_str() },
        l1.buffers,
        l1.headroom,
        l1.capacity
    );
    let stopped = match (&outcome.out_of_memory, &outcome.program_error) {
        (Some(msg), _) => Some(format!("plan: out of memory (the trace ends there): {msg}")),
        // tt-metal throws at the program's dispatch; the trace up to the throw says which.
        (None, Some(msg)) => Some(format!("plan: the device's error (the trace ends there): {msg}")),
        (None, None) => None,
    };
    if let Some(error) = stopped {
        print!("{}", render_text(&report, settings.text));
        return Err(Failure { code: super::exit::FINDINGS, error: anyhow!(error) });
    }
    emit(&report, settings)
}

/// The module results as CI checks (one JUnit test case each).
fn module_checks(outcome: &RunOutcome) -> Vec<Check> {
    outcome
        .modules
        .iter()
        .map(|m| Check {
            classname: "ttsan.gpt-oss.modules".into(),
            name: format!("{} {}", m.module, m.mode),
            passed: m.passed(),
            message: format!("PCC {:.5} (threshold {})", m.pcc, m.threshold),
        })
        .collect()
}

/// Whether a module missed its PCC threshold (said on stderr): a run whose numbers are wrong
/// must not pass a CI job just because its memory accesses were clean ([`ACCURACY`]).
fn pcc_failed(outcome: &RunOutcome) -> bool {
    let failed: Vec<String> =
        outcome.modules.iter().filter(|m| !m.passed()).map(|m| format!("{} {}", m.module, m.mode)).collect();
    if failed.is_empty() {
        return false;
    }
    eprintln!("ttsan: PCC below threshold: {} (exit {ACCURACY})", failed.join(", "));
    true
}

fn print_modules(outcome: &RunOutcome, out: &mut dyn std::io::Write) {
    for m in &outcome.modules {
        let _ = writeln!(out, "{m}");
    }
}

/// The report as JSON with the module results added as `modules[]`.
pub fn report_json(report: &Report, outcome: &RunOutcome) -> Result<String, Failure> {
    let mut value: serde_json::Value =
        serde_json::from_str(&report.to_json()).context("re-reading the JSON report").map_err(Failure::internal)?;
    let modules: Vec<serde_json::Value> = outcome
        .modules
        .iter()
        .map(|m| {
            serde_json::json!({
                "name": m.module.to_string(),
                "mode": m.mode.to_string(),
                "pcc": m.pcc,
                "threshold": m.threshold,
                "passed": m.passed(),
            })
        })
        .collect();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("modules".into(), serde_json::Value::Array(modules));
    }
    serde_json::to_string_pretty(&value).context("writing the JSON report").map_err(Failure::internal)
}

/// What the run means for the sink-corruption story, when it is that story.
fn order_note(report: &Report, outcome: &RunOutcome) -> Option<String> {
    let stale = report.findings.iter().find(|f| {
        f.kind == FindingKind::UseAfterFree
            && f.culprit.as_ref().is_some_and(|c| c.op == "ttnn.experimental.reduce_scatter_minimal_async")
    })?;
    let attention = outcome.modules.iter().find(|m| m.module == Module::Attention)?;
    let victim = stale.victim.as_ref().map_or("free memory".to_string(), |v| format!("'{}'", v.name));
    Some(if attention.passed() {
        format!(
            "note: attention passed (PCC {:.3}), yet the reduce-scatter's in-flight writes landed after its intermediate \
             was freed (into {victim}): the latent bug is caught in either module order",
            attention.pcc
        )
    } else {
        format!(
            "note: attention failed (PCC {:.3}) because the reduce-scatter's in-flight writes landed in {victim} after \
             its intermediate was freed; with attention first it passes, and ttsan still reports the writes: the bug is \
             caught in either module order",
            attention.pcc
        )
    })
}

fn finish(report: &Report, outcome: &RunOutcome, settings: &Settings) -> Outcome {
    if let Some(path) = &settings.json {
        std::fs::write(path, report_json(report, outcome)?)
            .with_context(|| format!("writing JSON report {}", path.display()))
            .map_err(Failure::usage)?;
    }
    for w in &report.warnings {
        eprintln!("ttsan: warning: {w}");
    }
    match settings.format {
        Format::Text => {
            print_modules(outcome, &mut std::io::stdout());
            print!("{}", render_text(report, settings.text));
            if let Some(note) = order_note(report, outcome) {
                println!("{note}");
            }
        }
        Format::Json => {
            print_modules(outcome, &mut std::io::stderr());
            println!("{}", report_json(report, outcome)?);
        }
    }
    let verdict = match report.status {
        Status::Clean if pcc_failed(outcome) => Verdict::Checks,
        // Findings win: they usually explain the wrong numbers, and their code is the one CI
        // jobs already gate on.
        status => plain_verdict(status),
    };
    verdict_code(verdict, settings.error_exitcode, |_| incomplete(report))
}
