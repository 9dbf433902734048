//! `ttsan run gpt-oss` as a library: GPT-OSS on the simulated mesh under the sanitizer, as
//! module tests (tt-metal's `test_modules.py --test-modules`) or as the whole model, in
//! prefill, decode (the prompt fills the KV cache, then decode steps) or both,
//! with named faults that reproduce the corruption classes of the attention-sink case.
//!
//! The named fault `ccl-stale-scratch` is the field bug's mechanism: the experts' TP
//! all-reduce (`reduce_scatter_minimal_async` + `all_gather_async`) is asynchronous, its
//! cached intermediate is freed when the experts module ends, and its last writes to that
//! intermediate land after the free, at the next compute dispatch. With the experts first, the
//! attention sinks (allocated first, small) take the hole, and SDPA reads corrupted sinks.

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
pub use options::{parse_cases, parse_ids, parse_layers, parse_mesh, Case, Mode, ModelSource, RunOptions};
pub use plan::{plan, L1Peak, PlanOptions, PlanOutcome};
pub use scenario::{load_model, run, Progress, RunOutcome};
pub use session::Session;
