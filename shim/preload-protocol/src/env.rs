//! The environment variables `ttsan run` sets for the shim. The shim reads them once, when it is
//! loaded; the names are the whole contract, so they live here and nowhere else.

/// Where the trace goes. Without it the shim records nothing.
pub const ENV_TRACE: &str = "TTSAN_TRACE";
/// A file every shim instance appends one status line to (see [`crate::StatusLine`]); `ttsan
/// run` reads it to tell "the shim never loaded" from "tt-metal never loaded".
pub const ENV_STATUS: &str = "TTSAN_PRELOAD_STATUS";
/// Frames captured per allocation and free (default 16; 0 disables backtraces).
pub const ENV_STACK_DEPTH: &str = "TTSAN_STACK_DEPTH";
/// The command line recorded in `CaptureStart` (default: this process's own, which also tells
/// the processes of one run apart).
pub const ENV_COMMAND: &str = "TTSAN_COMMAND";
/// Guard buffers of at least this many bytes.
pub const ENV_GUARD_MIN_SIZE: &str = "TTSAN_GUARD_MIN_SIZE";
/// Guard buffers of these types (comma-separated: dram, l1, l1_small, trace).
pub const ENV_GUARD_TYPES: &str = "TTSAN_GUARD_TYPES";
/// Guard buffers whose allocation stack has a frame matching one of these globs (comma-separated).
pub const ENV_GUARD_STACK: &str = "TTSAN_GUARD_STACK";
/// Guard only buffers allocated before the first compute op (`1`; see [`crate::COMPUTE_OP`]).
pub const ENV_GUARD_PRELOADED: &str = "TTSAN_GUARD_PRELOADED";
/// Compare guard digests at every Nth top-level op end only.
pub const ENV_GUARD_EVERY: &str = "TTSAN_GUARD_EVERY";
/// Compare guard digests only after top-level ops whose name matches one of these globs.
pub const ENV_GUARD_OPS: &str = "TTSAN_GUARD_OPS";
