//! The allocator model's free list against a naive one: random allocate/free sequences, bottom
//! up and top down, must give the same addresses as "the lowest-addressed free range that fits
//! (bottom up) or the highest (top down), coalesced on free", never overlap, and account for
//! every byte.

use proptest::prelude::*;
use ttsan_inference::alloc::free_list::FreeList;

/// Free ranges `[start, end)` in address order, relative to the list's offset.
struct Naive {
    free: Vec<(u64, u64)>,
    min: u64,
    align: u64,
}

impl Naive {
    fn new(size: u64, min: u64, align: u64) -> Naive {
        Naive { free: vec![(0, size)], min, align }
    }

    fn allocate(&mut self, size: u64, bottom_up: bool) -> Option<(u64, u64)> {
        let want = size.max(self.min).div_ceil(self.align) * self.align;
        let fits = |&(s, e): &(u64, u64)| e - s >= want;
        let i = if bottom_up { self.free.iter().position(fits)? } else { self.free.iter().rposition(fits)? };
        let (s, e) = self.free[i];
        let taken = if bottom_up { (s, s + want) } else { (e - want, e) };
        let rest: Vec<(u64, u64)> = [(s, taken.0), (taken.1, e)].into_iter().filter(|(a, b)| a < b).collect();
        self.free.splice(i..=i, rest);
        Some(taken)
    }

    fn free(&mut self, (s, e): (u64, u64)) {
        let i = self.free.partition_point(|&(a, _)| a < s);
        self.free.insert(i, (s, e));
        // Coalesce with both neighbours.
        if i + 1 < self.free.len() && self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 = self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 = self.free[i].1;
            self.free.remove(i);
        }
    }

    fn free_bytes(&self) -> u64 {
        self.free.iter().map(|(s, e)| e - s).sum()
    }
}

#[derive(Debug, Clone)]
enum Step {
    Alloc {
        size: u64,
        bottom_up: bool,
    },
    /// Frees the live allocation at this position (modulo how many are live).
    Free(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1u64..200_000, any::<bool>()).prop_map(|(size, bottom_up)| Step::Alloc { size, bottom_up }),
        2 => any::<usize>().prop_map(Step::Free),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_free_list_answers_as_the_naive_model_and_never_overlaps(
        steps in prop::collection::vec(step(), 1..120),
        align in prop::sample::select(vec![16u64, 32, 64, 2048]),
    ) {
        let (size, offset, min) = (1u64 << 20, 4096u64, 64u64);
        let mut list = FreeList::new(size, offset, min, align);
        let mut naive = Naive::new(size, min, align);
        let mut live: Vec<(u64, u64)> = Vec::new();
        for s in &steps {
            match *s {
                Step::Alloc { size: want, bottom_up } => {
                    let got = list.allocate(want, bottom_up, 0).unwrap();
                    let expect = naive.allocate(want, bottom_up);
                    prop_assert_eq!(got, expect.map(|(a, _)| a + offset), "{:?} after {:?}", s, live);
                    if let Some((a, b)) = expect {
                        live.push((a, b));
                    }
                }
                Step::Free(k) if !live.is_empty() => {
                    let (a, b) = live.remove(k % live.len());
                    list.deallocate(a + offset);
                    naive.free((a, b));
                }
                Step::Free(_) => {}
            }
            // No overlap, and the list's taken ranges are exactly the live ones.
            let ranges = list.allocated_ranges();
            prop_assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "{:?}", ranges);
            let mut expect: Vec<(u64, u64)> = live.iter().map(|&(a, b)| (a + offset, b + offset)).collect();
            expect.sort_unstable();
            prop_assert_eq!(&ranges, &expect);
            // Every byte is free or taken.
            let stats = list.statistics();
            prop_assert_eq!(stats.total_allocated + stats.total_free, size);
            prop_assert_eq!(stats.total_free, naive.free_bytes());
            let largest = naive.free.iter().map(|(s, e)| e - s).max().unwrap_or(0);
            prop_assert_eq!(stats.largest_free_block, largest, "free ranges coalesce");
        }
        // Freeing everything leaves one free range of the whole size.
        for (a, b) in live.drain(..) {
            list.deallocate(a + offset);
            naive.free((a, b));
        }
        prop_assert_eq!(&naive.free, &vec![(0, size)]);
        prop_assert_eq!(list.statistics().largest_free_block, size);
        prop_assert_eq!(list.allocate(size, true, 0).unwrap(), Some(offset), "the whole list is one block again");
    }
}
