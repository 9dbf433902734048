//! Where a buffer's pages live: page `i` -> (bank or core, bank-local address).

use std::ops::Range;
use ttsan_events::{page_address, Layout, PageMap, ShardSpec, Space, Unit};

/// The placement of one buffer, identical on every chip of the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Memory space.
    pub space: Space,
    /// Bank-local address (the same in every bank, core and chip).
    pub address: u64,
    /// Bytes per page.
    pub page_size: u64,
    /// Page pitch inside a bank: the page size rounded up to the space's alignment.
    pub stride: u64,
    /// Number of pages.
    pub pages: u64,
    /// Interleaved: the unit of each bank id. Sharded: the unit of each shard.
    pub units: Vec<Unit>,
    /// Pages per shard (`None`: interleaved).
    pub shard_pages: Option<u64>,
}

impl Placement {
    /// Total bytes (`pages * page_size`).
    pub fn size(&self) -> u64 {
        self.pages * self.page_size
    }

    /// The page layout, as the trace describes it.
    pub fn layout(&self) -> Layout {
        match self.shard_pages {
            None => Layout::Interleaved,
            Some(pps) => Layout::Sharded(ShardSpec::height(self.units.clone(), self.pages as u32, pps as u32)),
        }
    }

    /// The unit and address of page `page`.
    pub fn locate(&self, page: u64) -> Option<(Unit, u64)> {
        if page >= self.pages {
            return None;
        }
        let map = match self.shard_pages {
            None => PageMap::Interleaved { banks: self.units.len() as u64 },
            Some(pages_per_shard) => PageMap::HeightSharded { pages_per_shard },
        };
        let (unit, address) = page_address(map, page, self.address, self.stride)?;
        Some((*self.units.get(unit)?, address))
    }

    /// Bytes reserved per unit: what the sanitizer takes to be this buffer's extent on a unit.
    pub fn per_unit(&self) -> u64 {
        match self.shard_pages {
            None => self.pages.div_ceil(self.units.len().max(1) as u64) * self.stride,
            Some(pps) => pps * self.stride,
        }
    }

    /// The last unit holding a page, and the end of this buffer's extent there.
    pub fn last_unit_end(&self) -> Option<(Unit, u64)> {
        let (unit, _) = self.locate(self.pages.checked_sub(1)?)?;
        Some((unit, self.address + self.per_unit()))
    }

    /// The pages with bytes in `range` on `unit`.
    pub fn pages_in(&self, unit: Unit, range: Range<u64>) -> Vec<u64> {
        let end = self.address + self.per_unit();
        let (s, e) = (range.start.max(self.address), range.end.min(end));
        if s >= e || self.stride == 0 {
            return Vec::new();
        }
        let (first, last) = ((s - self.address) / self.stride, (e - 1 - self.address) / self.stride);
        let Some(pos) = self.units.iter().position(|&u| u == unit) else { return Vec::new() };
        let pos = pos as u64;
        let page = |slot: u64| match self.shard_pages {
            None => slot * self.units.len() as u64 + pos,
            Some(pps) => pos * pps + slot,
        };
        (first..=last).map(page).filter(|&p| p < self.pages).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttsan_events::CoreCoord;

    fn banks(n: u32) -> Vec<Unit> {
        (0..n).map(Unit::Bank).collect()
    }

    #[test]
    fn interleaved_pages_go_round_robin() {
        let p = Placement {
            space: Space::Dram,
            address: 1000,
            page_size: 40,
            stride: 64,
            pages: 25,
            units: banks(12),
            shard_pages: None,
        };
        assert_eq!(p.locate(0), Some((Unit::Bank(0), 1000)));
        assert_eq!(p.locate(13), Some((Unit::Bank(1), 1064)));
        assert_eq!(p.locate(24), Some((Unit::Bank(0), 1128)));
        assert_eq!(p.per_unit(), 192);
        assert_eq!(p.last_unit_end(), Some((Unit::Bank(0), 1192)));
        assert_eq!(p.pages_in(Unit::Bank(1), 1050..1070), vec![1, 13]);
        assert_eq!(p.pages_in(Unit::Bank(1), 1128..1192), Vec::<u64>::new());
    }

    #[test]
    fn shards_hold_consecutive_pages() {
        let cores: Vec<Unit> = (0..2).map(|x| Unit::Core(CoreCoord::new(x, 0))).collect();
        let p = Placement {
            space: Space::L1,
            address: 500,
            page_size: 4,
            stride: 16,
            pages: 4,
            units: cores.clone(),
            shard_pages: Some(2),
        };
        assert_eq!(p.locate(3), Some((cores[1], 516)));
        assert_eq!(p.pages_in(cores[1], 0..10_000), vec![2, 3]);
        assert_eq!(p.layout().name(), "HEIGHT_SHARDED");
    }
}
