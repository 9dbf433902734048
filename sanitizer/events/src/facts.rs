//! The memory facts of the chips that ttnn 0.81.1 configures in mock mode.
//!
//! Every number here was read off the real library (`AllocatorImpl::get_num_banks`,
//! `get_bank_size`, `get_base_allocator_addr`, `get_logical_core_from_bank_id` on a mock mesh
//! opened with `l1_small_size = 0` and `trace_region_size = 0`) and cross-checked against the
//! tt-metal sources named on each constant; `docs/fidelity.md` explains where they come from.

use crate::device::{Arch, CoreCoord, Geometry};

/// Bytes in one Wormhole B0 DRAM view (`dram_view_size` in `wormhole_b0_80_arch.yaml`).
const WH_DRAM_VIEW_SIZE: u64 = 1 << 30;
/// Bytes in one Blackhole DRAM view (`dram_view_size` in `blackhole_140_arch.yaml`).
const BH_DRAM_VIEW_SIZE: u64 = 4_278_190_080;
/// `MEM_L1_SIZE` of a Wormhole Tensix core.
const WH_L1_SIZE: u64 = 1_499_136;
/// `MEM_L1_SIZE` of a Blackhole Tensix core.
const BH_L1_SIZE: u64 = 1_572_864;
/// First allocatable DRAM address on Wormhole: the 32 B barrier plus the DRAM profiler region,
/// which is not empty because the wheel is built with `TRACY_ENABLE`.
const WH_DRAM_UNRESERVED_BASE: u64 = 0x10_0040;
/// First allocatable DRAM address on Blackhole (64 B barrier plus the profiler region).
const BH_DRAM_UNRESERVED_BASE: u64 = 0x10_0080;
/// `align(MEM_MAP_END + 69 KiB kernel-config ring, DRAM_ALIGNMENT)` on Wormhole.
const WH_L1_UNRESERVED_BASE: u64 = 105_824;
/// The same on Blackhole.
const BH_L1_UNRESERVED_BASE: u64 = 111_744;
/// NOC L1 alignment, both architectures.
const L1_ALIGNMENT: u64 = 16;
/// `DRAM_ALIGNMENT` on Wormhole (max of NOC DRAM read 32 and write 16).
const WH_DRAM_ALIGNMENT: u64 = 32;
/// `DRAM_ALIGNMENT` on Blackhole (max of NOC DRAM read 64 and write 16).
const BH_DRAM_ALIGNMENT: u64 = 64;

/// Why no geometry can be given for a mock mesh.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no measured mock-mode geometry for a {chips}-chip {arch} mesh (known: {known})")]
pub struct UnknownMesh {
    /// The architecture asked for.
    pub arch: Arch,
    /// The chip count asked for.
    pub chips: u32,
    /// The chip counts that are known for this architecture.
    pub known: &'static str,
}

impl Geometry {
    /// A single Wormhole B0 chip (n150) as mock mode opens it: 12 DRAM banks, 64 L1 banks.
    pub fn wormhole_b0() -> Self {
        Self::wormhole_with_grid(CoreCoord::new(8, 8))
    }

    /// A single Blackhole chip (p150) as mock mode opens it: 8 DRAM banks, 110 L1 banks.
    pub fn blackhole() -> Self {
        Self::blackhole_with_grid(CoreCoord::new(11, 10))
    }

    /// The geometry of every chip of a `chips`-chip mock mesh of `arch`.
    ///
    /// The compute grid depends on the cluster descriptor mock mode picks for that chip count
    /// (and on where it puts the dispatch cores), so only measured chip counts are answered.
    /// `worker_grid` holds that compute grid: the cores that carry L1 banks, dispatch cores
    /// excluded.
    pub fn mock(arch: Arch, chips: u32) -> Result<Self, UnknownMesh> {
        match (arch, chips) {
            (Arch::WormholeB0, 1) => Ok(Self::wormhole_b0()),
            // n300 boards (2, 4 and the 8-chip T3K) keep one more worker row for dispatch.
            (Arch::WormholeB0, 2 | 4 | 8) => Ok(Self::wormhole_with_grid(CoreCoord::new(8, 7))),
            // Galaxy dispatches from ethernet cores, leaving the whole 8x9 harvested grid.
            (Arch::WormholeB0, 32) => Ok(Self::wormhole_with_grid(CoreCoord::new(8, 9))),
            (Arch::Blackhole, 1 | 2 | 4) => Ok(Self::blackhole()),
            (Arch::Blackhole, 8) => Ok(Self::blackhole_with_grid(CoreCoord::new(12, 10))),
            (Arch::WormholeB0, _) => Err(UnknownMesh { arch, chips, known: "1, 2, 4, 8, 32" }),
            (Arch::Blackhole, _) => Err(UnknownMesh { arch, chips, known: "1, 2, 4, 8" }),
        }
    }

