//! GPT-OSS (gpt-oss-20b / gpt-oss-120b and tiny variants): HF configs and checkpoints, an f32 CPU
//! reference of the Hugging Face semantics (checked against an independent naive formulation in
//! the tests, `inference/tests/gpt_oss_naive/`), and the device path and runs on the simulated mesh; the comparison tools (PCC, `.npy`) it is
//! measured with are [`crate::common`]'s.

pub mod ccl;
mod checkpoint;
pub mod config;
pub mod device;
pub mod error;
mod init;
pub mod mxfp4;
pub mod reference;
pub mod rope;
pub mod run;
mod tensor;
pub mod weights;

pub use crate::common::pcc::pcc;
pub use checkpoint::{load_checkpoint, write_checkpoint, StoreDtype, WriteOptions};
pub use config::{GptOssConfig, LayerType};
pub use error::GptOssError;
pub use init::random_weights;
pub use reference::Reference;
pub use tensor::Tensor;
pub use weights::ModelWeights;
