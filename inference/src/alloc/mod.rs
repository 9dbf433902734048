//! tt-metal's bank allocator, re-implemented so that the simulated mesh hands out the same
//! addresses as the real library.

pub mod script;