    fn wormhole_with_grid(grid: CoreCoord) -> Self {
        Geometry {
            arch: Arch::WormholeB0,
            dram_banks: 12,
            dram_bank_size: WH_DRAM_VIEW_SIZE,
            dram_alignment: WH_DRAM_ALIGNMENT,
            dram_unreserved_base: WH_DRAM_UNRESERVED_BASE,
            trace_region_size: 0,
            l1_size: WH_L1_SIZE,
            l1_alignment: L1_ALIGNMENT,
            l1_allocator_alignment: WH_DRAM_ALIGNMENT,
            l1_unreserved_base: WH_L1_UNRESERVED_BASE,
            l1_small_size: 0,
            worker_grid: grid,
            l1_bank_cores: l1_bank_cores(grid),
        }
    }

    fn blackhole_with_grid(grid: CoreCoord) -> Self {
        Geometry {
            arch: Arch::Blackhole,
            dram_banks: 8,
            dram_bank_size: BH_DRAM_VIEW_SIZE,
            dram_alignment: BH_DRAM_ALIGNMENT,
            dram_unreserved_base: BH_DRAM_UNRESERVED_BASE,
            trace_region_size: 0,
            l1_size: BH_L1_SIZE,
            l1_alignment: L1_ALIGNMENT,
            l1_allocator_alignment: BH_DRAM_ALIGNMENT,
            l1_unreserved_base: BH_L1_UNRESERVED_BASE,
            l1_small_size: 0,
            worker_grid: grid,
            l1_bank_cores: l1_bank_cores(grid),
        }
    }
}

/// The core behind each L1 bank id for a rectangular compute grid starting at (0,0).
///
/// `AllocatorImpl::init_compute_and_storage_l1_bank_manager` walks the compute cores row by
/// row and gives the i-th one bank id `shuffled[i]`, where `shuffled` is `0..n` passed through
/// `std::shuffle` with `std::default_random_engine(0)`.
pub fn l1_bank_cores(grid: CoreCoord) -> Vec<CoreCoord> {
    let cores: Vec<CoreCoord> = (0..grid.y).flat_map(|y| (0..grid.x).map(move |x| CoreCoord::new(x, y))).collect();
    let mut shuffled: Vec<usize> = (0..cores.len()).collect();
    libstdcxx_shuffle(&mut shuffled, &mut MinstdRand0::new(0));
    let mut by_bank = cores.clone();
    for (core, &bank) in cores.iter().zip(&shuffled) {
        by_bank[bank] = *core;
    }
    by_bank
}

/// `std::minstd_rand0` (what libstdc++ calls `std::default_random_engine`).
struct MinstdRand0 {
    state: u64,
}

impl MinstdRand0 {
    const A: u64 = 16_807;
    const M: u64 = 2_147_483_647;
    /// Smallest value the engine yields.
    const MIN: u64 = 1;
    /// Largest value the engine yields.
    const MAX: u64 = Self::M - 1;

    fn new(seed: u64) -> Self {
        // A zero state would stick at zero, so libstdc++ seeds it with 1 instead.
        let s = seed % Self::M;
        MinstdRand0 { state: if s == 0 { 1 } else { s } }
    }

    fn next(&mut self) -> u64 {
        self.state = (self.state * Self::A) % Self::M;
        self.state
    }
}

/// `std::uniform_int_distribution<unsigned long>{lo, hi}(g)` for an engine whose range is not a
/// power of two, i.e. libstdc++'s "downscaling" branch with rejection.
fn uniform(g: &mut MinstdRand0, lo: u64, hi: u64) -> u64 {
    let urngrange = MinstdRand0::MAX - MinstdRand0::MIN;
    let urange = hi - lo;
    let ret = if urngrange > urange {
        let uerange = urange + 1;
        let scaling = urngrange / uerange;
        let past = uerange * scaling;
        loop {
            let r = g.next() - MinstdRand0::MIN;
            if r < past {
                break r / scaling;
            }
        }
    } else {
        // Ranges this wide never occur for bank counts; equal ranges map one to one.
        g.next() - MinstdRand0::MIN
    };
    ret + lo
}

