//! tt-metal's `FreeListOpt` with the `FIRST` search policy, the algorithm behind every bank
//! manager.
//!
//! The real one keeps its blocks in parallel arrays and a 512-bucket hash table; those are
//! speed tricks that do not change which address comes out, so this one uses plain vectors and
//! a `HashMap`. What does change addresses is reproduced exactly: the size classes (blocks are
//! only looked at from the request's class upward), the per-class lists kept in address order,
//! carving top-down requests from the end of a block, coalescing on free, and the quirks
//! (unknown frees are ignored; a request that lands below the address limit throws *after*
//! the block was taken, so the block stays taken).

use std::collections::HashMap;

/// Size classes start at 1 KiB: class `i` holds blocks of `[1 KiB << i, 1 KiB << (i + 1))`.
const SIZE_CLASS_BASE: u64 = 1024;
/// Blocks of 128 MiB and more share the last class.
const LAST_CLASS_SIZE: u64 = 128 * 1024 * 1024;

/// Usage figures of one free list, as tt-metal's `Statistics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statistics {
    /// Bytes the list manages.
    pub total_allocatable: u64,
    /// Bytes in taken blocks.
    pub total_allocated: u64,
    /// Bytes in free blocks.
    pub total_free: u64,
    /// Size of the largest free block.
    pub largest_free_block: u64,
}

/// A request landed below the address limit (tt-metal's "Cannot allocate at an address
/// below" error). The block is left allocated, as in tt-metal, where the throw comes after
/// the carve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BelowLimit {
    /// The limit.
    pub limit: u64,
    /// Where the block landed.
    pub address: u64,
}

#[derive(Debug, Clone)]
struct Block {
    address: u64,
    size: u64,
    prev: Option<usize>,
    next: Option<usize>,
    allocated: bool,
    /// False once merged away; the slot then waits in `free_slots` for reuse.
    live: bool,
}

/// One free list managing `[offset, offset + size)` of every bank of a bank manager.
#[derive(Debug, Clone)]
pub struct FreeList {
    max_size: u64,
    offset: u64,
    min_allocation_size: u64,
    alignment: u64,
    /// Block metadata, indexed by block id.
    blocks: Vec<Block>,
    free_slots: Vec<usize>,
    /// Free block indices per size class, each list sorted by address.
    classes: Vec<Vec<usize>>,
    /// Relative address of every taken block -> its index.
    allocated: HashMap<u64, usize>,
    lowest_occupied: Option<u64>,
}

/// Number of set-bit positions needed for `n` (0 for 0), as tt-metal's `intlg2`.
fn bit_length(n: u64) -> u64 {
    u64::from(u64::BITS - n.leading_zeros())
}

impl FreeList {
    /// A list of `max_size` bytes whose addresses start at `offset`. Every allocation is at
    /// least `min_allocation_size` and a multiple of `alignment` (which must be positive).
    pub fn new(max_size: u64, offset: u64, min_allocation_size: u64, alignment: u64) -> Self {
        let count = bit_length(max_size / SIZE_CLASS_BASE).clamp(2, bit_length(LAST_CLASS_SIZE / SIZE_CLASS_BASE));
        let mut list = FreeList {
            max_size,
            offset,
            min_allocation_size,
            alignment: alignment.max(1),
            blocks: Vec::new(),
            free_slots: Vec::new(),
            classes: vec![Vec::new(); count as usize],
            allocated: HashMap::new(),
            lowest_occupied: None,
        };
        list.blocks.push(Block { address: 0, size: max_size, prev: None, next: None, allocated: false, live: true });
        let class = list.class_of(max_size);
        list.classes[class].push(0);
        list
    }

    /// Bytes this list manages.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// The first address this list hands out (its offset).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// `size` rounded up to the list's alignment (wrapping like the C++ on absurd sizes).
    pub fn align(&self, size: u64) -> u64 {
        (size.wrapping_add(self.alignment - 1) / self.alignment).wrapping_mul(self.alignment)
    }

