//! How a buffer's pages are laid out over banks or cores.

use crate::device::Unit;
use serde::{Deserialize, Serialize};

/// A buffer's memory layout, as tt-metal's `TensorMemoryLayout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Page `i` lives on bank `i % banks` at `address + (i / banks) * aligned_page_size`.
    Interleaved,
    /// Pages are tiled into shards, one shard per unit, every shard at the same address.
    Sharded(ShardSpec),
}

impl Layout {
    /// The name tt-metal uses for this layout.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::Interleaved => "INTERLEAVED",
            Layout::Sharded(s) => match s.scheme {
                ShardScheme::Height => "HEIGHT_SHARDED",
                ShardScheme::Width => "WIDTH_SHARDED",
                ShardScheme::Block => "BLOCK_SHARDED",
            },
        }
    }
}

/// Which way a sharded tensor is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardScheme {
    /// Whole rows per shard.
    Height,
    /// Whole columns per shard.
    Width,
    /// Rectangular blocks.
    Block,
}

/// The shard geometry of a sharded buffer, in pages.
///
/// The tensor is viewed as a 2-D grid of `tensor_shape[0]` x `tensor_shape[1]` pages, cut into
/// shards of `shard_shape[0]` x `shard_shape[1]` pages. Shards are numbered row by row over the
/// shard grid and shard `s` lives on `units[s]`; the order of `units` therefore already encodes
/// tt-metal's shard orientation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    /// Height, width or block sharding.
    pub scheme: ShardScheme,
    /// The unit that holds each shard, in shard order.
    pub units: Vec<Unit>,
    /// Shard shape in pages (rows, columns).
    pub shard_shape: [u32; 2],
    /// Tensor shape in pages (rows, columns).
    pub tensor_shape: [u32; 2],
}

impl ShardSpec {
    /// A height-sharded spec: `pages` pages cut into runs of `pages_per_shard` over `units`.
    pub fn height(units: Vec<Unit>, pages: u32, pages_per_shard: u32) -> Self {
        ShardSpec { scheme: ShardScheme::Height, units, shard_shape: [pages_per_shard, 1], tensor_shape: [pages, 1] }
    }

    /// Pages in one shard.
    pub fn shard_pages(&self) -> u64 {
        u64::from(self.shard_shape[0]) * u64::from(self.shard_shape[1])
    }

    /// Number of shards along each axis (rows, columns) of the shard grid.
    pub fn shard_grid(&self) -> [u32; 2] {
        [
            self.tensor_shape[0].div_ceil(self.shard_shape[0].max(1)),
            self.tensor_shape[1].div_ceil(self.shard_shape[1].max(1)),
        ]
    }

    /// The (shard index, page slot within the shard) of host page `page`.
    pub fn locate(&self, page: u64) -> Option<(usize, u64)> {
        let cols = u64::from(self.tensor_shape[1].max(1));
        let (r, c) = (page / cols, page % cols);
        if r >= u64::from(self.tensor_shape[0]) {
            return None;
        }
        let (sh, sw) = (u64::from(self.shard_shape[0].max(1)), u64::from(self.shard_shape[1].max(1)));
        let grid_cols = u64::from(self.shard_grid()[1]);
        let shard = (r / sh) * grid_cols + c / sw;
        let slot = (r % sh) * sw + c % sw;
        Some((usize::try_from(shard).ok()?, slot))
    }
}
