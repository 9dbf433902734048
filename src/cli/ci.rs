//! `ttsan ci TRACE` and the `--ci`/`--junit`/`--sarif`/`--suppressions`/`--baseline` options of
//! every command that analyses a trace: a verdict a CI job can trust, and its artifacts.
//!
//! Exit codes are the engine's: 0 pass, the findings code (1, `--error-exitcode`) for findings
//! neither suppressed nor baselined, 2 when the run cannot be trusted (unreadable or damaged
//! trace, no capture, no allocations, a tracer that failed to load), 3 when ttsan failed, 4 when
//! nothing was found but a check of the workload's results failed (`ttsan run gpt-oss` PCC).

use super::exit::{verdict_code, Failure, Outcome};
use super::settings::{CiSettings, Format, ReportArgs, Settings};
use anyhow::Context as _;
use clap::Args;
use std::path::{Path, PathBuf};
use ttsan_sanitizer::ci::{self, Check, Gate, RunFailure, RunFailureKind, TraceFacts, Verdict};
use ttsan_sanitizer::ci::{check_run, facts_of_report};
use ttsan_sanitizer::report::{render_text, Report, Status};

/// Arguments of `ttsan ci`.
#[derive(Debug, Args)]
pub struct CiArgs {
    /// The trace file.
    pub trace: PathBuf,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Runs `ttsan ci`.
pub fn run(args: &CiArgs) -> Outcome {
    let mut settings = args.report.settings()?;
    // `ttsan ci` is CI mode whatever the options say.
    let mut ci = settings.ci.take().unwrap_or_default();
    ci.summary = true;
    gate_trace(&args.trace, &settings, &ci)
}

/// Analyses and gates a trace file. A panic inside the analysis still produces the JUnit,
/// SARIF and JSON files (saying "internal error"), so the CI page shows why the job failed.
pub fn gate_trace(trace: &Path, settings: &Settings, ci: &CiSettings) -> Outcome {
    let policy = ci.policy()?;
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
    finish(&gate, settings, ci)
}

/// Gates a report analysed before (`ttsan run`); only the facts a report carries are checked
/// (the reader's were folded in by [`fold_reader_checks`]). The workload's own `checks` (`ttsan
/// run gpt-oss`'s module PCCs) are each a JUnit test case, and a failed one makes the run exit 4
/// when nothing worse happened.
pub fn gate_report(report: &Report, checks: Vec<Check>, settings: &Settings, ci: &CiSettings) -> Outcome {
    let policy = ci.policy()?;
    let subject = report.capture.as_ref().map_or_else(|| "run".to_string(), |c| c.command.clone());
    let gate = Gate::new(subject, report.clone(), &facts_of_report(report), &policy).with_checks(checks);
    finish(&gate, settings, ci)
}

/// Folds the checks that need the reader (damaged records, shim failure marks) into the report's
/// errors, which makes its status `error` and the gate fail: [`gate_report`] only sees the
/// report (`super::analyze::analyze_trace` calls this in CI mode).
pub fn fold_reader_checks(report: &mut Report, facts: &TraceFacts, ci: &CiSettings) {
    let max = Some(ci.max_damaged_records.unwrap_or(0));
    for f in check_run(report, facts, max) {
        if matches!(f.kind, RunFailureKind::Damaged | RunFailureKind::ShimFailed) {
            report.errors.push(f.message);
            report.status = Status::Error;
        }
    }
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
fn finish(gate: &Gate, settings: &Settings, ci: &CiSettings) -> Outcome {
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
    verdict_code(gate.verdict, settings.error_exitcode, |verdict| match verdict {
        Verdict::Internal => format!("ci: {}", reasons()),
        _ => format!("ci: the run cannot be trusted: {}", reasons()),
    })
}
