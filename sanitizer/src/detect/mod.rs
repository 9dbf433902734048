//! The detectors. Each turns one kind of event into findings of its own kinds:
//!
//! | module | event | kinds |
//! |---|---|---|
//! | [`writes`] | write | oob-write, use-after-free, foreign-write, wild-write |
//! | [`guard`] | guard digest | guard-corruption |
//! | [`canary`] | canary digest | oob-write, use-after-free, wild-write |
//! | [`placement`] | allocation | overlap, cb-clash |
//! | [`frees`] | free | double-free, unknown-free |
//! | [`leak`] | end of trace | leak |

pub mod canary;
pub mod findings;
pub mod frees;
pub mod guard;
pub mod leak;
pub mod placement;
pub mod writes;

pub use findings::FindingSet;

use crate::ops::OpTable;
use crate::registry::Registry;

/// What every detector reads.
pub struct Context<'a> {
    /// Live and freed allocations.
    pub registry: &'a Registry,
    /// Ops and what they declare.
    pub ops: &'a OpTable,
}
