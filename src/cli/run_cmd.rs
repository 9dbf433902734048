//! `ttsan run [OPTIONS] -- CMD ARGS...`: wrap a program that uses the real tt-metal library.
//!
//! The command runs with `libttsan_preload.so` in `LD_PRELOAD`; every process of it that calls
//! tt-metal's allocator writes a trace (`--trace FILE`, or `FILE.<pid>` for a second such
//! process). Afterwards each trace is analysed and reported like `ttsan analyze` does. A status
//! file written by every shim instance tells "tt-metal was never loaded" (nothing to check, the
//! command's exit code stands) from "the shim never loaded" and "the shim failed" (never clean).

use super::analyze::{analyze_with_map, emit};
use super::exit::{Failure, Outcome, CLEAN, INTERNAL};
use super::options::EnvOptions;
use super::settings::{ReportArgs, Settings};
use anyhow::{anyhow, Context as _};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use ttsan_events::trace::read_all;
use ttsan_events::Event;
use ttsan_preload_protocol::{DigestSampling, GuardSelection, StatusLine};

/// Name of the shim library.
const PRELOAD_LIB: &str = "libttsan_preload.so";
/// Overrides where the shim library is looked for.
const PRELOAD_LIB_ENV: &str = "TTSAN_PRELOAD_LIB";

/// Options for wrapping an external command.
#[derive(Debug, Args)]
pub struct WrapArgs {
    /// Report options.
    #[command(flatten)]
    pub report: ReportArgs,
    /// Keep the trace at FILE (overwritten; a second tt-metal process of the run writes
    /// FILE.<pid>). Default: a temporary file, removed after the report.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Also write the interactive allocation map (one self-contained HTML file) [TTSAN_OPTIONS: html].
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Guard buffers of at least this many bytes (suffixes K, M, G).
    #[arg(long, value_name = "BYTES")]
    pub guard_min_size: Option<String>,
    /// Guard buffers of these types: dram, l1, l1_small, trace (comma-separated or repeated).
    #[arg(long, value_name = "TYPE", value_delimiter = ',')]
    pub guard_type: Vec<String>,
    /// Guard buffers with an allocation-stack frame matching GLOB (`*` and `?`; repeatable).
    #[arg(long, value_name = "GLOB")]
    pub guard_stack: Vec<String>,
    /// Guard only what is allocated before the first compute op: an op marked with
    /// ttsan_op_begin, a trace replay, or an op that runs a device program (host transfers are
    /// not) (with no other guard option: all of it).
    #[arg(long)]
    pub guard_preloaded: bool,
    /// Compare guard digests after every Nth top-level op only (baselines are always taken).
    #[arg(long, value_name = "N")]
    pub guard_every: Option<String>,
    /// Compare guard digests only after top-level ops whose name matches GLOB (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub guard_ops: Vec<String>,
    /// Removed: ops come from tt-metal's graph tracker in every runtime mode. Kept so that an
    /// old command line gets a clear error instead of clap's "unexpected argument".
    #[arg(long, hide = true)]
    pub ttnn_ops: bool,
    /// Frames recorded per allocation and free (0 turns backtraces off) [default: 16].
    #[arg(long, value_name = "N")]
    pub stack_depth: Option<usize>,
    /// The command to run and its arguments (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

impl WrapArgs {
    /// Which op ends compare guard digests.
    fn sampling(&self) -> Result<DigestSampling, Failure> {
        let ops = glob_list("--guard-ops", &self.guard_ops)?;
        DigestSampling::parse(self.guard_every.as_deref(), ops.as_deref()).map_err(Failure::usage)
    }

