//! Page to bank: where tt-metal puts page `i` of a buffer (`Buffer::page_address` for
//! interleaved buffers, the shard's core for sharded ones), and the page digest both sides of a
//! trace compare. The simulator places pages with these, the sanitizer locates them with these
//! and the shim digests with them, so the three cannot disagree.

use crate::layout::ShardSpec;
use crate::Digest;

/// How a buffer's pages map onto its units (banks or cores).
#[derive(Debug, Clone, Copy)]
pub enum PageMap<'a> {
    /// Round-robin over `banks` banks.
    Interleaved {
        /// Banks of the space.
        banks: u64,
    },
    /// Runs of `pages_per_shard` consecutive pages, one run per unit.
    HeightSharded {
        /// Pages in one shard.
        pages_per_shard: u64,
    },
    /// Any shard scheme.
    Sharded(&'a ShardSpec),
}

/// The unit index (bank id or shard) of page `page` and its bank-local address, for a buffer at
/// `address` whose pages are `stride` bytes apart inside a unit.
///
/// Interleaved, page `i` is on bank `i % banks` at `address + (i / banks) * stride`; sharded, the
/// page's shard picks the unit and its slot in the shard the offset.
pub fn page_address(map: PageMap<'_>, page: u64, address: u64, stride: u64) -> Option<(usize, u64)> {
    let (unit, slot) = match map {
        PageMap::Interleaved { banks } => {
            let banks = banks.max(1);
            (usize::try_from(page % banks).ok()?, page / banks)
        }
        PageMap::HeightSharded { pages_per_shard } => {
            let pps = pages_per_shard.max(1);
            (usize::try_from(page / pps).ok()?, page % pps)
        }
        PageMap::Sharded(spec) => spec.locate(page)?,
    };
    Some((unit, address + slot * stride))
}

/// The digest of one page's bytes: the first 16 bytes of its BLAKE3 hash.
pub fn page_digest(bytes: &[u8]) -> Digest {
    digest_of(&blake3::hash(bytes))
}

/// A page digest from a BLAKE3 hash computed piecewise (a page read in several runs).
pub fn digest_of(hash: &blake3::Hash) -> Digest {
    let mut d = [0u8; 16];
    d.copy_from_slice(&hash.as_bytes()[..16]);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Unit;

    #[test]
    fn interleaved_pages_go_round_robin_and_shards_hold_runs() {
        let inter = PageMap::Interleaved { banks: 12 };
        assert_eq!(page_address(inter, 0, 0x100, 64), Some((0, 0x100)));
        assert_eq!(page_address(inter, 13, 0x100, 64), Some((1, 0x140)));
        let height = PageMap::HeightSharded { pages_per_shard: 4 };
        assert_eq!(page_address(height, 9, 0x100, 64), Some((2, 0x140)));
        let spec = ShardSpec::height(vec![Unit::Bank(0); 3], 12, 4);
        assert_eq!(page_address(PageMap::Sharded(&spec), 9, 0x100, 64), page_address(height, 9, 0x100, 64));
    }

    #[test]
    fn a_page_digest_is_the_hash_prefix_however_it_was_hashed() {
        let bytes = [7u8; 100];
        let mut h = blake3::Hasher::new();
        h.update(&bytes[..40]);
        h.update(&bytes[40..]);
        assert_eq!(page_digest(&bytes), digest_of(&h.finalize()));
        assert_eq!(page_digest(&bytes)[..], blake3::hash(&bytes).as_bytes()[..16]);
    }
}
