//! tt-metal's bank allocator, re-implemented so that the simulated mesh hands out the same
//! addresses as the real library (ttnn 0.81.1).
//!
//! [`free_list`] is `FreeListOpt`, [`bank_manager`] is `BankManager`, [`Allocator`] is the
//! `L1BankingAllocator` of a whole mesh, and [`replay::run_model`] answers a request
//! [`script`] the way `ttsan tt-metal replay` answers it from the real library.
//! `docs/fidelity.md` says how closely the two agree.

#![deny(missing_docs)]

mod allocator;
pub mod bank_manager;
mod config;
mod error;
pub mod free_list;
pub mod replay;
pub mod script;

pub use allocator::{AllocRequest, Allocator};
pub use config::AllocatorConfig;
pub use error::AllocError;
pub use free_list::Statistics;
