//! `ttsan ci TRACE` and the `--ci`/`--junit`/`--sarif`/`--suppressions`/`--baseline` options of
//! every command that analyses a trace: a verdict a CI job can trust, and its artifacts.
//!
//! Exit codes are the engine's: 0 pass, the findings code (1, `--error-exitcode`) for findings
//! neither suppressed nor baselined, 2 when the run cannot be trusted (unreadable or damaged
//! trace, no capture, no allocations, a tracer that failed to load), 3 when ttsan failed, 4 when
//! nothing was found but a check of the workload's results failed (`ttsan run gpt-oss` PCC).

use super::analyze::{Format, ReportArgs, Settings};
use super::exit::{Failure, Outcome, ACCURACY, CLEAN};
use super::options::EnvOptions;
use anyhow::{anyhow, Context as _};
use clap::Args;
use std::path::{Path, PathBuf};
use ttsan_sanitizer::ci::checks::{check_run, facts_of_report};
use ttsan_sanitizer::ci::{self, Check, Gate, Policy, RunFailure, RunFailureKind, Verdict};
use ttsan_sanitizer::report::{render_text, Report, Status};

/// Arguments of `ttsan ci`.
#[derive(Debug, Args)]
pub struct CiArgs {
    /// The trace file.
    pub trace: PathBuf,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// The CI part of [`Settings`].
#[derive(Debug, Clone, Default)]
pub struct CiSettings {
    /// Print the short summary instead of the full report.
    pub summary: bool,
    /// JUnit XML path.
    pub junit: Option<PathBuf>,
    /// SARIF path.
    pub sarif: Option<PathBuf>,
    /// Suppressions file.
    pub suppressions: Option<PathBuf>,
    /// Baseline to compare against.
    pub baseline: Option<PathBuf>,
    /// Where to write this run's baseline.
    pub write_baseline: Option<PathBuf>,
    /// Damaged records tolerated (default 0 once CI mode is on).
    pub max_damaged_records: Option<u64>,
}

impl CiSettings {
    /// Flags over `TTSAN_OPTIONS`.
    pub fn from_args(args: &ReportArgs, env: &EnvOptions) -> Result<Self, Failure> {
        let path = |flag: &Option<PathBuf>, key: &str| flag.clone().or_else(|| env.string(key).map(PathBuf::from));
        Ok(CiSettings {
            summary: args.ci || env.bool("ci").map_err(Failure::usage)?.unwrap_or(false),
            junit: path(&args.junit, "junit"),
            sarif: path(&args.sarif, "sarif"),
            suppressions: path(&args.suppressions, "suppressions"),
            baseline: path(&args.baseline, "baseline"),
            write_baseline: path(&args.write_baseline, "write_baseline"),
            max_damaged_records: match args.max_damaged_records {
                Some(n) => Some(n),
                None => env.u64("max_damaged_records").map_err(Failure::usage)?,
            },
        })
    }

    /// Whether any CI behaviour was asked for; without it commands behave as before.
    pub fn active(&self) -> bool {
        self.summary
            || self.junit.is_some()
            || self.sarif.is_some()
            || self.suppressions.is_some()
            || self.baseline.is_some()
            || self.write_baseline.is_some()
            || self.max_damaged_records.is_some()
    }

