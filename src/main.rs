//! `ttsan`: a device-memory sanitizer and allocation tracer for Tenstorrent tt-metal.
//!
//! The binary is a thin layer over the library crates: it parses options, calls them, and turns
//! their results into output and exit codes (see [`cli::exit`]).

mod cli;

use clap::{Parser, Subcommand};
use cli::exit::{self, Outcome};

/// Device-memory sanitizer and allocation tracer for Tenstorrent tt-metal.
#[derive(Debug, Parser)]
#[command(name = "ttsan", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Analyse a trace and report findings.
    Analyze(cli::analyze::AnalyzeArgs),
    /// Gate a CI job on a trace: short summary, JUnit, SARIF, suppressions, baselines.
    Ci(cli::ci::CiArgs),
    /// Name the first op after which two runs of the same workload left different bytes.
    Diff(cli::diff::DiffArgs),
    /// Check that ttsan sees what it must on this machine's tt-metal: build, ops, CBs, guard reads.
    Doctor(cli::doctor::DoctorArgs),
    /// Export a trace for other viewers (Chrome trace-event JSON for Perfetto).
    Export(cli::export::ExportArgs),
    /// Write the interactive allocation map (HTML) and usage plots (PNG/SVG) of a trace.
    Report(cli::report::VizArgs),
    /// Run a workload under the sanitizer: `run gpt-oss [...]` or `run [OPTIONS] -- CMD ARGS...`.
    Run(Box<cli::run::RunArgs>),
    /// Inspect trace files.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Work with tt-metal's real allocator in mock mode (no hardware needed).
    #[command(name = "tt-metal", subcommand)]
    TtMetal(TtMetalCommand),
    /// Convert other tools' captures into ttsan traces.
    #[command(subcommand)]
    Import(ImportCommand),
    /// GPT-OSS model utilities (random HF checkpoints).
    #[command(name = "gpt-oss", subcommand)]
    GptOss(GptOssCommand),
}

#[derive(Debug, Subcommand)]
enum GptOssCommand {
    /// Write a deterministic random GPT-OSS checkpoint in HF format.
    Init(cli::gpt_oss::InitArgs),
}

#[derive(Debug, Subcommand)]
enum TraceCommand {
    /// Print every record as one JSON object per line (JSON Lines).
    Dump(cli::trace::DumpArgs),
}

#[derive(Debug, Subcommand)]
enum TtMetalCommand {
    /// Replay allocate/free requests through the real allocator (or our model with --model).
    Replay(cli::tt_metal::ReplayArgs),
    /// The workload `ttsan doctor` runs under the shim.
    #[command(name = "doctor-workload", hide = true)]
    DoctorWorkload(cli::doctor_workload::WorkloadArgs),
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Import a ttnn graph-capture JSON file.
    #[command(name = "graph-capture")]
    GraphCapture(cli::import::GraphCaptureArgs),
}

fn dispatch(cli: Cli) -> Outcome {
    match cli.command {
        Command::Analyze(args) => cli::analyze::run(&args),
        Command::Ci(args) => cli::ci::run(&args),
        Command::Export(args) => cli::export::run(&args),
        Command::Run(args) => cli::run::run(&args),
        Command::Report(args) => cli::report::run(&args),
        Command::Trace(TraceCommand::Dump(args)) => cli::trace::dump(&args),
        Command::TtMetal(TtMetalCommand::Replay(args)) => cli::tt_metal::replay(&args),
        Command::TtMetal(TtMetalCommand::DoctorWorkload(args)) => cli::doctor_workload::run(&args),
        Command::Doctor(args) => cli::doctor::run(&args),
        Command::Diff(args) => cli::diff::run(&args),
        Command::Import(ImportCommand::GraphCapture(args)) => cli::import::graph_capture(&args),
        Command::GptOss(GptOssCommand::Init(args)) => cli::gpt_oss::init(&args),
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; everything else is bad usage (exit 2).
            let code = if e.use_stderr() { exit::USAGE } else { exit::CLEAN };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    // A bug in ttsan must never look like a clean run or like bad input: exit 3, always.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("ttsan: internal error: {info}");
    }));
    let code = match std::panic::catch_unwind(move || dispatch(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(failure)) => {
            eprintln!("ttsan: {failure}");
            failure.code
        }
        Err(_) => exit::INTERNAL,
    };
    std::process::exit(code);
}
