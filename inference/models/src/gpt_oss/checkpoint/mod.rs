//! HF-format checkpoint directories: `config.json` plus `*.safetensors` with HF tensor names.

mod dtype;
mod load;
mod write;

pub use load::load_checkpoint;
pub use write::{write_checkpoint, StoreDtype, WriteOptions};
