//! The protocol between the `ttsan run` wrapper and the preload shim `libttsan_preload.so`:
//! the environment variables the wrapper sets ([`env`](mod@env)), the status lines every shim instance
//! appends ([`StatusLine`]), the guard selection and digest sampling both sides parse
//! ([`GuardSelection`], [`DigestSampling`]), and the wrapper's Ctrl-C handling
//! ([`ignore_interrupts`]). [`loader`] reads exported symbols off addresses, which the shim
//! and `ttsan doctor`'s workload both do to find tt-metal's vtable slots.
//!
//! It is a crate of its own so that the wrapper can share these pieces without linking the
//! shim: the shim's rlib carries an `.init_array` constructor and exported interposers, which
//! have no business in the `ttsan` binary.
#![deny(missing_docs)]

pub mod env;
mod glob;
pub mod guard;
mod interrupts;
pub mod loader;
mod status;

pub use env::{
    ENV_COMMAND, ENV_GUARD_EVERY, ENV_GUARD_MIN_SIZE, ENV_GUARD_OPS, ENV_GUARD_PRELOADED, ENV_GUARD_STACK,
    ENV_GUARD_TYPES, ENV_STACK_DEPTH, ENV_STATUS, ENV_TRACE,
};
pub use glob::glob_match;
pub use guard::{DigestSampling, GuardSelection, SelectError, COMPUTE_OP};
pub use interrupts::{ignore_interrupts, InterruptsIgnored};
pub use status::{StatusLine, STATUS_ERROR, STATUS_LOADED, STATUS_TT_METAL, STATUS_UNSUPPORTED};