/// libstdc++'s `std::shuffle`, including its trick of drawing two swap positions per random
/// number when the engine's range is wide enough.
fn libstdcxx_shuffle<T>(v: &mut [T], g: &mut MinstdRand0) {
    let n = v.len() as u64;
    if n == 0 {
        return;
    }
    let urngrange = MinstdRand0::MAX - MinstdRand0::MIN;
    if urngrange / n >= n {
        let mut i: u64 = 1;
        if n % 2 == 0 {
            let j = uniform(g, 0, 1);
            v.swap(i as usize, j as usize);
            i += 1;
        }
        while i != n {
            let b0 = i + 1;
            let b1 = b0 + 1;
            let x = uniform(g, 0, b0 * b1 - 1);
            v.swap(i as usize, (x / b1) as usize);
            i += 1;
            v.swap(i as usize, (x % b1) as usize);
            i += 1;
        }
        return;
    }
    for i in 1..n {
        let j = uniform(g, 0, i);
        v.swap(i as usize, j as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses "x,y x,y ..." as printed by the probe against the real library.
    fn cores(text: &str) -> Vec<CoreCoord> {
        text.split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                CoreCoord::new(x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    // `get_logical_core_from_bank_id(0..n)` of ttnn 0.81.1 in mock mode (one n150 chip).
    const WH_N150: &str = "1,4 4,4 4,1 2,2 6,0 7,3 3,0 5,2 2,5 5,4 3,2 6,7 3,3 7,4 2,1 6,4 6,5 5,6 0,5 7,1 0,1 \
        4,3 3,1 5,7 1,3 4,2 2,4 4,5 7,7 6,3 0,2 5,1 3,7 5,0 0,0 1,1 6,1 7,0 2,0 0,3 1,2 4,6 5,3 3,6 2,6 1,6 \
        3,5 4,7 1,7 0,7 2,3 5,5 4,0 7,5 3,4 6,6 7,2 2,7 1,5 6,2 7,6 0,4 0,6 1,0";
    // The same for an 8-chip T3K (8x7 compute grid).
    const WH_T3K: &str = "1,4 4,4 4,1 2,2 6,0 7,3 3,0 5,2 2,5 5,4 3,2 0,6 3,3 7,4 2,1 6,4 6,5 5,6 0,5 7,1 0,1 \
        4,3 3,1 0,4 1,3 4,2 2,4 4,5 1,0 6,3 0,2 5,1 6,2 5,0 0,0 1,1 6,1 7,0 2,0 0,3 1,2 4,6 5,3 3,6 2,6 1,6 \
        3,5 7,6 1,5 7,2 2,3 5,5 4,0 7,5 3,4 6,6";
    // The same for one p150 (11x10 compute grid).
    const BH_P150: &str = "0,3 8,7 1,6 7,1 2,8 9,2 9,7 5,6 2,9 4,3 8,1 7,5 5,2 9,9 10,0 5,3 6,6 9,4 7,3 4,1 \
        8,0 1,7 0,1 6,8 3,2 3,7 1,3 9,8 8,5 8,2 5,1 7,6 4,5 5,0 5,7 9,0 3,1 7,0 2,0 1,9 9,5 8,4 7,9 7,4 2,7 \
        6,9 10,8 5,5 1,8 8,6 8,8 1,4 7,8 10,7 2,3 10,4 4,6 4,8 8,3 0,2 5,8 10,2 4,4 1,0 10,9 0,6 3,0 1,1 6,4 \
        9,6 1,2 4,9 6,7 2,1 3,8 0,5 10,6 5,9 6,2 2,6 0,9 0,0 4,7 2,4 6,5 3,3 10,5 3,4 2,5 0,8 6,0 1,5 3,5 \
        3,6 7,7 4,0 4,2 8,9 10,3 9,1 0,7 9,3 5,4 10,1 2,2 3,9 7,2 0,4 6,3 6,1";

    #[test]
    fn bank_to_core_matches_the_real_library() {
        assert_eq!(Geometry::wormhole_b0().l1_bank_cores, cores(WH_N150));
        assert_eq!(Geometry::mock(Arch::WormholeB0, 8).unwrap().l1_bank_cores, cores(WH_T3K));
        assert_eq!(Geometry::blackhole().l1_bank_cores, cores(BH_P150));
    }

    #[test]
    fn minstd_rand0_matches_the_standard() {
        // [rand.predef]: the 10000th consecutive invocation of a default-constructed minstd_rand0
        // (seed 1, the same state seed 0 gives) produces 1043618065.
        let mut g = MinstdRand0::new(0);
        let mut last = 0;
        for _ in 0..10_000 {
            last = g.next();
        }
        assert_eq!(last, 1_043_618_065);
    }

    #[test]
    fn every_bank_has_a_distinct_core() {
        for (arch, chips) in [(Arch::WormholeB0, 32), (Arch::Blackhole, 8)] {
            let g = Geometry::mock(arch, chips).unwrap();
            let mut seen = g.l1_bank_cores.clone();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), g.l1_bank_cores.len());
            assert_eq!(seen.len() as u16, g.worker_grid.x * g.worker_grid.y);
        }
    }

    #[test]
    fn unknown_meshes_are_refused() {
        let e = Geometry::mock(Arch::WormholeB0, 3).unwrap_err();
        assert!(e.to_string().contains("3-chip wormhole_b0"), "{e}");
        assert!(Geometry::mock(Arch::Blackhole, 16).is_err());
    }

    #[test]
    fn sizes_add_up_to_the_measured_bank_sizes() {
        let wh = Geometry::wormhole_b0();
        assert_eq!(wh.dram_bank_size - wh.dram_unreserved_base, 1_072_693_184);
        assert_eq!(wh.l1_size - wh.l1_unreserved_base, 1_393_312);
        let bh = Geometry::blackhole();
        assert_eq!(bh.dram_bank_size - bh.dram_unreserved_base, 4_277_141_376);
        assert_eq!(bh.l1_size - bh.l1_unreserved_base, 1_461_120);
    }
}
