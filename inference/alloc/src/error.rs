//! Why the allocator model refused a request.

use thiserror::Error;
use ttsan_events::{Space, UnknownMesh};

/// A refused allocation. The messages are tt-metal's own where tt-metal has one, so that a
/// report built on the model reads like the real failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AllocError {
    /// The bank manager found no room (or the room it found lies below the interleaved L1
    /// address limit). Carries tt-metal's message text.
    #[error("{0}")]
    OutOfMemory(String),
    /// `Buffer` refuses sizes that are not a whole number of pages.
    #[error("buffer size {size} B is not a multiple of its page size {page_size} B (tt-metal: size % page_size == 0)")]
    PartialPage {
        /// Requested size.
        size: u64,
        /// Requested page size.
        page_size: u64,
    },
    /// A page size of zero.
    #[error("page size must be positive")]
    ZeroPageSize,
    /// An interleaved request for a space that only takes sharded buffers.
    #[error("{space} only supports sharded allocations, see validate_num_banks")]
    ShardedOnly {
        /// The space.
        space: Space,
    },
    /// More shards than compute cores.
    #[error("Expected number of shards {shards} to be less than or equal to total number of L1 banks {cores} in compute cores")]
    TooManyShards {
        /// Shards asked for.
        shards: u32,
        /// Compute cores available.
        cores: u32,
    },
    /// The space has no banks configured (tt-metal would divide by zero).
    #[error("{space} has no banks in this configuration")]
    NoBanks {
        /// The space.
        space: Space,
    },
    /// No measured geometry for the mesh asked for.
    #[error(transparent)]
    UnknownMesh(#[from] UnknownMesh),
}
