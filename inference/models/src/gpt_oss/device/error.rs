//! Errors of the device path.

use crate::gpt_oss::error::GptOssError;
use ttsan_sim::SimError;

/// What can go wrong placing or running GPT-OSS on the simulated mesh.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The simulator rejected an op or an upload.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// A model-side error (config, input).
    #[error(transparent)]
    Model(#[from] GptOssError),
    /// The model does not divide over this mesh as tt-metal would place it.
    #[error("cannot place the model on this mesh: {0}")]
    Placement(String),
}
