//! The allocator of a whole mesh: tt-metal's `L1BankingAllocator`, one per mesh, so a mesh
//! buffer gets the same address on every chip.
//!
//! Layout of every DRAM bank: `[0, unreserved base)` reserved | DRAM buffers, bottom-up |
//! trace region at the top. Layout of every core's L1: firmware and kernel-config ring below
//! `l1_unreserved_base` | L1 buffers, top-down | L1_SMALL at the very top.

use super::bank_manager::BankManager;
use super::config::{round_up, AllocatorConfig};
use super::error::AllocError;
use super::free_list::Statistics;
use ttsan_events::Space;

/// One allocation request, as a `Buffer` would make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocRequest {
    /// Memory space.
    pub space: Space,
    /// Total bytes.
    pub size: u64,
    /// Page size in bytes.
    pub page_size: u64,
    /// `Some(n)` for a sharded buffer over `n` cores, `None` for interleaved over all banks.
    pub shards: Option<u32>,
    /// Direction override; tt-metal's default is bottom-up for DRAM and TRACE, top-down for L1.
    pub bottom_up: Option<bool>,
}

impl AllocRequest {
    /// An interleaved buffer with the default direction.
    pub fn interleaved(space: Space, size: u64, page_size: u64) -> Self {
        AllocRequest { space, size, page_size, shards: None, bottom_up: None }
    }

    /// A sharded buffer over `cores` cores with the default direction.
    pub fn sharded(space: Space, size: u64, page_size: u64, cores: u32) -> Self {
        AllocRequest { space, size, page_size, shards: Some(cores), bottom_up: None }
    }
}

/// The model of a mesh's allocator.
#[derive(Debug, Clone)]
pub struct Allocator {
    config: AllocatorConfig,
    dram: BankManager,
    trace: BankManager,
    l1: BankManager,
    l1_small: BankManager,
}

impl Allocator {
    /// An empty allocator, as right after the mesh opened.
    pub fn new(config: AllocatorConfig) -> Self {
        let g = &config.geometry;
        let dram_size = g.dram_bank_size.saturating_sub(g.dram_unreserved_base).saturating_sub(g.trace_region_size);
        let dram = BankManager::new(
            Space::Dram,
            g.dram_banks,
            dram_size,
            g.dram_unreserved_base,
            g.dram_alignment,
            g.dram_alignment,
            0,
        );
        let trace = BankManager::new(
            Space::Trace,
            g.dram_banks,
            g.trace_region_size,
            g.dram_unreserved_base + dram_size,
            g.dram_alignment,
            g.dram_alignment,
            0,
        );
        let l1_banks = g.l1_banks();
        let l1_size = g.l1_size.saturating_sub(g.l1_unreserved_base).saturating_sub(g.l1_small_size);
        // The limit only bites when storage cores extend the L1 bank; with compute cores alone
        // it equals the L1 base.
        let l1 = BankManager::new(
            Space::L1,
            l1_banks,
            l1_size,
            g.l1_unreserved_base,
            g.l1_alignment,
            g.l1_allocator_alignment,
            g.l1_unreserved_base,
        );
        let small_banks = if g.l1_small_size > 0 { l1_banks } else { 0 };
        let l1_small = BankManager::new(
            Space::L1Small,
            small_banks,
            g.l1_small_size,
            g.l1_unreserved_base + l1_size,
            g.l1_alignment,
            g.l1_allocator_alignment,
            g.l1_size - g.l1_small_size.min(g.l1_size),
        );
        Allocator { config, dram, trace, l1, l1_small }
    }

    /// The configuration this allocator was built from.
    pub fn config(&self) -> &AllocatorConfig {
        &self.config
    }

    /// The bank manager of `space`.
    pub fn manager(&self, space: Space) -> &BankManager {
        match space {
            Space::Dram => &self.dram,
            Space::Trace => &self.trace,
            Space::L1 => &self.l1,
            Space::L1Small => &self.l1_small,
        }
    }

    fn manager_mut(&mut self, space: Space) -> &mut BankManager {
        match space {
            Space::Dram => &mut self.dram,
            Space::Trace => &mut self.trace,
            Space::L1 => &mut self.l1,
            Space::L1Small => &mut self.l1_small,
        }
    }

    /// The alignment a buffer in `space` rounds its pages to (`Buffer::alignment`).
    pub fn buffer_alignment(&self, space: Space) -> u64 {
        self.config.geometry.alignment(space)
    }

