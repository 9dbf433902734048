//! `ttsan run gpt-oss` as a library: GPT-OSS on the simulated mesh under the sanitizer, as
//! module tests (tt-metal's `test_modules.py --test-modules`) or as the whole model, in
//! prefill, decode (the prompt fills the KV cache, then decode steps) or both,
//! with named faults that reproduce the corruption classes of the attention-sink case.
//!
//! A test case builds the whole decoder layer before any component runs, as tt-metal's
//! `setup_decoder_layer` does; `--cases` runs several cases on one mesh and program cache.
//! The named faults `ccl-stale-runtime-arg` (a cached program's stale address), `ccl-peer-skew`
//! (a peer chip's late fabric writes, seeded) and `ccl-stale-scratch` (the same, always late)
//! model the experts' TP all-reduce (`reduce_scatter_minimal_async` + `all_gather_async`);
//! docs/gpt-oss.md gives the tt-metal code each rests on.

mod decode;
mod error;
mod faults;
mod module;
mod options;
mod plan;
mod scenario;
mod session;

pub use decode::ModelDecode;
pub use error::RunError;
pub use faults::{resolve, FaultContext, NamedFault, NAMED_FAULTS};
pub use module::{Module, ModuleResult};
pub use options::{Case, Mode, ModelSource, RunOptions};
pub use plan::{model_passes, plan, L1Peak, PlanOptions, PlanOutcome};
pub use scenario::{load_model, run, Progress, RunOutcome};
pub use session::Session;
