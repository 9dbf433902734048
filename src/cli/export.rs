//! `ttsan export TRACE --perfetto FILE.json`: the trace as Chrome trace-event JSON, for
//! ui.perfetto.dev and chrome://tracing; `--graph-capture FILE.json`: as ttnn's graph-capture
//! report, which the ttnn wheel's `graph_report.py` imports into a ttnn-visualizer database.

use super::exit::{Failure, Outcome, CLEAN};
use anyhow::Context as _;
use clap::{ArgGroup, Args};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use ttsan_events::trace::TraceReader;
use ttsan_sanitizer::ci::ChromeTrace;
use ttsan_sanitizer::ci::GraphCaptureExport;
use ttsan_sanitizer::{AnalysisOptions, Analyzer};

/// Arguments of `ttsan export`. At least one format is required; the group makes clap's error
/// name every format rather than only the first.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("format").required(true).multiple(true).args(["perfetto", "graph_capture"])))]
pub struct ExportArgs {
    /// The trace file.
    pub trace: PathBuf,
    /// Write Chrome trace-event JSON (ops per chip, memory counters, findings) to FILE.
    #[arg(long, value_name = "FILE.json")]
    pub perfetto: Option<PathBuf>,
    /// Write ttnn's graph-capture report (ops, buffers and circular buffers with their real
    /// addresses, findings as errors) to FILE, for `graph_report.py FILE OUT_DIR` and
    /// ttnn-visualizer.
    #[arg(long, value_name = "FILE.json")]
    pub graph_capture: Option<PathBuf>,
    /// Also report buffers still alive at the end as findings.
    #[arg(long)]
    pub leaks: bool,
}

/// Runs `ttsan export`. Exits 0 once the file is written, whatever the findings.
pub fn run(args: &ExportArgs) -> Outcome {
    let trace = args.trace.display().to_string();
    let mut reader = TraceReader::open(&args.trace).with_context(|| trace.clone()).map_err(Failure::usage)?;
    let mut export = ChromeTrace::new();
    let mut graph = GraphCaptureExport::new();
    let mut analyzer = Analyzer::new(AnalysisOptions { leaks: args.leaks, ..AnalysisOptions::default() });
    reader
        .for_each_event(|e| {
            if args.perfetto.is_some() {
                export.feed(e);
            }
            if args.graph_capture.is_some() {
                graph.feed(e);
            }
            analyzer.feed(e);
        })
        .with_context(|| trace.clone())
        .map_err(Failure::usage)?;
    let analysis = analyzer.finish(Some(reader.stats()));
    for w in &analysis.warnings {
        eprintln!("ttsan: warning: {w}");
    }
    let findings = analysis.findings.len();
    if let Some(path) = &args.perfetto {
        let doc = export.finish(&analysis.findings);
        write_json(path, &doc)?;
        let events = doc["traceEvents"].as_array().map_or(0, Vec::len);
        eprintln!("ttsan: wrote {} ({events} trace events, {findings} findings)", path.display());
    }
    if let Some(path) = &args.graph_capture {
        let doc = graph.finish(&analysis.findings);
        write_json(path, &doc)?;
        let nodes = doc["graph"].as_array().map_or(0, Vec::len);
        eprintln!("ttsan: wrote {} ({nodes} graph nodes, {findings} findings as errors)", path.display());
    }
    Ok(CLEAN)
}

fn write_json(path: &Path, doc: &serde_json::Value) -> Result<(), Failure> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()));
    let mut out = BufWriter::new(file.map_err(Failure::usage)?);
    serde_json::to_writer(&mut out, doc)
        .map_err(std::io::Error::from)
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(Failure::usage)
}
