//! `ttsan run [OPTIONS] -- CMD ARGS...`: wrap a program that uses the real tt-metal library.

use super::analyze::ReportArgs;
use super::exit::{Failure, Outcome};
use clap::Args;

/// Options for wrapping an external command.
#[derive(Debug, Args)]
pub struct WrapArgs {
    /// Report options.
    #[command(flatten)]
    pub report: ReportArgs,
    /// The command to run and its arguments (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Runs the wrapped command under the preload shim.
pub fn run(_args: &WrapArgs) -> Outcome {
    Err(Failure::internal(anyhow::anyhow!("wrapping a command is not built yet")))
}