    fn policy(&self) -> Result<Policy, Failure> {
        Ok(Policy {
            max_damaged_records: Some(self.max_damaged_records.unwrap_or(0)),
            suppressions: self
                .suppressions
                .as_deref()
                .map(ci::Suppressions::load)
                .transpose()
                .map_err(Failure::usage)?,
            baseline: self.baseline.as_deref().map(ci::Baseline::load).transpose().map_err(Failure::usage)?,
        })
    }
}

/// Runs `ttsan ci`.
pub fn run(args: &CiArgs) -> Outcome {
    let mut settings = args.report.settings()?;
    settings.ci.summary = true;
    gate_trace(&args.trace, &settings)
}

/// Analyses and gates a trace file. A panic inside the analysis still produces the JUnit,
/// SARIF and JSON files (saying "internal error"), so the CI page shows why the job failed.
pub fn gate_trace(trace: &Path, settings: &Settings) -> Outcome {
    let policy = settings.ci.policy()?;
    let subject = trace.display().to_string();
    let analysed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (analysis, facts) = ci::scan_file(trace, settings.analysis.clone())?;
        Ok::<_, ci::CiError>(Gate::new(subject.clone(), Report::new(analysis), &facts, &policy))
    }));
    let gate = match analysed {
        Ok(Ok(gate)) => gate,
        Ok(Err(e)) => {
            Gate::without_report(&subject, RunFailure::new(RunFailureKind::Unreadable, e.to_string()), &policy)
        }
        Err(panic) => {
            let message = format!("ttsan failed while analysing the trace: {}", panic_text(panic.as_ref()));
            Gate::without_report(&subject, RunFailure::new(RunFailureKind::Internal, message), &policy)
        }
    };
    finish(&gate, settings)
}

/// Gates a report of events analysed in memory (`ttsan run`); only the facts a report
/// carries are checked (no reader, so no damaged records).
pub fn gate_report(report: &Report, settings: &Settings) -> Outcome {
    gate_report_with_checks(report, Vec::new(), settings)
}

/// [`gate_report`] with the workload's own checks (`ttsan run gpt-oss`'s module PCCs): each a
/// JUnit test case, and a failed one makes the run exit [`ACCURACY`] when nothing worse happened.
pub fn gate_report_with_checks(report: &Report, checks: Vec<Check>, settings: &Settings) -> Outcome {
    let policy = settings.ci.policy()?;
    let subject = report.capture.as_ref().map_or_else(|| "run".to_string(), |c| c.command.clone());
    let gate = Gate::new(subject, report.clone(), &facts_of_report(report), &policy).with_checks(checks);
    finish(&gate, settings)
}

/// [`super::analyze::analyze_trace`] in CI mode, for callers that go on to [`super::analyze::emit`]
/// (`ttsan run -- CMD`). `emit` only sees the report, so the checks that need the reader
/// (damaged records, shim failure marks) are folded into the report's errors here, which
/// makes its status `error` and the gate fail.
pub fn analyze_trace(trace: &Path, settings: &Settings) -> Result<Report, Failure> {
    let (analysis, facts) = ci::scan_file(trace, settings.analysis.clone()).map_err(Failure::usage)?;
    let mut report = Report::new(analysis);
    let max = Some(settings.ci.max_damaged_records.unwrap_or(0));
    for f in check_run(&report, &facts, max) {
        if matches!(f.kind, RunFailureKind::Damaged | RunFailureKind::ShimFailed) {
            report.errors.push(f.message);
            report.status = Status::Error;
        }
    }
    Ok(report)
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

fn write(path: &Path, what: &str, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text).with_context(|| format!("writing {what} {}", path.display())).map_err(Failure::usage)
}

