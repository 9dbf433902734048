//! Host values <-> device pages: tilizing into 32x32 tiles of 16x16 faces, or row-major rows.

use super::dtype::{DType, PageLayout};
use super::host::HostTensor;

/// Tile edge.
pub const TILE: usize = 32;
/// Face edge (a tile is 2x2 faces, stored face by face).
const FACE: usize = 16;

/// How one tensor's values map to pages and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageFormat {
    /// Logical shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Tile or row-major.
    pub layout: PageLayout,
}

impl PageFormat {
    /// The format of a tensor.
    pub fn new(shape: &[usize], dtype: DType, layout: PageLayout) -> Self {
        PageFormat { shape: shape.to_vec(), dtype, layout }
    }

    /// (batch = product of outer dims, rows, cols) of the logical shape.
    fn bhw(&self) -> (usize, usize, usize) {
        let n = self.shape.len();
        let w = self.shape.last().copied().unwrap_or(1);
        let h = if n >= 2 { self.shape[n - 2] } else { 1 };
        let b = if n >= 2 { self.shape[..n - 2].iter().product() } else { 1 };
        (b, h, w)
    }

    /// Bytes per page: a tile of elements, or one row.
    pub fn page_size(&self) -> u64 {
        let e = self.dtype.size() as u64;
        match self.layout {
            PageLayout::Tile => (TILE * TILE) as u64 * e,
            PageLayout::RowMajor => self.bhw().2.max(1) as u64 * e,
        }
    }

    /// Tiles along the last dim (row-major: 1 page per row).
    pub fn pages_per_row(&self) -> u64 {
        match self.layout {
            PageLayout::Tile => self.bhw().2.div_ceil(TILE) as u64,
            PageLayout::RowMajor => 1,
        }
    }

    /// Rows of pages: tile rows over all batches, or all rows.
    pub fn page_rows(&self) -> u64 {
        let (b, h, _) = self.bhw();
        match self.layout {
            PageLayout::Tile => (b * h.div_ceil(TILE)) as u64,
            PageLayout::RowMajor => (b * h) as u64,
        }
    }

    /// Number of pages.
    pub fn num_pages(&self) -> u64 {
        self.page_rows() * self.pages_per_row()
    }

    /// Total bytes.
    pub fn size(&self) -> u64 {
        self.num_pages() * self.page_size()
    }

    /// Runs of elements contiguous both in the host tensor and in a page, in row-major element
    /// order: (first element, page, byte offset in the page, elements in the run).
    fn for_each_run(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (b, h, w) = self.bhw();
        let e = self.dtype.size();
        match self.layout {
            PageLayout::Tile => {
                let (th, tw) = (h.div_ceil(TILE), w.div_ceil(TILE));
                for bi in 0..b {
                    for r in 0..h {
                        let (tr, fr, rr) = (r / TILE, (r % TILE) / FACE, r % FACE);
                        // A face row is 16 elements contiguous both in the host row and in the page.
                        for c0 in (0..w).step_by(FACE) {
                            let (tc, fc) = (c0 / TILE, (c0 % TILE) / FACE);
                            let page = bi * th * tw + tr * tw + tc;
                            let idx = (fr * 2 + fc) * FACE * FACE + rr * FACE;
                            f((bi * h + r) * w + c0, page, idx * e, FACE.min(w - c0));
                        }
                    }
                }
            }
            PageLayout::RowMajor => {
                for row in 0..b * h {
                    f(row * w, row, 0, w);
                }
            }
        }
    }

    /// The pages holding `t`, in page order (padding is zero).
    pub fn encode(&self, t: &HostTensor) -> Vec<u8> {
        let ps = self.page_size() as usize;
        let mut out = vec![0u8; self.num_pages() as usize * ps];
        let (dtype, e) = (self.dtype, self.dtype.size());
        self.for_each_run(|flat, page, off, count| {
            let at = page * ps + off;
            for i in 0..count {
                dtype.encode(t.data.get(flat + i).copied().unwrap_or(0.0), &mut out[at + i * e..]);
            }
        });
        out
    }

    /// The values held by `bytes` (page after page, as [`PageFormat::encode`] gives them).
    pub fn decode(&self, bytes: &[u8]) -> HostTensor {
        let ps = self.page_size() as usize;
        let mut t = HostTensor::zeros(&self.shape);
        let (dtype, e) = (self.dtype, self.dtype.size());
        self.for_each_run(|flat, page, off, count| {
            let at = page * ps + off;
            // Pages missing from a short read leave zeros, element by element.
            let n = count.min(bytes.len().saturating_sub(at) / e);
            for (i, slot) in t.data[flat..flat + n].iter_mut().enumerate() {
                *slot = dtype.decode(&bytes[at + i * e..]);
            }
        });
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_stored_face_by_face() {
        let f = PageFormat::new(&[1, 1, 32, 64], DType::Bf16, PageLayout::Tile);
        assert_eq!((f.num_pages(), f.page_size()), (2, 2048));
        let t = HostTensor::from_fn(&[1, 1, 32, 64], |i| (i % 251) as f32);
        let bytes = f.encode(&t);
        // Element (0, 16) is the first of face 1 of tile 0: index 256.
        let v = DType::Bf16.decode(&bytes[256 * 2..]);
        assert_eq!(v, 16.0);
        // Element (16, 0) starts face 2: index 512.
        assert_eq!(DType::Bf16.decode(&bytes[512 * 2..]), ((16 * 64) % 251) as f32);
        assert_eq!(f.decode(&bytes), t);
    }

    #[test]
    fn padding_and_row_major() {
        let f = PageFormat::new(&[3, 5], DType::F32, PageLayout::Tile);
        assert_eq!(f.num_pages(), 1);
        let t = HostTensor::from_fn(&[3, 5], |i| i as f32);
        assert_eq!(f.decode(&f.encode(&t)), t);
        let r = PageFormat::new(&[2, 3, 5], DType::U32, PageLayout::RowMajor);
        assert_eq!((r.num_pages(), r.page_size()), (6, 20));
        let t = HostTensor::from_fn(&[2, 3, 5], |i| i as f32);
        assert_eq!(r.decode(&r.encode(&t)), t);
    }
}
