//! `ttsan run gpt-oss`: the GPT-OSS inference path on the simulated mesh, under the sanitizer.

use super::analyze::ReportArgs;
use super::exit::{Failure, Outcome};
use clap::Args;

/// Options of `ttsan run gpt-oss`.
#[derive(Debug, Args)]
pub struct GptOssArgs {
    /// Report options.
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Runs GPT-OSS on the simulated mesh.
pub fn run(_args: &GptOssArgs) -> Outcome {
    Err(Failure::internal(anyhow::anyhow!("the GPT-OSS run is not built yet")))
}
