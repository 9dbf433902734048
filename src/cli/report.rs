//! `ttsan report TRACE --html FILE [--png FILE] [--svg FILE]`: post-mortem allocation map and plots.

use super::exit::{Failure, Outcome, CLEAN};
use anyhow::anyhow;
use clap::Args;
use std::path::Path;
use std::path::PathBuf;
use ttsan_sanitizer::{Analysis, AnalysisOptions};
use ttsan_viz::{MapData, VizError};

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
    let options = AnalysisOptions { leaks: args.leaks, ..AnalysisOptions::default() };
    let (map, analysis) = ttsan_viz::map_trace_file(&args.trace, options)
        .map_err(|e| Failure::usage(anyhow::Error::new(e).context(args.trace.display().to_string())))?;
    for warning in &analysis.warnings {
        eprintln!("ttsan: warning: {warning}");
    }
    if map.capture().is_none() {
        return Err(Failure::usage(anyhow!("{}: the trace has no capture_start record", args.trace.display())));
    }
    if let Some(path) = &args.html {
        write_html(&map, &analysis, path)?;
    }
    if let Some(path) = &args.png {
        ttsan_viz::write_png(&map, path).map_err(|e| output_failure(e, path))?;
        eprintln!("ttsan: wrote {}", path.display());
    }
    if let Some(path) = &args.svg {
        ttsan_viz::write_svg(&map, path).map_err(|e| output_failure(e, path))?;
        eprintln!("ttsan: wrote {}", path.display());
    }
    Ok(CLEAN)
}

/// Writes the HTML allocation map and says so on stderr.
pub(super) fn write_html(map: &MapData, analysis: &Analysis, path: &Path) -> Result<(), Failure> {
    ttsan_viz::write_html_file(map, analysis, path).map_err(|e| output_failure(e, path))?;
    eprintln!(
        "ttsan: wrote {} ({} allocations, {} ops, {} findings)",
        path.display(),
        map.allocs().len(),
        map.ops().len(),
        analysis.findings.len()
    );
    Ok(())
}

/// An output that cannot be written (a missing directory, a full disk) or a trace without the
/// capture record a map is drawn against is the user's to fix (exit 2); failing to encode or draw
/// is ttsan's (exit 3).
pub(super) fn output_failure(e: VizError, path: &Path) -> Failure {
    let usage = matches!(e, VizError::Io(_) | VizError::NoCapture);
    let error = anyhow::Error::new(e).context(format!("cannot write {}", path.display()));
    if usage {
        Failure::usage(error)
    } else {
        Failure::internal(error)
    }
}
