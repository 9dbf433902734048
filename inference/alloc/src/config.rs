//! What an allocator is configured with: the chip's memory facts plus the two sizes a caller
//! picks when opening a device (L1_SMALL and the trace region).

use super::error::AllocError;
use ttsan_events::{Arch, Geometry};

/// tt-metal rounds every bank's trace region to its largest trace page.
const TRACE_PAGE: u64 = 8192;

/// The configuration of one mesh allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocatorConfig {
    /// Memory facts of every chip of the mesh (they are identical in a mock mesh).
    /// `geometry.l1_small_size` and `geometry.trace_region_size` are the effective per-bank
    /// sizes after tt-metal's rounding.
    pub geometry: Geometry,
    /// Chips in the mesh; one allocator serves them all.
    pub chips: u32,
}

impl AllocatorConfig {
    /// What `MeshDevice::create_unit_mesh` / `open_mesh_device` in mock mode configure for a
    /// `chips`-chip mesh of `arch` with default arguments (no L1_SMALL, no trace region).
    pub fn mock(arch: Arch, chips: u32) -> Result<Self, AllocError> {
        Ok(AllocatorConfig { geometry: Geometry::mock(arch, chips)?, chips })
    }

    /// The same configuration with an L1_SMALL region of `bytes` (rounded up to the DRAM
    /// alignment, as `L1BankingAllocator::generate_config` does).
    pub fn with_l1_small_size(mut self, bytes: u64) -> Self {
        self.geometry.l1_small_size = round_up(bytes, self.geometry.dram_alignment);
        self
    }

    /// The same configuration with a trace region of `bytes` in total (the device parameter):
    /// aligned to `DRAM_ALIGNMENT * banks`, split over the banks, and each bank's share rounded
    /// up to 8 KiB.
    pub fn with_trace_region_size(mut self, bytes: u64) -> Self {
        let g = &mut self.geometry;
        let banks = u64::from(g.dram_banks.max(1));
        let total = round_up(bytes, g.dram_alignment * banks);
        g.trace_region_size = round_up(total / banks, TRACE_PAGE);
        self
    }

    /// Number of L1 banks (compute cores) of a chip.
    pub fn l1_banks(&self) -> u32 {
        self.geometry.l1_banks()
    }
}

/// `value` rounded up to a multiple of `to` (`to` = 0 leaves it alone).
pub(crate) fn round_up(value: u64, to: u64) -> u64 {
    if to == 0 {
        value
    } else {
        value.div_ceil(to).saturating_mul(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_region_rounds_like_the_real_library() {
        // 1 MiB asked for on Wormhole: the real library reports a 90112 B TRACE bank.
        let c = AllocatorConfig::mock(Arch::WormholeB0, 1).unwrap().with_trace_region_size(1 << 20);
        assert_eq!(c.geometry.trace_region_size, 90_112);
        let c = AllocatorConfig::mock(Arch::Blackhole, 1).unwrap().with_trace_region_size(1 << 20);
        assert_eq!(c.geometry.trace_region_size, 131_072);
    }

    #[test]
    fn l1_small_is_aligned_to_dram() {
        let c = AllocatorConfig::mock(Arch::Blackhole, 1).unwrap().with_l1_small_size(100);
        assert_eq!(c.geometry.l1_small_size, 128);
    }

    #[test]
    fn unknown_meshes_are_errors() {
        assert!(matches!(AllocatorConfig::mock(Arch::WormholeB0, 3), Err(AllocError::UnknownMesh(_))));
    }
}
