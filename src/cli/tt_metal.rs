//! `ttsan tt-metal ...`: drive the real tt-metal allocator in mock mode.

use super::exit::{Failure, Outcome};
use clap::Args;

/// Arguments of `ttsan tt-metal replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The request script.
    pub script: std::path::PathBuf,
}

/// Runs `ttsan tt-metal replay`.
pub fn replay(_args: &ReplayArgs) -> Outcome {
    Err(Failure::internal(anyhow::anyhow!("tt-metal replay is not built yet")))
}
