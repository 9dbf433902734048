//! `ttsan run`: run a workload under the sanitizer.
//!
//! Two forms share the report options: `ttsan run gpt-oss [...]` runs the embedded GPT-OSS
//! inference path on the simulated mesh, and `ttsan run [OPTIONS] -- CMD ARGS...` wraps any
//! program that uses the real `libtt_metal.so`.

use super::exit::{Failure, Outcome};
use clap::{Args, Subcommand};

/// Arguments of `ttsan run`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunArgs {
    /// A built-in workload.
    #[command(subcommand)]
    pub workload: Option<Workload>,
    /// Wrapping an external command.
    #[command(flatten)]
    pub wrap: super::run_cmd::WrapArgs,
}

/// Built-in workloads.
#[derive(Debug, Subcommand)]
pub enum Workload {
    /// GPT-OSS on the embedded simulated Tenstorrent mesh.
    #[command(name = "gpt-oss")]
    GptOss(super::run_gpt_oss::GptOssArgs),
}

/// Runs `ttsan run`.
pub fn run(args: &RunArgs) -> Outcome {
    match &args.workload {
        Some(Workload::GptOss(a)) => super::run_gpt_oss::run(a),
        None if !args.wrap.command.is_empty() => super::run_cmd::run(&args.wrap),
        None => Err(Failure::usage(anyhow::anyhow!(
            "nothing to run: use `ttsan run gpt-oss [...]` or `ttsan run [OPTIONS] -- CMD ARGS...`"
        ))),
    }
}
