//! Errors of a GPT-OSS run on the simulated mesh.

use crate::gpt_oss::device::DeviceError;
use crate::gpt_oss::error::GptOssError;
use ttsan_sim::SimError;

/// What can stop a run. `Usage` errors are the caller's (bad options, a fault that never runs
/// in this configuration); the others come from the model or the simulator.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The options do not describe a run that can happen.
    #[error("{0}")]
    Usage(String),
    /// The device path failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The model side failed (config, checkpoint, reference).
    #[error(transparent)]
    Model(#[from] GptOssError),
    /// The simulator failed.
    #[error(transparent)]
    Sim(#[from] SimError),
}

impl RunError {
    /// Whether the error is the caller's (exit 2) rather than the run's.
    pub fn is_usage(&self) -> bool {
        matches!(self, RunError::Usage(_) | RunError::Sim(SimError::NeverRan { .. }))
    }
}

impl From<crate::common::CommonError> for RunError {
    fn from(e: crate::common::CommonError) -> Self {
        RunError::Model(e.into())
    }
}
