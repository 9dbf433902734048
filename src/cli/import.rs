//! `ttsan import ...`: turn other tools' captures into ttsan traces.

use super::exit::{Failure, Outcome, CLEAN};
use super::tt_metal::ArchArg;
use anyhow::Context;
use clap::Args;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use ttsan_events::trace::TraceWriter;
use ttsan_graph_capture::{import_str, ImportOptions};

/// Arguments of `ttsan import graph-capture`.
#[derive(Debug, Args)]
pub struct GraphCaptureArgs {
    /// The graph-capture JSON file (`ttnn.graph.end_graph_capture_to_file`, or a dumped node list).
    pub file: PathBuf,
    /// The trace to write (default: FILE with the extension `.ttsan`).
    #[arg(short = 'o', long = "output", value_name = "TRACE")]
    pub output: Option<PathBuf>,
    /// Architecture to assume when the capture carries no device info.
    #[arg(long, value_enum, default_value = "wormhole")]
    pub arch: ArchArg,
}

/// Runs `ttsan import graph-capture`.
pub fn graph_capture(args: &GraphCaptureArgs) -> Outcome {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))
        .map_err(Failure::usage)?;
    let opts =
        ImportOptions { arch: args.arch.events(), command: format!("import graph-capture {}", args.file.display()) };
    let import =
        import_str(&text, &opts).with_context(|| format!("{}", args.file.display())).map_err(Failure::usage)?;
    for w in &import.warnings {
        eprintln!("ttsan: warning: {w}");
    }
    let output = args.output.clone().unwrap_or_else(|| args.file.with_extension("ttsan"));
    let file =
        File::create(&output).with_context(|| format!("cannot create {}", output.display())).map_err(Failure::usage)?;
    let mut writer = TraceWriter::new(BufWriter::new(file))
        .with_context(|| format!("cannot write {}", output.display()))
        .map_err(Failure::usage)?;
    for e in &import.events {
        writer.write(e).with_context(|| format!("cannot write {}", output.display())).map_err(Failure::usage)?;
    }
    writer.into_inner().with_context(|| format!("cannot write {}", output.display())).map_err(Failure::usage)?;
    let s = import.summary;
    println!(
        "wrote {}: {} buffer allocation(s), {} free(s), {} circular buffer(s), {} op(s)",
        output.display(),
        s.buffers,
        s.frees,
        s.circular_buffers,
        s.ops
    );
    Ok(CLEAN)
}