    /// The guard options as the shim's selection.
    fn guards(&self) -> Result<GuardSelection, Failure> {
        let types = self.guard_type.join(",");
        let stacks = glob_list("--guard-stack", &self.guard_stack)?;
        GuardSelection::parse(
            self.guard_min_size.as_deref(),
            (!self.guard_type.is_empty()).then_some(types.as_str()),
            stacks.as_deref(),
            self.guard_preloaded.then_some("1"),
        )
        .map_err(Failure::usage)
    }
}

/// A repeated glob option as the comma-separated list the shim reads (`None` when not given).
/// The environment separates globs with commas, so a glob cannot hold one.
fn glob_list(option: &str, globs: &[String]) -> Result<Option<String>, Failure> {
    if let Some(g) = globs.iter().find(|g| g.contains(',')) {
        return Err(Failure::usage(anyhow!("{option} {g}: a glob cannot contain a comma; repeat the option")));
    }
    Ok((!globs.is_empty()).then(|| globs.join(",")))
}

/// Runs the wrapped command under the preload shim.
pub fn run(args: &WrapArgs) -> Outcome {
    if args.ttnn_ops {
        return Err(Failure::usage(anyhow!(
            "--ttnn-ops was removed: ops now come from tt-metal's own graph tracker in every runtime \
             mode (ttnn's Python operation hooks never run in fast runtime mode, its default); drop the flag"
        )));
    }
    let settings = args.report.settings()?;
    let guards = args.guards()?;
    let html = match &args.html {
        Some(path) => Some(path.clone()),
        None => EnvOptions::from_env().map_err(Failure::usage)?.string("html").map(PathBuf::from),
    };
    let Some((program, rest)) = args.command.split_first() else {
        return Err(Failure::usage(anyhow!("nothing to run after `--`")));
    };
    let lib = locate_preload()?;
    let scratch = Scratch::new()?;
    let trace = match &args.trace {
        Some(t) => std::path::absolute(t).with_context(|| t.display().to_string()).map_err(Failure::usage)?,
        None => scratch.dir.join("trace.ttsan"),
    };
    clear_old_traces(&trace)?;
    let status_file = scratch.dir.join("status");
    let shown = args.command.join(" ");

    let mut cmd = Command::new(program);
    cmd.args(rest)
        .env("LD_PRELOAD", preload_value(&lib, std::env::var("LD_PRELOAD").ok().as_deref())?)
        .env(ttsan_preload_protocol::ENV_TRACE, &trace)
        .env(ttsan_preload_protocol::ENV_STATUS, &status_file);
    for (k, v) in guards.to_env().into_iter().chain(args.sampling()?.to_env()) {
        cmd.env(k, v);
    }
    if let Some(d) = args.stack_depth {
        cmd.env(ttsan_preload_protocol::ENV_STACK_DEPTH, d.to_string());
    }
    let mut child = cmd.spawn().with_context(|| format!("cannot run `{program}`")).map_err(Failure::usage)?;
    let status = {
        // Ctrl-C reaches the whole process group: the command stops, ttsan stays to report.
        let _quiet = ttsan_preload_protocol::ignore_interrupts();
        child.wait().with_context(|| format!("waiting for `{program}`")).map_err(Failure::internal)?
    };
    let code = exit_code(status);
    if code != 0 {
        eprintln!("ttsan: `{shown}` {}", describe(status));
    }

    let lines = read_status(&status_file);
    let traces = collect_traces(&trace);
    let outcome = judge(&lines, &traces, &shown, code, &settings, html.as_deref());
    if args.trace.is_some() {
        for t in &traces {
            eprintln!("ttsan: trace kept at {}", t.display());
        }
    }
    drop(scratch);
    outcome
}

/// What the status lines and the traces say, reported; the exit code follows from it.
fn judge(
    lines: &[StatusLine],
    traces: &[PathBuf],
    shown: &str,
    code: i32,
    s: &Settings,
    html: Option<&Path>,
) -> Outcome {
    if !lines.iter().any(|l| matches!(l, StatusLine::Loaded { .. })) {
        return Err(Failure {
            code: INTERNAL,
            error: anyhow!(
                "the preload shim never loaded into `{shown}` (a static or setuid program, or LD_PRELOAD \
                 rejected): nothing was checked"
            ),
        });
    }
    let errors = per_process(lines, |l| match l {
        StatusLine::Error { pid, message } => Some((*pid, message.as_str())),
        _ => None,
    });
    if !errors.is_empty() {
        return Err(Failure {
            code: INTERNAL,
            error: anyhow!("the preload shim could not record: {}", errors.join("; ")),
        });
    }
    let unsupported = per_process(lines, |l| match l {
        StatusLine::Unsupported { pid, message } => Some((*pid, message.as_str())),
        _ => None,
    });
    if !unsupported.is_empty() {
        return Err(Failure {
            code: INTERNAL,
            error: anyhow!("not checked: unsupported tt-metal build ({})", unsupported.join("; ")),
        });
    }
    let users = lines.iter().filter(|l| matches!(l, StatusLine::TtMetal { .. })).count();
    if traces.is_empty() {
        if users > 0 {
            return Err(Failure {
                code: INTERNAL,
                error: anyhow!("{users} process(es) used tt-metal but no trace was written"),
            });
        }
        eprintln!("ttsan: the tt-metal library was never loaded by `{shown}`: nothing to check");
        return Ok(code);
    }
    let mut result = Ok(code);
    for (i, trace) in traces.iter().enumerate() {
        if traces.len() > 1 {
            println!("== ttsan: {} ==", trace.display());
        }
        let r = report_one(trace, s, if i == 0 { html } else { None });
        result = worse(result, r.map(|c| if c == CLEAN { code } else { c }), code);
    }
    result
}

/// `process PID: message` for each status line `pick` selects.
fn per_process<'a>(lines: &'a [StatusLine], pick: impl Fn(&'a StatusLine) -> Option<(u32, &'a str)>) -> Vec<String> {
    lines.iter().filter_map(pick).map(|(pid, message)| format!("process {pid}: {message}")).collect()
}