/// Writes the artifacts, prints, and turns the verdict into the exit code.
fn finish(gate: &Gate, settings: &Settings) -> Outcome {
    let ci = &settings.ci;
    if let Some(path) = &settings.json {
        write(path, "JSON report", &ci::json::render(gate))?;
    }
    if let Some(path) = &ci.junit {
        write(path, "JUnit report", &ci::junit::render(gate))?;
    }
    if let Some(path) = &ci.sarif {
        write(path, "SARIF report", &ci::sarif::render(gate))?;
    }
    if let Some(path) = &ci.write_baseline {
        write(path, "baseline", &gate.baseline().to_json())?;
    }
    for w in gate.warnings() {
        eprintln!("ttsan: warning: {w}");
    }
    let full = settings.json.as_ref().map(|p| p.display().to_string());
    if ci.summary {
        print!("{}", ci::summary::render(gate, full.as_deref()));
    } else {
        match settings.format {
            Format::Text => {
                print!("{}", render_text(&gate.report, settings.text));
                print!("{}", ci::summary::render(gate, full.as_deref()));
            }
            Format::Json => println!("{}", ci::json::render(gate)),
        }
    }
    let reasons = || gate.failures.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; ");
    match gate.verdict {
        Verdict::Pass => Ok(CLEAN),
        Verdict::Findings => Ok(settings.error_exitcode),
        Verdict::Failed => Err(Failure::usage(anyhow!("ci: the run cannot be trusted: {}", reasons()))),
        Verdict::Internal => Err(Failure::internal(anyhow!("ci: {}", reasons()))),
        Verdict::Checks => Ok(ACCURACY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttsan_sanitizer::{fixtures, Analyzer};

    fn report(events: &[ttsan_sanitizer::events::Event]) -> Report {
        let mut a = Analyzer::new(Default::default());
        events.iter().for_each(|e| a.feed(e));
        Report::new(a.finish(None))
    }

    /// `ttsan run` analyses in memory and calls `emit`; CI options must gate that path too.
    #[test]
    fn emit_gates_in_memory_reports_in_ci_mode() {
        let dir = tempfile::tempdir().unwrap();
        let junit = dir.path().join("r.xml");
        let args = ReportArgs { junit: Some(junit.clone()), ..ReportArgs::default() };
        let settings = args.settings().unwrap();
        assert!(settings.ci.active());
        assert_eq!(super::super::analyze::emit(&report(&fixtures::clean()), &settings).unwrap(), CLEAN);
        assert!(std::fs::read_to_string(&junit).unwrap().contains(r#"failures="0" errors="0""#));
        let code = super::super::analyze::emit(&report(&fixtures::oob_write()), &settings).unwrap();
        assert_eq!(code, super::super::exit::FINDINGS);
        let no_start = report(&fixtures::clean()[1..]);
        let failure = super::super::analyze::emit(&no_start, &settings).unwrap_err();
        assert_eq!(failure.code, super::super::exit::USAGE);
        assert!(failure.to_string().contains("no capture_start"), "{failure}");
    }

    /// The `ttsan run -- CMD` path: analyze_trace then emit, with the reader's checks kept.
    #[test]
    fn analyze_then_emit_keeps_the_reader_checks_in_ci_mode() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, events: &[ttsan_sanitizer::events::Event]| {
            let path = dir.path().join(name);
            let file = std::fs::File::create(&path).unwrap();
            let mut w = ttsan_sanitizer::events::trace::TraceWriter::new(std::io::BufWriter::new(file)).unwrap();
            events.iter().for_each(|e| w.write(e).unwrap());
            w.into_inner().unwrap();
            path
        };
        let settings = ReportArgs { ci: true, ..ReportArgs::default() }.settings().unwrap();
        let run = |path: &Path| {
            let report = super::super::analyze::analyze_trace(path, &settings)?;
            super::super::analyze::emit(&report, &settings)
        };
        assert_eq!(run(&write("clean.ttsan", &fixtures::clean())).unwrap(), CLEAN);
        let mut events = fixtures::clean();
        let text = "ttsan-preload: tt-metal symbols missing, buffers cannot be read: Buffer::address".to_string();
        events.insert(1, ttsan_sanitizer::events::Event::Mark { text });
        let failure = run(&write("shim.ttsan", &events)).unwrap_err();
        assert_eq!(failure.code, super::super::exit::USAGE);
        assert!(failure.to_string().contains("failed to load: ttsan-preload: tt-metal symbols missing"), "{failure}");
        let torn = write("torn.ttsan", &fixtures::clean());
        let bytes = std::fs::read(&torn).unwrap();
        std::fs::write(&torn, &bytes[..bytes.len() - 3]).unwrap();
        let failure = run(&torn).unwrap_err();
        assert!(failure.to_string().contains("damaged record"), "{failure}");
    }
}
