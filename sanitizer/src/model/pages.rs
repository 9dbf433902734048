//! Page -> (bank or core, address), as tt-metal's `Buffer::page_address` computes it.

use super::align_up;
use crate::buffer::{AllocKind, BufferInfo};
use ttsan_events::{page_address, Geometry, Layout, PageMap, Space, Unit};

/// Bytes between consecutive pages of one bank: the page size rounded up to the space's alignment.
pub fn page_stride(geometry: &Geometry, space: Space, page_size: u64) -> u64 {
    align_up(page_size, geometry.alignment(space))
}

/// Number of pages in a buffer (a trailing partial page counts).
pub fn num_pages(size: u64, page_size: u64) -> u64 {
    if page_size == 0 {
        0
    } else {
        size.div_ceil(page_size)
    }
}

/// Where host page `page` of `buffer` lives: its unit and bank-local start address.
///
/// Interleaved: page `i` is on bank `i % banks` at `address + (i / banks) * stride`.
/// Sharded: the page's shard picks the unit, its slot in the shard the offset.
/// Circular buffers have no pages.
pub fn page_location(buffer: &BufferInfo, geometry: &Geometry, page: u64) -> Option<(Unit, u64)> {
    let AllocKind::Buffer { layout, page_size } = &buffer.kind else {
        return None;
    };
    if page >= num_pages(buffer.size, *page_size) {
        return None;
    }
    let stride = page_stride(geometry, buffer.space, *page_size);
    match layout {
        Layout::Interleaved => {
            let banks = u64::from(geometry.banks(buffer.space).max(1));
            let (bank, address) = page_address(PageMap::Interleaved { banks }, page, buffer.address, stride)?;
            Some((geometry.bank_unit(buffer.space, u32::try_from(bank).ok()?)?, address))
        }
        Layout::Sharded(spec) => {
            let (shard, address) = page_address(PageMap::Sharded(spec), page, buffer.address, stride)?;
            Some((*spec.units.get(shard)?, address))
        }
    }
}
