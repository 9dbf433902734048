//! `ttsan analyze`: read a trace, run the detectors, print the report.

use super::ci::CiSettings;
use super::exit::{Failure, Outcome, CLEAN, FINDINGS, USAGE};
use super::options::EnvOptions;
use anyhow::{anyhow, Context as _};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use ttsan_sanitizer::analyzer::analyze_file;
use ttsan_sanitizer::report::{render_text, Report, Status, TextOptions};
use ttsan_sanitizer::AnalysisOptions;

/// How the report is printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// ASan-style text.
    Text,
    /// The JSON report (docs/report-format.md).
    Json,
}

/// Options shared by every command that analyses a trace.
#[derive(Debug, Args, Clone, Default)]
pub struct ReportArgs {
    /// Report format on stdout [TTSAN_OPTIONS: format] [default: text].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Also write the JSON report to FILE [TTSAN_OPTIONS: json].
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Exit code when there are findings [TTSAN_OPTIONS: error_exitcode] [default: 1].
    #[arg(long, value_name = "N")]
    pub error_exitcode: Option<i32>,
    /// Recent frees remembered to name use-after-free victims [TTSAN_OPTIONS: quarantine] [default: 4096].
    #[arg(long, value_name = "N")]
    pub quarantine: Option<usize>,
    /// Report buffers still alive at the end [TTSAN_OPTIONS: leaks].
    #[arg(long)]
    pub leaks: bool,
    /// Findings printed in full at most [TTSAN_OPTIONS: print_limit] [default: 50].
    #[arg(long, value_name = "N")]
    pub print_limit: Option<usize>,
    /// CI mode: a short summary instead of the full report; fail on untrustworthy runs [TTSAN_OPTIONS: ci].
    #[arg(long)]
    pub ci: bool,
    /// Write JUnit XML to FILE (enables CI mode) [TTSAN_OPTIONS: junit].
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write SARIF 2.1.0 to FILE (enables CI mode) [TTSAN_OPTIONS: sarif].
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
    /// Accepted findings, each with a reason (docs/ci.md; enables CI mode) [TTSAN_OPTIONS: suppressions].
    #[arg(long, value_name = "FILE")]
    pub suppressions: Option<PathBuf>,
    /// Fail only on findings not in this baseline (enables CI mode) [TTSAN_OPTIONS: baseline].
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Write this run's findings as a baseline (enables CI mode) [TTSAN_OPTIONS: write_baseline].
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,
    /// Torn or corrupt trace records tolerated in CI mode [TTSAN_OPTIONS: max_damaged_records] [default: 0].
    #[arg(long, value_name = "N")]
    pub max_damaged_records: Option<u64>,
}

/// The effective settings after merging flags over `TTSAN_OPTIONS` over defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Stdout format.
    pub format: Format,
    /// JSON report path.
    pub json: Option<PathBuf>,
    /// Exit code for findings.
    pub error_exitcode: i32,
    /// Analysis options.
    pub analysis: AnalysisOptions,
    /// Text options.
    pub text: TextOptions,
    /// CI mode options (inactive unless asked for).
    pub ci: CiSettings,
}

impl ReportArgs {
    /// Merges flags over `TTSAN_OPTIONS`.
    pub fn settings(&self) -> Result<Settings, Failure> {
        let env = EnvOptions::from_env().map_err(Failure::usage)?;
        let format = match (self.format, env.string("format").as_deref()) {
            (Some(f), _) => f,
            (None, Some("json")) => Format::Json,
            (None, Some("text") | None) => Format::Text,
            (None, Some(other)) => {
                return Err(Failure::usage(anyhow!("TTSAN_OPTIONS format={other}: expected text or json")))
            }
        };
        let u = |key: &str| env.u64(key).map_err(Failure::usage);
        let defaults = AnalysisOptions::default();
        let error_exitcode = match self.error_exitcode {
            Some(c) => c,
            None => u("error_exitcode")?.map(|c| c as i32).unwrap_or(FINDINGS),
        };
        Ok(Settings {
            format,
            json: self.json.clone().or_else(|| env.string("json").map(PathBuf::from)),
            error_exitcode,
            analysis: AnalysisOptions {
                quarantine: match self.quarantine {
                    Some(q) => q,
                    None => u("quarantine")?.map(|q| q as usize).unwrap_or(defaults.quarantine),
                },
                leaks: self.leaks || env.bool("leaks").map_err(Failure::usage)?.unwrap_or(false),
                ..defaults
            },
            text: TextOptions {
                print_limit: match self.print_limit {
                    Some(p) => p,
                    None => u("print_limit")?.map(|p| p as usize).unwrap_or(TextOptions::default().print_limit),
                },
            },
            ci: CiSettings::from_args(self, &env)?,
        })
    }
}

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
    if let Some(path) = &html {
        write_map(&args.trace, path, &settings)?;
    }
    if settings.ci.active() {
        return super::ci::gate_trace(&args.trace, &settings);
    }
    let report = analyze_trace(&args.trace, &settings)?;
    emit(&report, &settings)
}

/// Writes the HTML allocation map of `trace` (a separate streaming pass over the file).
fn write_map(trace: &Path, path: &Path, settings: &Settings) -> Result<(), Failure> {
    let (map, analysis) = ttsan_viz::map_trace_file(trace, settings.analysis.clone())
        .with_context(|| trace.display().to_string())
        .map_err(Failure::usage)?;
    ttsan_viz::write_html_file(&map, &analysis, path)
        .with_context(|| format!("writing HTML map {}", path.display()))
        .map_err(Failure::usage)?;
    eprintln!("ttsan: allocation map written to {}", path.display());
    Ok(())
}

/// Analyses a trace file into a report; an unreadable trace is a usage error (exit 2).
pub fn analyze_trace(trace: &Path, settings: &Settings) -> Result<Report, Failure> {
    if settings.ci.active() {
        return super::ci::analyze_trace(trace, settings);
    }
    let analysis = analyze_file(trace, settings.analysis.clone())
        .with_context(|| trace.display().to_string())
        .map_err(Failure::usage)?;
    Ok(Report::new(analysis))
}

/// Prints the report, writes the JSON file, and chooses the exit code (in CI mode, through
/// the CI gate and its artifacts).
pub fn emit(report: &Report, settings: &Settings) -> Outcome {
    if settings.ci.active() {
        return super::ci::gate_report(report, settings);
    }
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
    match report.status {
        Status::Clean => Ok(CLEAN),
        Status::Findings => Ok(settings.error_exitcode),
        Status::Error => {
            Err(Failure { code: USAGE, error: anyhow!("analysis incomplete: {}", report.errors.join("; ")) })
        }
    }
}
