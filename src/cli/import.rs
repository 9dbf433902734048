//! `ttsan import ...`: turn other tools' captures into ttsan traces.

use super::exit::{Failure, Outcome};
use clap::Args;

/// Arguments of `ttsan import graph-capture`.
#[derive(Debug, Args)]
pub struct GraphCaptureArgs {
    /// The graph-capture JSON file.
    pub file: std::path::PathBuf,
}

/// Runs `ttsan import graph-capture`.
pub fn graph_capture(_args: &GraphCaptureArgs) -> Outcome {
    Err(Failure::internal(anyhow::anyhow!("graph-capture import is not built yet")))
}
