//! Errors of the CI layer.

use std::path::PathBuf;
use thiserror::Error;

/// Why a CI input could not be used.
#[derive(Debug, Error)]
pub enum CiError {
    /// The trace cannot be read at all (missing, not a trace, I/O error).
    #[error("cannot read trace {path}: {source}")]
    Trace {
        /// The trace path.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: ttsan_events::trace::TraceError,
    },
    /// The trace's records stopped being readable partway (an I/O error, not damage).
    #[error("cannot read trace {path}: {source}")]
    TraceIo {
        /// The trace path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A suppressions or baseline file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A suppressions file entry is malformed.
    #[error("{path}:{line}: {reason}")]
    Suppression {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A baseline file is malformed.
    #[error("{path}: not a ttsan baseline: {reason}")]
    Baseline {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