    /// Places a buffer and returns its bank-local address (the same in every bank and on
    /// every chip). A zero-sized buffer gets address 0 and takes no space, as in tt-metal.
    pub fn allocate(&mut self, req: &AllocRequest) -> Result<u64, AllocError> {
        if req.page_size == 0 {
            return Err(AllocError::ZeroPageSize);
        }
        if req.size % req.page_size != 0 {
            return Err(AllocError::PartialPage { size: req.size, page_size: req.page_size });
        }
        if req.size == 0 {
            return Ok(0);
        }
        if req.space == Space::L1Small && req.shards.is_none() {
            return Err(AllocError::ShardedOnly { space: req.space });
        }
        let aligned_page = round_up(req.page_size, self.buffer_alignment(req.space));
        let aligned_size = (req.size / req.page_size).wrapping_mul(aligned_page);
        let bottom_up = req.bottom_up.unwrap_or(req.space.is_dram());
        let cores = self.config.l1_banks();
        self.manager_mut(req.space).allocate(aligned_size, aligned_page, bottom_up, req.shards, cores)
    }

    /// Frees the buffer at `address` in `space`. Unknown addresses are ignored, as in tt-metal.
    pub fn deallocate(&mut self, space: Space, address: u64) {
        self.manager_mut(space).deallocate(address);
    }

