//! The errors of the model-neutral helpers (PCC, `.npy` files).

use std::path::PathBuf;

/// What the comparison and file helpers can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Input the helper cannot take.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Two tensors that must have the same number of elements do not.
    #[error("length mismatch: {left} vs {right} elements")]
    LengthMismatch {
        /// Elements in the first operand.
        left: usize,
        /// Elements in the second operand.
        right: usize,
    },
    /// A `.npy` file is not a little-endian f32 C-order array this crate can read.
    #[error("{path}: unsupported or malformed .npy file: {reason}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result alias of the common helpers.
pub type Result<T, E = CommonError> = std::result::Result<T, E>;
