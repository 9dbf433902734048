//! Exit codes and the error type that carries them to `main`.

use anyhow::anyhow;
use std::fmt;
use ttsan_sanitizer::ci::Verdict;
use ttsan_sanitizer::report::Status;

/// Nothing found.
pub const CLEAN: i32 = 0;
/// Findings reported (overridable with `--error-exitcode`).
pub const FINDINGS: i32 = 1;
/// Bad usage or unreadable input.
pub const USAGE: i32 = 2;
/// ttsan itself failed.
pub const INTERNAL: i32 = 3;
/// No memory finding, but the workload's own check failed: a `ttsan run gpt-oss` module below
/// its PCC threshold. Distinct from [`FINDINGS`] so a CI job can tell "the memory is clean but
/// the numbers are wrong" from "ttsan saw a bad access"; findings win when there are both.
pub const ACCURACY: i32 = 4;

/// An error that ends the command with a specific exit code and a one-line reason.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: i32,
    /// The reason, printed as `ttsan: <reason>`.
    pub error: anyhow::Error,
}

impl Failure {
    /// Bad usage or unreadable input (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure { code: USAGE, error: error.into() }
    }

    /// An internal error (exit 3).
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Failure { code: INTERNAL, error: error.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line: the chain joined, so users never get a multi-line backtrace for bad input.
        write!(f, "{:#}", self.error)
    }
}

/// What a command returns: the exit code on success paths (0 clean, 1 findings, or the wrapped
/// command's own code), or a [`Failure`].
pub type Outcome = Result<i32, Failure>;

/// The exit code of a verdict: the one place analysis results become exit codes, for plain
/// reports (through [`plain_verdict`]), the CI gate and `ttsan run gpt-oss`. `findings` is the
/// code for findings (`--error-exitcode`); `why` words the failure of a run that cannot be
/// trusted ([`Verdict::Failed`], exit 2) or of ttsan itself ([`Verdict::Internal`], exit 3).
pub fn verdict_code(verdict: Verdict, findings: i32, why: impl FnOnce(Verdict) -> String) -> Outcome {
    match verdict {
        Verdict::Pass => Ok(CLEAN),
        Verdict::Findings => Ok(findings),
        Verdict::Checks => Ok(ACCURACY),
        Verdict::Failed => Err(Failure::usage(anyhow!(why(verdict)))),
        Verdict::Internal => Err(Failure::internal(anyhow!(why(verdict)))),
    }
}

/// What a plain (non-CI) report's status amounts to: an incomplete analysis is a run that cannot
/// be trusted, as in CI mode.
pub fn plain_verdict(status: Status) -> Verdict {
    match status {
        Status::Clean => Verdict::Pass,
        Status::Findings => Verdict::Findings,
        Status::Error => Verdict::Failed,
    }
}
