//! `ttsan report TRACE --html FILE [--png FILE] [--svg FILE]`: post-mortem allocation map and plots.

use super::exit::{Failure, Outcome, CLEAN};
use anyhow::{anyhow, Context as _};
use clap::Args;
use std::io::BufWriter;
use std::path::PathBuf;
use ttsan_events::trace::TraceReader;
use ttsan_sanitizer::{AnalysisOptions, Analyzer};
use ttsan_viz::MapData;

/// Arguments of `ttsan report`.
#[derive(Debug, Args)]
pub struct VizArgs {
    /// The trace file.
    pub trace: PathBuf,
    /// Write the interactive allocation map (one self-contained HTML file).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the usage plots as PNG.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Write the usage plots as SVG.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Report buffers still alive at the end as findings.
    #[arg(long)]
    pub leaks: bool,
}

/// Runs `ttsan report`. Exits 0 once the files are written, whatever the findings: the findings
/// are in the page, and `ttsan analyze` is the command whose exit code gates CI.
pub fn run(args: &VizArgs) -> Outcome {
    if args.html.is_none() && args.png.is_none() && args.svg.is_none() {
        return Err(Failure::usage(anyhow!("nothing to write: give --html FILE, --png FILE or --svg FILE")));
    }
    let mut reader = TraceReader::open(&args.trace)
        .with_context(|| format!("cannot read trace {}", args.trace.display()))
        .map_err(Failure::usage)?;
    let mut map = MapData::new();
    let options = AnalysisOptions { leaks: args.leaks, ..AnalysisOptions::default() };
    let mut analyzer = Analyzer::new(options);
    loop {
        let event = reader
            .next_event()
            .with_context(|| format!("cannot read trace {}", args.trace.display()))
            .map_err(Failure::usage)?;
        let Some(event) = event else { break };
        map.feed(&event);
        analyzer.feed(&event);
    }
    let analysis = analyzer.finish(Some(reader.stats()));
    for warning in &analysis.warnings {
        eprintln!("ttsan: warning: {warning}");
    }
    if map.capture().is_none() {
        return Err(Failure::usage(anyhow!("{}: the trace has no capture_start record", args.trace.display())));
    }
    if let Some(path) = &args.html {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))
            .map_err(Failure::usage)?;
        ttsan_viz::write_html(&map, &analysis, BufWriter::new(file))
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::internal)?;
        eprintln!(
            "ttsan: wrote {} ({} allocations, {} ops, {} findings)",
            path.display(),
            map.allocs().len(),
            map.ops().len(),
            analysis.findings.len()
        );
    }
    if let Some(path) = &args.png {
        ttsan_viz::write_png(&map, path)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::internal)?;
        eprintln!("ttsan: wrote {}", path.display());
    }
    if let Some(path) = &args.svg {
        ttsan_viz::write_svg(&map, path)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::internal)?;
        eprintln!("ttsan: wrote {}", path.display());
    }
    Ok(CLEAN)
}
