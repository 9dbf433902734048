//! The typed errors of the GPT-OSS model side: configs, checkpoints, forward passes and files.

use std::path::PathBuf;

/// Everything that can go wrong while parsing a config, loading or writing a checkpoint, or running
/// the reference model on caller-supplied input.
#[derive(Debug, thiserror::Error)]
pub enum GptOssError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON or does not have the expected fields.
    #[error("config {path}: {source}")]
    ConfigJson {
        /// Where the config came from (a file path or a preset name).
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The config parsed but describes a model this implementation cannot run.
    #[error("invalid config: {field}: {reason}")]
    InvalidConfig {
        /// The HF field name at fault.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// No built-in config has this name.
    #[error("unknown config preset {0:?} (known: {known})", known = crate::gpt_oss::config::PRESET_NAMES.join(", "))]
    UnknownPreset(String),
    /// The checkpoint directory holds no `*.safetensors` file.
    #[error("{dir}: no *.safetensors file in the checkpoint directory")]
    NoSafetensors {
        /// The directory searched.
        dir: PathBuf,
    },
    /// A safetensors file is malformed.
    #[error("{path}: bad safetensors file: {source}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// Two files of one checkpoint define the same tensor.
    #[error("tensor {name} is defined in both {first} and {second}")]
    DuplicateTensor {
        /// HF tensor name.
        name: String,
        /// The first file holding it.
        first: PathBuf,
        /// The second file holding it.
        second: PathBuf,
    },
    /// A tensor the model needs is absent.
    #[error("missing tensor {name}")]
    MissingTensor {
        /// HF tensor name.
        name: String,
    },
    /// A tensor has a shape that does not match the config.
    #[error("tensor {name}: shape {found:?}, expected {expected:?}")]
    WrongShape {
        /// HF tensor name.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype this loader does not accept for it.
    #[error("tensor {name}: dtype {found}, expected {expected}")]
    BadDtype {
        /// HF tensor name.
        name: String,
        /// What is accepted there.
        expected: &'static str,
        /// What the file holds.
        found: String,
    },
    /// MXFP4 blocks and scales of a tensor do not fit together.
    #[error("tensor {name}: {source}")]
    Mxfp4 {
        /// HF tensor name (without the `_blocks` / `_scales` suffix).
        name: String,
        /// What is wrong.
        #[source]
        source: crate::gpt_oss::mxfp4::Mxfp4Error,
    },
    /// An input to a forward pass is out of range (token id, empty sequence, cache of another model).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A model-neutral helper failed (PCC, `.npy`).
    #[error(transparent)]
    Common(#[from] crate::common::CommonError),
}

impl GptOssError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        GptOssError::Io { path: path.into(), source }
    }
}

/// Result alias of the GPT-OSS module.
pub type Result<T, E = GptOssError> = std::result::Result<T, E>;
