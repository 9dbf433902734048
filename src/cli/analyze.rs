//! `ttsan analyze`: read a trace, run the detectors, print the report; and the analysis and
//! reporting every command that analyses a trace shares ([`analyze_trace`], [`emit`]).
//!
//! CI mode is decided once, in [`ReportArgs::settings`](super::settings::ReportArgs::settings);
//! this module hands a CI run to [`super::ci`] and never the other way round.

use super::exit::{plain_verdict, verdict_code, Failure, Outcome};
use super::options::EnvOptions;
use super::settings::{Format, ReportArgs, Settings};
use anyhow::Context as _;
use clap::Args;
use std::path::{Path, PathBuf};
use ttsan_sanitizer::ci::{self, Check};
use ttsan_sanitizer::report::{render_text, Report};
use ttsan_sanitizer::{analyze_file, Analysis};

/// Arguments of `ttsan analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The trace file.
    pub trace: PathBuf,
    /// Also write the HTML allocation map to FILE (as `ttsan report --html`) [TTSAN_OPTIONS: html].
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Runs `ttsan analyze`.
pub fn run(args: &AnalyzeArgs) -> Outcome {
    let settings = args.report.settings()?;
    let html = match &args.html {
        Some(path) => Some(path.clone()),
        None => EnvOptions::from_env().map_err(Failure::usage)?.string("html").map(PathBuf::from),
    };
    match &settings.ci {
        // The gate reads the trace itself: it sees every reader fact and survives a panic.
        Some(ci) => {
            if let Some(path) = &html {
                write_map(&args.trace, path, &settings)?;
            }
            super::ci::gate_trace(&args.trace, &settings, ci)
        }
        None => {
            let report = analyze_with_map(&args.trace, html.as_deref(), &settings)?;
            emit(&report, &settings)
        }
    }
}

/// Writes the HTML allocation map of `trace` in one streaming pass over the file, which also
/// analyses it; returns that analysis. A map that cannot be written is the user's to fix (exit
/// 2), one that cannot be encoded ttsan's (exit 3).
pub fn write_map(trace: &Path, path: &Path, settings: &Settings) -> Result<Analysis, Failure> {
    let (map, analysis) = ttsan_viz::map_trace_file(trace, settings.analysis.clone())
        .with_context(|| trace.display().to_string())
        .map_err(Failure::usage)?;
    super::report::write_html(&map, &analysis, path)?;
    Ok(analysis)
}

/// [`analyze_trace`], writing the HTML map to `html` too when given: outside CI mode in the
/// same pass (the map's pass analyses the trace with the same options); in CI mode the report
/// needs the reader's facts, so the trace is read again.
pub fn analyze_with_map(trace: &Path, html: Option<&Path>, settings: &Settings) -> Result<Report, Failure> {
    match (html, &settings.ci) {
        (Some(path), None) => Ok(Report::new(write_map(trace, path, settings)?)),
        (Some(path), Some(_)) => {
            write_map(trace, path, settings)?;
            analyze_trace(trace, settings)
        }
        (None, _) => analyze_trace(trace, settings),
    }
}

/// Analyses a trace file into a report; an unreadable trace is a usage error (exit 2).
///
/// In CI mode, [`emit`] will only see the report, so the checks that need the reader (damaged
/// records, shim failure marks) are folded into the report's errors here, which makes its status
/// `error` and the gate fail.
pub fn analyze_trace(trace: &Path, settings: &Settings) -> Result<Report, Failure> {
    match &settings.ci {
        None => {
            let analysis = analyze_file(trace, settings.analysis.clone())
                .with_context(|| trace.display().to_string())
                .map_err(Failure::usage)?;
            Ok(Report::new(analysis))
        }
        Some(ci) => {
            let (analysis, facts) = ci::scan_file(trace, settings.analysis.clone()).map_err(Failure::usage)?;
            let mut report = Report::new(analysis);
            super::ci::fold_reader_checks(&mut report, &facts, ci);
            Ok(report)
        }
    }
}

/// Prints the report, writes the JSON file, and chooses the exit code (in CI mode, through
/// the CI gate and its artifacts).
pub fn emit(report: &Report, settings: &Settings) -> Outcome {
    emit_with(report, settings, Vec::new, || plain(report, settings))
}

/// [`emit`] for a command with its own plain report (`plain`) and its own checks of the
/// workload's results (`checks`, asked for only in CI mode: each a JUnit test case, a failed one
/// exiting 4 when nothing worse happened).
pub fn emit_with(
    report: &Report,
    settings: &Settings,
    checks: impl FnOnce() -> Vec<Check>,
    plain: impl FnOnce() -> Outcome,
) -> Outcome {
    match &settings.ci {
        Some(ci) => super::ci::gate_report(report, checks(), settings, ci),
        None => plain(),
    }
}

/// A plain report: the JSON file, the warnings, the report on stdout, and its exit code.
fn plain(report: &Report, settings: &Settings) -> Outcome {
    if let Some(path) = &settings.json {
        std::fs::write(path, report.to_json())
            .with_context(|| format!("writing JSON report {}", path.display()))
            .map_err(Failure::usage)?;
    }
    for w in &report.warnings {
        eprintln!("ttsan: warning: {w}");
    }
    match settings.format {
        Format::Text => print!("{}", render_text(report, settings.text)),
        Format::Json => println!("{}", report.to_json()),
    }
    verdict_code(plain_verdict(report.status), settings.error_exitcode, |_| incomplete(report))
}

/// Why a report's analysis is incomplete, as the failure says it.
pub fn incomplete(report: &Report) -> String {
    format!("analysis incomplete: {}", report.errors.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::exit::CLEAN;
    use ttsan_sanitizer::Analyzer;
    use ttsan_test_support::fixtures;

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
        assert!(settings.ci.is_some());
        assert_eq!(emit(&report(&fixtures::clean()), &settings).unwrap(), CLEAN);
        assert!(std::fs::read_to_string(&junit).unwrap().contains(r#"failures="0" errors="0""#));
        let code = emit(&report(&fixtures::oob_write()), &settings).unwrap();
        assert_eq!(code, super::super::exit::FINDINGS);
        let no_start = report(&fixtures::clean()[1..]);
        let failure = emit(&no_start, &settings).unwrap_err();
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
            let report = analyze_trace(path, &settings)?;
            emit(&report, &settings)
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
