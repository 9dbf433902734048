//! The embedded simulated Tenstorrent mesh and the models that run on it, under one name for the
//! CLI and the tests: the allocator model ([`alloc`], crate `ttsan-alloc-model`), the simulated
//! mesh ([`sim`], crate `ttsan-sim`) and GPT-OSS ([`gpt_oss`], crate `ttsan-models`).
//! `docs/architecture.md` says what each crate owns.
#![deny(missing_docs)]

pub use ttsan_alloc_model as alloc;
pub use ttsan_models::{common, gpt_oss};
pub use ttsan_sim as sim;
