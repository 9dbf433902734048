//! Models on the simulated mesh. Each model is a folder next to [`gpt_oss`]: its config, weights
//! and checkpoint loader, its CPU reference, its device path over [`ttsan_sim`] ops and
//! collectives, and its runs (module tests, plan mode). What every model needs lives in
//! [`common`].
#![deny(missing_docs)]

pub mod common;
pub mod gpt_oss;