    fn class_of(&self, size: u64) -> usize {
        let lg = bit_length(size / SIZE_CLASS_BASE).saturating_sub(1);
        (lg as usize).min(self.classes.len() - 1)
    }

    fn block(&self, i: usize) -> &Block {
        &self.blocks[i]
    }

    fn block_mut(&mut self, i: usize) -> &mut Block {
        &mut self.blocks[i]
    }

    /// Takes `size` bytes, lowest fitting address first when `bottom_up`, highest otherwise.
    ///
    /// `Ok(None)` means no free block is large enough. A result below `address_limit` is an
    /// error, and (as in tt-metal) the block stays taken.
    pub fn allocate(&mut self, size: u64, bottom_up: bool, address_limit: u64) -> Result<Option<u64>, BelowLimit> {
        let alloc_size = self.align(size.max(self.min_allocation_size));
        let Some((class, pos)) = self.find_block(alloc_size, bottom_up) else {
            return Ok(None);
        };
        let target = self.classes[class].remove(pos);
        let offset = if bottom_up { 0 } else { self.block(target).size - alloc_size };
        let taken = self.allocate_in_block(target, alloc_size, offset);
        let start = self.block(taken).address;
        let absolute = start.wrapping_add(self.offset);
        if absolute < address_limit {
            return Err(BelowLimit { limit: address_limit, address: absolute });
        }
        if self.lowest_occupied.is_none_or(|low| start < low) {
            self.lowest_occupied = Some(start);
        }
        Ok(Some(absolute))
    }

    /// The `FIRST` policy exactly as written in tt-metal: each class is scanned in address
    /// order (descending for top-down) and its first fitting block replaces the candidate only
    /// if it lies further in the search direction.
    fn find_block(&self, alloc_size: u64, bottom_up: bool) -> Option<(usize, usize)> {
        let mut found: Option<(usize, usize)> = None;
        let mut best = if bottom_up { u64::MAX } else { 0 };
        for class in self.class_of(alloc_size)..self.classes.len() {
            let list = &self.classes[class];
            let order: Box<dyn Iterator<Item = usize>> =
                if bottom_up { Box::new(0..list.len()) } else { Box::new((0..list.len()).rev()) };
            for pos in order {
                let b = self.block(list[pos]);
                if b.size < alloc_size {
                    continue;
                }
                let better = if bottom_up { b.address < best } else { b.address > best };
                if found.is_none() || better {
                    found = Some((class, pos));
                    best = b.address;
                    break;
                }
            }
        }
        found
    }

    fn new_block(&mut self, block: Block) -> usize {
        match self.free_slots.pop() {
            Some(i) => {
                self.blocks[i] = block;
                i
            }
            None => {
                self.blocks.push(block);
                self.blocks.len() - 1
            }
        }
    }

    fn release_block(&mut self, i: usize) {
        self.blocks[i].live = false;
        self.free_slots.push(i);
    }

    /// Marks `[offset, offset + alloc_size)` of free block `index` taken, returning the
    /// leftovers on either side to the free lists. The caller has already unlisted `index`.
    fn allocate_in_block(&mut self, index: usize, alloc_size: u64, offset: u64) -> usize {
        let (address, size, prev, next) = {
            let b = self.block(index);
            (b.address, b.size, b.prev, b.next)
        };
        if offset > 0 {
            let left =
                self.new_block(Block { address, size: offset, prev, next: Some(index), allocated: false, live: true });
            if let Some(p) = prev {
                self.block_mut(p).next = Some(left);
            }
            let b = self.block_mut(index);
            b.size -= offset;
            b.address += offset;
            b.prev = Some(left);
            self.list_free(left);
        }
        if offset + alloc_size != size {
            let b = self.block(index);
            let right = Block {
                address: b.address + alloc_size,
                size: b.size - alloc_size,
                prev: Some(index),
                next,
                allocated: false,
                live: true,
            };
            let right = self.new_block(right);
            if let Some(n) = next {
                self.block_mut(n).prev = Some(right);
            }
            let b = self.block_mut(index);
            b.size = alloc_size;
            b.next = Some(right);
            self.list_free(right);
        }
        let b = self.block_mut(index);
        b.allocated = true;
        let address = b.address;
        self.allocated.insert(address, index);
        index
    }

