//! The embedded simulated Tenstorrent mesh and the GPT-OSS inference path that runs on it.
#![deny(missing_docs)]

pub mod alloc;
pub mod gpt_oss;
pub mod sim;