    /// Usage figures of one bank of `space` (allocated, free, largest free block).
    pub fn statistics(&self, space: Space) -> Statistics {
        self.manager(space).statistics()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttsan_events::Arch;

    fn mock(arch: Arch, chips: u32) -> Allocator {
        Allocator::new(AllocatorConfig::mock(arch, chips).unwrap())
    }

    fn dram(size: u64, page: u64) -> AllocRequest {
        AllocRequest::interleaved(Space::Dram, size, page)
    }

    fn l1(size: u64, page: u64) -> AllocRequest {
        AllocRequest::interleaved(Space::L1, size, page)
    }

    #[test]
    fn first_addresses_match_the_observed_ones() {
        // ../shared/reference/tt-metal-mock-mode.md, "Observed addresses".
        let mut wh = mock(Arch::WormholeB0, 1);
        assert_eq!(wh.allocate(&dram(128 << 10, 2048)), Ok(0x10_0040));
        assert_eq!(wh.allocate(&dram(1 << 20, 2048)), Ok(0x10_3040));
        assert_eq!(wh.allocate(&l1(32 << 10, 2048)), Ok(0x16_d800));
        let mut t3k = mock(Arch::WormholeB0, 8);
        assert_eq!(t3k.allocate(&dram(1 << 20, 2048)), Ok(0x10_0040));
        assert_eq!(t3k.allocate(&l1(64 << 10, 2048)), Ok(0x16_d800));
        let mut bh = mock(Arch::Blackhole, 1);
        assert_eq!(bh.allocate(&dram(128 << 10, 2048)), Ok(0x10_0080));
        assert_eq!(bh.allocate(&l1(32 << 10, 2048)), Ok(0x17_f800));
    }

    #[test]
    fn dram_is_reused_after_free() {
        let mut a = mock(Arch::WormholeB0, 1);
        let first = a.allocate(&dram(128 << 10, 2048)).unwrap();
        let second = a.allocate(&dram(1 << 20, 2048)).unwrap();
        a.deallocate(Space::Dram, first);
        assert_eq!(a.allocate(&dram(128 << 10, 2048)), Ok(first));
        a.deallocate(Space::Dram, second);
        assert_eq!(a.statistics(Space::Dram).total_allocated, 12_288);
    }

    #[test]
    fn l1_grows_down_and_coalesces() {
        let mut a = mock(Arch::WormholeB0, 1);
        let top = 1_499_136;
        // 128 pages of 2 KiB over 64 banks: 4 KiB per bank.
        let x = a.allocate(&l1(128 * 2048, 2048)).unwrap();
        let y = a.allocate(&l1(128 * 2048, 2048)).unwrap();
        assert_eq!((x, y), (top - 4096, top - 8192));
        a.deallocate(Space::L1, x);
        a.deallocate(Space::L1, y);
        // Both holes merged with the rest: an 8 KiB share lands at the very top again.
        assert_eq!(a.allocate(&l1(256 * 2048, 2048)), Ok(top - 8192));
    }

    #[test]
    fn l1_allocations_round_to_the_dram_alignment() {
        let mut a = mock(Arch::Blackhole, 1);
        // 16 B pages, one per bank: the bank manager asks for 16 B, the free list takes 64.
        assert_eq!(a.allocate(&l1(16 * 110, 16)), Ok(1_572_864 - 64));
        assert_eq!(a.allocate(&l1(16, 16)), Ok(1_572_864 - 128));
    }

    #[test]
    fn pages_round_to_the_buffer_alignment() {
        let mut a = mock(Arch::WormholeB0, 1);
        // 24 pages of 40 B: pages become 64 B in DRAM, 2 per bank.
        let x = a.allocate(&dram(24 * 40, 40)).unwrap();
        assert_eq!(a.allocate(&dram(32, 32)), Ok(x + 128));
    }

    #[test]
    fn oom_carries_tt_metals_message_and_changes_nothing() {
        let mut a = mock(Arch::WormholeB0, 1);
        let e = a.allocate(&dram(131_072_000_000, 65_536)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Out of Memory: Not enough space to allocate 131072000000 B DRAM buffer across 12 banks, where each \
             bank needs to store 10922688512 B, but bank size is 1072693184 B (allocated: 0 B, free: 1072693184 B, \
             largest free block: 1072693184 B)."
        );
        assert_eq!(a.allocate(&dram(2048, 2048)), Ok(0x10_0040));
    }

    #[test]
    fn l1_small_needs_a_region_and_shards() {
        let mut a = mock(Arch::WormholeB0, 1);
        let small = AllocRequest::interleaved(Space::L1Small, 2048, 2048);
        assert_eq!(a.allocate(&small), Err(AllocError::ShardedOnly { space: Space::L1Small }));
        let sharded = AllocRequest::sharded(Space::L1Small, 2048, 2048, 1);
        // Without an L1_SMALL region a sharded request finds a bank of size 0.
        let e = a.allocate(&sharded).unwrap_err().to_string();
        assert!(e.contains("2048 B L1_SMALL buffer across 1 banks") && e.contains("bank size is 0 B"), "{e}");

        let cfg = AllocatorConfig::mock(Arch::WormholeB0, 1).unwrap().with_l1_small_size(65_536);
        let mut a = Allocator::new(cfg);
        assert_eq!(a.allocate(&sharded), Ok(1_499_136 - 2048));
        // Regular L1 now tops out below L1_SMALL.
        assert_eq!(a.allocate(&l1(2048, 2048)), Ok(1_499_136 - 65_536 - 2048));
    }

    #[test]
    fn trace_region_sits_on_top_of_dram() {
        let cfg = AllocatorConfig::mock(Arch::WormholeB0, 1).unwrap().with_trace_region_size(1 << 20);
        let mut a = Allocator::new(cfg);
        assert_eq!(a.manager(Space::Dram).bank_size(), 1_072_603_072);
        let t = a.allocate(&AllocRequest::interleaved(Space::Trace, 12 * 2048, 2048)).unwrap();
        assert_eq!(t, (1 << 30) - 90_112);
    }

    #[test]
    fn zero_sized_and_malformed_requests() {
        let mut a = mock(Arch::WormholeB0, 1);
        assert_eq!(a.allocate(&dram(0, 2048)), Ok(0));
        assert_eq!(a.allocate(&dram(1000, 2048)), Err(AllocError::PartialPage { size: 1000, page_size: 2048 }));
        assert_eq!(a.allocate(&dram(1000, 0)), Err(AllocError::ZeroPageSize));
        assert_eq!(a.statistics(Space::Dram).total_allocated, 0);
    }

    #[test]
    fn sharded_l1_ignores_the_bank_count() {
        let mut a = mock(Arch::WormholeB0, 1);
        // 64 pages on 8 cores: 8 pages each (16 KiB), where interleaved would be 1 page each.
        let s = a.allocate(&AllocRequest::sharded(Space::L1, 64 * 2048, 2048, 8)).unwrap();
        assert_eq!(s, 1_499_136 - 16_384);
        let e = a.allocate(&AllocRequest::sharded(Space::L1, 2048, 2048, 65)).unwrap_err();
        assert_eq!(e, AllocError::TooManyShards { shards: 65, cores: 64 });
    }
}
