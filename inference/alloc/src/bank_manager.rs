//! tt-metal's `BankManager`: one free list standing for every bank of a memory space.
//!
//! Banks move in lock step: a buffer takes the same bank-local address in every bank, so one
//! free list sized like a single bank is enough.

use super::error::AllocError;
use super::free_list::{FreeList, Statistics};
use ttsan_events::Space;

/// The allocator of one memory space.
#[derive(Debug, Clone)]
pub struct BankManager {
    space: Space,
    banks: u32,
    /// What pages are rounded up to when working out a bank's share.
    alignment: u64,
    /// Interleaved L1 buffers may not start below this (0 = no limit).
    interleaved_address_limit: u64,
    list: FreeList,
}

/// Bytes one bank holds of a buffer of `size` bytes cut into `page_size` pages dealt
/// round-robin over `banks` banks (tt-metal's `calculate_bank_size_spread`).
pub fn bank_size_spread(size: u64, page_size: u64, banks: u32, alignment: u64) -> u64 {
    let pages = size.checked_div(page_size).unwrap_or(0);
    let per_bank = if pages == 0 { 0 } else { 1 + (pages - 1) / u64::from(banks.max(1)) };
    let alignment = alignment.max(1);
    // Wrapping, as the C++ does, so absurd requests fail the way they fail there.
    per_bank.wrapping_mul(page_size.wrapping_add(alignment - 1) / alignment * alignment)
}

impl BankManager {
    /// A manager of `banks` banks of `size` bytes each, addresses starting at `offset`.
    ///
    /// `alignment` rounds pages; `list_alignment` rounds whole allocations (tt-metal 0.81.1
    /// gives every free list the DRAM alignment, also for L1).
    pub fn new(
        space: Space,
        banks: u32,
        size: u64,
        offset: u64,
        alignment: u64,
        list_alignment: u64,
        interleaved_address_limit: u64,
    ) -> Self {
        BankManager {
            space,
            banks,
            alignment,
            interleaved_address_limit,
            list: FreeList::new(size, offset, list_alignment, list_alignment),
        }
    }

    /// The space this manager allocates in.
    pub fn space(&self) -> Space {
        self.space
    }

    /// Number of banks interleaved buffers are spread over.
    pub fn num_banks(&self) -> u32 {
        self.banks
    }

    /// Bytes of one bank this manager hands out.
    pub fn bank_size(&self) -> u64 {
        self.list.max_size()
    }

    /// First address of the managed range.
    pub fn base(&self) -> u64 {
        self.list.offset()
    }

    /// Places a buffer of `size` bytes in `page_size` pages (both already rounded to the
    /// buffer's alignment, as `Buffer::aligned_size` does), over all banks or over `shards`
    /// cores. `compute_cores` bounds the shard count.
    pub fn allocate(
        &mut self,
        size: u64,
        page_size: u64,
        bottom_up: bool,
        shards: Option<u32>,
        compute_cores: u32,
    ) -> Result<u64, AllocError> {
        let banks = match shards {
            Some(n) if n > compute_cores => return Err(AllocError::TooManyShards { shards: n, cores: compute_cores }),
            Some(n) => n,
            None => self.banks,
        };
        if banks == 0 {
            return Err(AllocError::NoBanks { space: self.space });
        }
        let per_bank = bank_size_spread(size, page_size, banks, self.alignment);
        let limit = if shards.is_none() && self.space == Space::L1 { self.interleaved_address_limit } else { 0 };
        match self.list.allocate(per_bank, bottom_up, limit) {
            Ok(Some(address)) => Ok(address),
            Ok(None) => {
                let s = self.list.statistics();
                Err(AllocError::OutOfMemory(format!(
                    "Out of Memory: Not enough space to allocate {size} B {} buffer across {banks} banks, where each \
                     bank needs to store {per_bank} B, but bank size is {} B (allocated: {} B, free: {} B, largest \
                     free block: {} B).",
                    type_name(self.space),
                    self.bank_size(),
                    s.total_allocated,
                    s.total_free,
                    s.largest_free_block
                )))
            }
            Err(e) => Err(AllocError::OutOfMemory(format!(
                "Out of Memory: Cannot allocate at an address below {}. Allocation at {}",
                e.limit, e.address
            ))),
        }
    }

    /// Frees the buffer at `address`; addresses that hold no buffer are ignored, as in tt-metal.
    pub fn deallocate(&mut self, address: u64) {
        self.list.deallocate(address);
    }

    /// Usage figures of one bank.
    pub fn statistics(&self) -> Statistics {
        self.list.statistics()
    }

    /// The lowest address holding a buffer, if any.
    pub fn lowest_occupied_address(&self) -> Option<u64> {
        self.list.lowest_occupied_address()
    }

    /// Every allocated `[start, end)` range of one bank, in address order.
    pub fn allocated_ranges(&self) -> Vec<(u64, u64)> {
        self.list.allocated_ranges()
    }
}

/// tt-metal's `BufferType` spelling, as it appears in its messages.
pub fn type_name(space: Space) -> &'static str {
    match space {
        Space::Dram => "DRAM",
        Space::L1 => "L1",
        Space::L1Small => "L1_SMALL",
        Space::Trace => "TRACE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_rounds_pages_up_per_bank() {
        // 64 pages of 2 KiB over 12 banks: 6 pages per bank.
        assert_eq!(bank_size_spread(64 * 2048, 2048, 12, 32), 12_288);
        // 100 pages of 1 KiB over 64 banks: 2 pages per bank.
        assert_eq!(bank_size_spread(100 * 1024, 1024, 64, 16), 2048);
        // A 48 B page rounds up to 64 with 32 B alignment.
        assert_eq!(bank_size_spread(48 * 13, 48, 12, 32), 128);
        assert_eq!(bank_size_spread(0, 2048, 12, 32), 0);
    }

    #[test]
    fn oom_message_is_tt_metals() {
        let mut m = BankManager::new(Space::L1, 64, 1_393_312, 105_824, 16, 32, 105_824);
        let e = m.allocate(102_400_000, 1024, false, None, 64).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Out of Memory: Not enough space to allocate 102400000 B L1 buffer across 64 banks, where each bank \
             needs to store 1600512 B, but bank size is 1393312 B (allocated: 0 B, free: 1393312 B, largest free \
             block: 1393312 B)."
        );
    }

    #[test]
    fn shards_replace_the_bank_count() {
        let mut m = BankManager::new(Space::L1, 64, 1_393_312, 105_824, 16, 32, 105_824);
        // 8 pages of 2 KiB on 2 shards: 4 pages each.
        assert_eq!(m.allocate(8 * 2048, 2048, false, Some(2), 64), Ok(105_824 + 1_393_312 - 8192));
        assert_eq!(
            m.allocate(2048, 2048, false, Some(65), 64),
            Err(AllocError::TooManyShards { shards: 65, cores: 64 })
        );
    }

    #[test]
    fn no_banks_is_an_error_not_a_division_by_zero() {
        let mut m = BankManager::new(Space::L1Small, 0, 0, 1000, 16, 32, 1000);
        assert_eq!(m.allocate(2048, 2048, false, None, 64), Err(AllocError::NoBanks { space: Space::L1Small }));
    }
}
