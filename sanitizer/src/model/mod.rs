//! The device memory model: where a buffer's bytes are.
//!
//! tt-metal hands every bank (or every shard core) of a buffer the same bank-local address, so a
//! buffer is an address range repeated over a set of units. [`footprint`] gives those ranges;
//! [`pages`] maps a buffer's pages to units and addresses the way tt-metal's `Buffer` does.

pub mod footprint;
pub mod pages;

pub use footprint::{footprint, Footprint};
pub use pages::page_location;

/// Rounds `value` up to a multiple of `align` (an `align` of 0 leaves it unchanged).
pub fn align_up(value: u64, align: u64) -> u64 {
    if align == 0 {
        value
    } else {
        value.div_ceil(align).saturating_mul(align)
    }
}