    fn list_free(&mut self, index: usize) {
        let (address, size) = {
            let b = self.block(index);
            (b.address, b.size)
        };
        let class = self.class_of(size);
        let pos = self.classes[class].partition_point(|&i| self.block(i).address < address);
        self.classes[class].insert(pos, index);
    }

    fn unlist_free(&mut self, index: usize) {
        let class = self.class_of(self.block(index).size);
        if let Some(pos) = self.classes[class].iter().position(|&i| i == index) {
            self.classes[class].remove(pos);
        }
    }

    /// Frees the block that starts at `address`. Addresses that no block starts at are
    /// ignored, as tt-metal ignores them.
    pub fn deallocate(&mut self, address: u64) {
        let addr = address.wrapping_sub(self.offset);
        let Some(mut index) = self.allocated.remove(&addr) else {
            return;
        };
        self.block_mut(index).allocated = false;
        let (prev, next) = {
            let b = self.block(index);
            (b.prev, b.next)
        };
        if let Some(p) = prev.filter(|&p| !self.block(p).allocated) {
            self.unlist_free(p);
            let size = self.block(index).size;
            let pb = self.block_mut(p);
            pb.size += size;
            pb.next = next;
            if let Some(n) = next {
                self.block_mut(n).prev = Some(p);
            }
            self.release_block(index);
            index = p;
        }
        if let Some(n) = next.filter(|&n| !self.block(n).allocated) {
            self.unlist_free(n);
            let (size, after) = {
                let nb = self.block(n);
                (nb.size, nb.next)
            };
            let b = self.block_mut(index);
            b.size += size;
            b.next = after;
            if let Some(a) = after {
                self.block_mut(a).prev = Some(index);
            }
            self.release_block(n);
        }
        if self.lowest_occupied.is_some_and(|low| addr <= low) {
            self.lowest_occupied = None;
            let mut cur = self.block(index).next;
            while let Some(c) = cur {
                let b = self.block(c);
                if b.allocated {
                    self.lowest_occupied = Some(b.address);
                    break;
                }
                cur = b.next;
            }
        }
        self.list_free(index);
    }

    /// Usage figures. Like tt-metal, an empty list reports its whole size free even when an
    /// earlier split left it in several pieces (they are always coalesced by then anyway).
    pub fn statistics(&self) -> Statistics {
        let (mut allocated, mut free, mut largest) = (0u64, 0u64, 0u64);
        for b in self.blocks.iter().filter(|b| b.live) {
            if b.allocated {
                allocated += b.size;
            } else {
                free += b.size;
                largest = largest.max(b.size);
            }
        }
        if allocated == 0 {
            free = self.max_size;
            largest = self.max_size;
        }
        Statistics {
            total_allocatable: self.max_size,
            total_allocated: allocated,
            total_free: free,
            largest_free_block: largest,
        }
    }

    /// The lowest address of a taken block (absolute), if any.
    pub fn lowest_occupied_address(&self) -> Option<u64> {
        self.lowest_occupied.map(|a| a + self.offset)
    }

