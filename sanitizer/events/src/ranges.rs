//! Byte-range arithmetic shared by the analyzer and the simulator.

use std::ops::Range;

/// `range` minus the union of `covered`, as sorted disjoint ranges: the bytes of a write (or of
/// a written run) that no allocation in `covered` owns.
pub fn subtract(range: Range<u64>, covered: impl Iterator<Item = Range<u64>>) -> Vec<Range<u64>> {
    let mut cov: Vec<Range<u64>> = covered.filter(|r| r.start < r.end).collect();
    cov.sort_by_key(|r| r.start);
    let mut out = Vec::new();
    let mut cursor = range.start;
    for c in cov {
        if c.end <= cursor {
            continue;
        }
        if c.start >= range.end {
            break;
        }
        if c.start > cursor {
            out.push(cursor..c.start.min(range.end));
        }
        cursor = cursor.max(c.end);
        if cursor >= range.end {
            break;
        }
    }
    if cursor < range.end {
        out.push(cursor..range.end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::subtract;

    #[test]
    fn subtract_handles_gaps_overlaps_and_edges() {
        assert_eq!(subtract(0..10, [2..4, 3..6].into_iter()), vec![0..2, 6..10]);
        assert_eq!(subtract(0..10, std::iter::once(0..10)), Vec::<std::ops::Range<u64>>::new());
        assert_eq!(subtract(5..10, [0..6, 9..20].into_iter()), vec![6..9]);
        assert_eq!(subtract(0..4, std::iter::empty()), vec![0..4]);
        assert_eq!(subtract(10..20, [0..5, 25..30].into_iter()), vec![10..20]);
    }
}
