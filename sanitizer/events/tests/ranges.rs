//! Range subtraction against a byte-by-byte model: `subtract(range, covered)` is exactly the
//! bytes of `range` no covered range holds, as sorted, disjoint, non-empty, non-touching ranges.

use proptest::prelude::*;
use std::collections::BTreeSet;
use std::ops::Range;
use ttsan_events::ranges::subtract;

fn small_range() -> impl Strategy<Value = Range<u64>> {
    (0u64..300, 0u64..80).prop_map(|(s, len)| s..s + len)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn subtraction_is_exactly_the_uncovered_bytes(
        range in small_range(),
        covered in prop::collection::vec((0u64..320, 0u64..60).prop_map(|(s, l)| s..s + l), 0..8),
    ) {
        let got = subtract(range.clone(), covered.clone().into_iter());
        let expect: BTreeSet<u64> = range.clone().filter(|b| !covered.iter().any(|c| c.contains(b))).collect();
        let bytes: BTreeSet<u64> = got.iter().flat_map(|r| r.clone()).collect();
        prop_assert_eq!(&bytes, &expect);
        prop_assert!(got.iter().all(|r| r.start < r.end), "{:?}", got);
        // Sorted and neither overlapping nor touching (touching ranges would be one).
        prop_assert!(got.windows(2).all(|w| w[0].end < w[1].start), "{:?}", got);
        prop_assert!(got.iter().all(|r| r.start >= range.start && r.end <= range.end));
    }
}