    /// Every taken block as an absolute `[start, end)` range, in address order.
    pub fn allocated_ranges(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = self
            .blocks
            .iter()
            .filter(|b| b.live && b.allocated)
            .map(|b| (b.address + self.offset, b.address + b.size + self.offset))
            .collect();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    fn alloc(l: &mut FreeList, size: u64, bottom_up: bool) -> Option<u64> {
        l.allocate(size, bottom_up, 0).unwrap()
    }

    #[test]
    fn bottom_up_packs_from_the_offset_and_top_down_from_the_end() {
        let mut l = FreeList::new(64 * KIB, 4096, 32, 32);
        assert_eq!(alloc(&mut l, 100, true), Some(4096));
        // 100 B rounds up to 128 (alignment 32).
        assert_eq!(alloc(&mut l, 1, true), Some(4096 + 128));
        assert_eq!(alloc(&mut l, 1000, false), Some(4096 + 64 * KIB - 1024));
        assert_eq!(alloc(&mut l, 32, false), Some(4096 + 64 * KIB - 1024 - 32));
    }

    #[test]
    fn freed_space_is_reused_first_fit_by_address() {
        let mut l = FreeList::new(64 * KIB, 0, 32, 32);
        let a = alloc(&mut l, 4 * KIB, true).unwrap();
        let b = alloc(&mut l, 4 * KIB, true).unwrap();
        let _c = alloc(&mut l, 4 * KIB, true).unwrap();
        l.deallocate(a);
        l.deallocate(b);
        // a and b coalesced into one 8 KiB hole at 0, which now takes an 8 KiB request.
        assert_eq!(alloc(&mut l, 8 * KIB, true), Some(0));
        // Nothing below fits 1 KiB any more, so it goes after c.
        assert_eq!(alloc(&mut l, KIB, true), Some(12 * KIB));
    }

    #[test]
    fn freeing_everything_coalesces_back_to_one_block() {
        let mut l = FreeList::new(1024 * KIB, 0, 32, 32);
        let addrs: Vec<u64> = (0..20).map(|i| alloc(&mut l, (i + 1) * 3000, i % 3 == 0).unwrap()).collect();
        // Free the even ones first (leaving islands), then the odd ones.
        for a in addrs.iter().step_by(2).chain(addrs.iter().skip(1).step_by(2)) {
            l.deallocate(*a);
        }
        assert_eq!(l.statistics().total_allocated, 0);
        assert_eq!(l.blocks.iter().filter(|b| b.live).count(), 1);
        assert_eq!(alloc(&mut l, 1024 * KIB, true), Some(0));
    }

    #[test]
    fn unknown_frees_are_ignored() {
        let mut l = FreeList::new(64 * KIB, 0, 32, 32);
        let a = alloc(&mut l, 4 * KIB, true).unwrap();
        l.deallocate(a + 32);
        l.deallocate(123_456_789);
        assert_eq!(l.statistics().total_allocated, 4 * KIB);
        l.deallocate(a);
        l.deallocate(a);
        assert_eq!(l.statistics().total_allocated, 0);
    }

    #[test]
    fn search_starts_at_the_request_size_class() {
        // A 2 KiB hole at the bottom (class 1) and a 3 KiB hole above it (class 1), then a
        // 16 KiB tail (class 4). A 1.5 KiB request starts at class 0 and finds the lowest hole.
        let mut l = FreeList::new(32 * KIB, 0, 32, 32);
        let a = alloc(&mut l, 2 * KIB, true).unwrap();
        let _b = alloc(&mut l, KIB, true).unwrap();
        let c = alloc(&mut l, 3 * KIB, true).unwrap();
        let _d = alloc(&mut l, 10 * KIB, true).unwrap();
        l.deallocate(a);
        l.deallocate(c);
        assert_eq!(alloc(&mut l, 1536, true), Some(0));
        // Top-down picks the highest fitting block: the 16 KiB tail.
        assert_eq!(alloc(&mut l, 1536, false), Some(32 * KIB - 1536));
    }

    #[test]
    fn out_of_space_is_none_and_stats_say_why() {
        let mut l = FreeList::new(10 * KIB, 0, 32, 32);
        assert!(alloc(&mut l, 4 * KIB, true).is_some());
        assert!(alloc(&mut l, 4 * KIB, false).is_some());
        assert_eq!(alloc(&mut l, 4 * KIB, true), None);
        let s = l.statistics();
        assert_eq!(
            s,
            Statistics {
                total_allocatable: 10 * KIB,
                total_allocated: 8 * KIB,
                total_free: 2 * KIB,
                largest_free_block: 2 * KIB
            }
        );
    }

    #[test]
    fn below_the_limit_throws_but_keeps_the_block() {
        let mut l = FreeList::new(8 * KIB, 1000 * KIB, 32, 32);
        let limit = 1000 * KIB + 6 * KIB;
        assert_eq!(l.allocate(KIB, false, limit), Ok(Some(1000 * KIB + 7 * KIB)));
        assert_eq!(l.allocate(2 * KIB, false, limit), Err(BelowLimit { limit, address: 1000 * KIB + 5 * KIB }));
        assert_eq!(l.statistics().total_allocated, 3 * KIB);
    }

    #[test]
    fn lowest_occupied_address_follows_frees() {
        let mut l = FreeList::new(64 * KIB, 100, 32, 32);
        assert_eq!(l.lowest_occupied_address(), None);
        let a = alloc(&mut l, KIB, true).unwrap();
        let b = alloc(&mut l, KIB, true).unwrap();
        assert_eq!(l.lowest_occupied_address(), Some(a));
        l.deallocate(a);
        assert_eq!(l.lowest_occupied_address(), Some(b));
        l.deallocate(b);
        assert_eq!(l.lowest_occupied_address(), None);
    }

    #[test]
    fn class_count_is_clamped() {
        assert_eq!(FreeList::new(0, 0, 32, 32).classes.len(), 2);
        // 1 GiB of DRAM: 2^20 KiB would need 21 classes; tt-metal stops at 128 MiB (18).
        assert_eq!(FreeList::new(1 << 30, 0, 32, 32).classes.len(), 18);
        // 1393312 B of L1 = 1360 KiB: 11 classes, as tt-metal's dump shows.
        assert_eq!(FreeList::new(1_393_312, 0, 32, 32).classes.len(), 11);
    }

    /// Walks the block chain and checks what tt-metal's list relies on: blocks tile the range
    /// in order, no two free blocks touch (they would have been merged), and the size-class
    /// lists hold exactly the free blocks, each list in address order.
    fn check_invariants(l: &FreeList) {
        let head = (0..l.blocks.len()).find(|&i| l.blocks[i].live && l.blocks[i].prev.is_none()).unwrap();
        let (mut cur, mut end, mut prev_free, mut free_blocks) = (Some(head), 0, false, Vec::new());
        while let Some(i) = cur {
            let b = &l.blocks[i];
            assert!(b.live && b.address == end && b.size > 0, "block {i} breaks the chain: {b:?}");
            assert!(!prev_free || b.allocated, "adjacent free blocks at {}", b.address);
            if !b.allocated {
                free_blocks.push(i);
            }
            prev_free = !b.allocated;
            end += b.size;
            cur = b.next;
        }
        assert_eq!(end, l.max_size);
        let mut listed: Vec<usize> = Vec::new();
        for (c, list) in l.classes.iter().enumerate() {
            assert!(list.windows(2).all(|w| l.blocks[w[0]].address < l.blocks[w[1]].address));
            assert!(list.iter().all(|&i| l.class_of(l.blocks[i].size) == c));
            listed.extend(list);
        }
        listed.sort_unstable();
        free_blocks.sort_unstable();
        assert_eq!(listed, free_blocks);
        assert_eq!(l.allocated.len(), l.blocks.iter().filter(|b| b.live && b.allocated).count());
    }

    #[test]
    fn random_use_keeps_the_block_structure_sound() {
        let mut l = FreeList::new(3 * 1024 * KIB + 96, 64, 32, 32);
        let mut live: Vec<u64> = Vec::new();
        let mut x: u64 = 12345;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for step in 0..5000 {
            if !live.is_empty() && rnd(100) < 45 {
                let a = live.swap_remove(rnd(live.len() as u64) as usize);
                l.deallocate(a);
            } else {
                let bits = rnd(19);
                let size = 1 + rnd(1 << bits);
                if let Some(a) = alloc(&mut l, size, rnd(2) == 0) {
                    assert!(a >= 64 && a + size <= 64 + l.max_size, "step {step}: {a} {size}");
                    live.push(a);
                }
            }
            check_invariants(&l);
        }
        let ranges = l.allocated_ranges();
        assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "allocated ranges overlap");
        for a in live.drain(..) {
            l.deallocate(a);
        }
        check_invariants(&l);
        assert_eq!(l.blocks.iter().filter(|b| b.live).count(), 1);
    }
}
