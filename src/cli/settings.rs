//! The options of every command that analyses a trace ([`ReportArgs`]) and what they amount
//! to once merged over `TTSAN_OPTIONS` and the defaults ([`Settings`]), CI mode included.
//!
//! Both `ttsan analyze` and `ttsan ci` (and the `run` commands) read these; keeping them apart
//! from either command lets the CI module depend on them without depending on `analyze`.

use super::exit::{Failure, FINDINGS};
use super::options::EnvOptions;
use anyhow::anyhow;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use ttsan_sanitizer::ci::{self, Policy};
use ttsan_sanitizer::report::TextOptions;
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
    /// CI mode and its options: `None` unless asked for. Decided here, once; the commands only
    /// look at whether it is there.
    pub ci: Option<CiSettings>,
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
            ci: Some(CiSettings::from_args(self, &env)?).filter(CiSettings::active),
        })
    }
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
    fn from_args(args: &ReportArgs, env: &EnvOptions) -> Result<Self, Failure> {
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
    fn active(&self) -> bool {
        self.summary
            || self.junit.is_some()
            || self.sarif.is_some()
            || self.suppressions.is_some()
            || self.baseline.is_some()
            || self.write_baseline.is_some()
            || self.max_damaged_records.is_some()
    }

    /// The gate's policy: damage tolerated, suppressions and baseline loaded.
    pub fn policy(&self) -> Result<Policy, Failure> {
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