/// Keeps the most serious outcome: an error, then findings, then the command's own code.
fn worse(a: Outcome, b: Outcome, command_code: i32) -> Outcome {
    match (a, b) {
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(x), Ok(_)) if x != command_code => Ok(x),
        (Ok(_), Ok(y)) => Ok(y),
    }
}

/// Analyses one trace; a trace with no allocation is never clean.
fn report_one(trace: &Path, s: &Settings, html: Option<&Path>) -> Outcome {
    let (events, stats) =
        read_all(trace).with_context(|| format!("reading trace {}", trace.display())).map_err(Failure::internal)?;
    let allocs = events.iter().filter(|e| matches!(e, Event::BufferAlloc(_))).count();
    if allocs == 0 {
        for e in &events {
            if let Event::Mark { text } = e {
                eprintln!("ttsan: {text}");
            }
        }
        return Err(Failure {
            code: INTERNAL,
            error: anyhow!(
                "{}: tt-metal was loaded but no allocation was recorded ({} records): the run was not checked",
                trace.display(),
                stats.records
            ),
        });
    }
    for e in &events {
        if let Event::Mark { text } = e {
            if let Some(reads) = text.strip_prefix("ttsan-preload: guard reads: ") {
                eprintln!("ttsan: {}: guard reads: {reads}", trace.display());
            }
        }
    }
    if !matches!(events.last(), Some(Event::CaptureEnd { .. })) {
        eprintln!(
            "ttsan: {}: the command ended without an orderly exit; analysing the {} records written before",
            trace.display(),
            stats.records
        );
    }
    let report = analyze_with_map(trace, html, s)?;
    emit(&report, s)
}

/// The shim next to this executable: the newest of `<dir>/`, `<dir>/deps/` (where cargo leaves
/// it when it is built as a dependency), `<dir>/../lib/`; or `$TTSAN_PRELOAD_LIB`.
pub(super) fn locate_preload() -> Result<PathBuf, Failure> {
    if let Some(p) = std::env::var_os(PRELOAD_LIB_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(std::path::absolute(&p).unwrap_or(p))
        } else {
            Err(Failure::usage(anyhow!("{PRELOAD_LIB_ENV}={} does not exist", p.display())))
        };
    }
    let exe = std::env::current_exe().context("locating the ttsan executable").map_err(Failure::internal)?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let candidates = [dir.join(PRELOAD_LIB), dir.join("deps").join(PRELOAD_LIB), dir.join("../lib").join(PRELOAD_LIB)];
    candidates
        .iter()
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p.clone())
        .ok_or_else(|| {
            Failure::internal(anyhow!(
                "{PRELOAD_LIB} not found next to {} (looked in {}); build it with `cargo build` or set {PRELOAD_LIB_ENV}",
                exe.display(),
                candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
            ))
        })
}

