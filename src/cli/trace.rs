//! `ttsan trace dump`: a trace as JSON Lines.

use super::exit::{Failure, Outcome, CLEAN};
use anyhow::Context as _;
use clap::Args;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use ttsan_events::trace::TraceReader;

/// Arguments of `ttsan trace dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The trace file.
    pub trace: PathBuf,
}

/// Prints one JSON object per record, with an `event` field naming its type. Damage to
/// individual records is reported on stderr; the good records are all printed.
pub fn dump(args: &DumpArgs) -> Outcome {
    let mut reader =
        TraceReader::open(&args.trace).with_context(|| format!("{}", args.trace.display())).map_err(Failure::usage)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    loop {
        let event =
            reader.next_event().with_context(|| format!("reading {}", args.trace.display())).map_err(Failure::usage)?;
        let Some(event) = event else { break };
        if let Err(e) = writeln!(out, "{}", event.to_json()) {
            // A closed pipe (`| head`) is the reader's choice, not a failure.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(CLEAN);
            }
            return Err(Failure::internal(anyhow::Error::new(e).context("writing to stdout")));
        }
    }
    if let Err(e) = out.flush() {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(Failure::internal(anyhow::Error::new(e).context("writing to stdout")));
        }
    }
    for w in reader.stats().warnings() {
        eprintln!("ttsan: warning: {w}");
    }
    Ok(CLEAN)
}