/// `LD_PRELOAD` with the shim appended to whatever the caller preloads already (`existing`).
pub(super) fn preload_value(lib: &Path, existing: Option<&str>) -> Result<String, Failure> {
    let lib = lib.to_string_lossy();
    if lib.contains([' ', ':']) {
        return Err(Failure::usage(anyhow!(
            "the shim path `{lib}` contains a space or colon, which LD_PRELOAD cannot carry"
        )));
    }
    Ok(match existing {
        Some(existing) if !existing.trim().is_empty() => format!("{existing}:{lib}"),
        _ => lib.into_owned(),
    })
}

/// Removes `FILE` and `FILE.<pid>` of an earlier run, so the shim can claim `FILE` again and
/// only this run's traces are collected.
fn clear_old_traces(trace: &Path) -> Result<(), Failure> {
    for t in collect_traces(trace) {
        std::fs::remove_file(&t)
            .with_context(|| format!("removing old trace {}", t.display()))
            .map_err(Failure::usage)?;
    }
    Ok(())
}

/// `FILE` and its `FILE.<pid>` siblings that exist.
pub(super) fn collect_traces(trace: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if trace.is_file() {
        out.push(trace.to_path_buf());
    }
    let (Some(dir), Some(name)) = (trace.parent(), trace.file_name()) else { return out };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut siblings: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.strip_prefix(&prefix).is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.path())
        .collect();
    siblings.sort();
    out.extend(siblings);
    out
}

pub(super) fn read_status(path: &Path) -> Vec<StatusLine> {
    std::fs::read_to_string(path).map(|t| t.lines().filter_map(StatusLine::parse).collect()).unwrap_or_default()
}

/// The shell's convention: the exit code, or 128 + the signal that killed the command.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(INTERNAL)
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "ended abnormally".into(),
    }
}

/// A private temporary directory for the status file and the default trace, removed on drop.
pub(super) struct Scratch {
    pub(super) dir: PathBuf,
}

impl Scratch {
    pub(super) fn new() -> Result<Scratch, Failure> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("ttsan-run-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating {}", dir.display()))
            .map_err(Failure::internal)?;
        Ok(Scratch { dir })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_is_appended() {
        let lib = Path::new("/a/libttsan_preload.so");
        assert_eq!(preload_value(lib, None).unwrap(), "/a/libttsan_preload.so");
        assert_eq!(preload_value(lib, Some(" ")).unwrap(), "/a/libttsan_preload.so");
        assert_eq!(preload_value(lib, Some("/x/libfoo.so")).unwrap(), "/x/libfoo.so:/a/libttsan_preload.so");
        assert!(preload_value(Path::new("/a b/libttsan_preload.so"), None).is_err());
    }

    #[test]
    fn traces_of_a_run_are_the_file_and_its_pid_siblings() {
        let dir = std::env::temp_dir().join(format!("ttsan-run-cmd-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = dir.join("t.ttsan");
        for n in ["t.ttsan", "t.ttsan.123", "t.ttsan.x", "t.ttsan.", "other.ttsan.5"] {
            std::fs::write(dir.join(n), b"").unwrap();
        }
        let got = collect_traces(&t);
        assert_eq!(got, vec![t.clone(), dir.join("t.ttsan.123")]);
        clear_old_traces(&t).unwrap();
        assert!(collect_traces(&t).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_worst_outcome_wins() {
        assert_eq!(worse(Ok(0), Ok(0), 0).unwrap(), 0);
        assert_eq!(worse(Ok(0), Ok(1), 0).unwrap(), 1);
        assert_eq!(worse(Ok(1), Ok(0), 0).unwrap(), 1);
        assert!(worse(Ok(1), Err(Failure::internal(anyhow!("x"))), 0).is_err());
    }
}
