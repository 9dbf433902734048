//! Errors of the bindings.

use std::path::PathBuf;
use thiserror::Error;

/// Why the library could not be loaded or driven.
#[derive(Debug, Error)]
pub enum TtError {
    /// No `libtt_metal.so` under the runtime root.
    #[error("tt-metal library not found at {0} (run scripts/fetch-ttnn)")]
    NotFound(PathBuf),
    /// The wheel's metadata names another version than the one these bindings were written for.
    #[error("tt-metal at {root} is ttnn {found}, but these bindings need exactly ttnn {expected}")]
    WrongVersion {
        /// The runtime root.
        root: PathBuf,
        /// Version found in the wheel metadata.
        found: String,
        /// The version the hand-written declarations match.
        expected: &'static str,
    },
    /// The version could not be determined (no dist-info metadata).
    #[error("cannot determine the ttnn version under {0}: no ttnn-*.dist-info/METADATA (run scripts/fetch-ttnn)")]
    UnknownVersion(PathBuf),
    /// dlopen or dlsym failed.
    #[error("cannot load tt-metal: {0}")]
    Load(String),
    /// tt-metal threw while doing something other than allocating.
    #[error("tt-metal failed during {what}: {message}")]
    Call {
        /// The operation.
        what: &'static str,
        /// tt-metal's exception text.
        message: String,
    },
    /// A second mesh was requested, or a different mock configuration, in one process.
    #[error("{0}")]
    Process(String),
    /// Files around the run (temporary directories, the working directory).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An argument the glue refused (a path with a NUL byte, an unknown buffer).
    #[error("invalid argument: {0}")]
    Argument(String),
}

/// An allocation the real allocator refused (out of memory, or any other allocation error).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("allocation failed: {message}")]
pub struct AllocError {
    /// tt-metal's exception text, e.g. `Out of Memory: Not enough space to allocate ...`.
    pub message: String,
}

impl AllocError {
    /// Whether tt-metal called it out of memory (as opposed to, say, a bad page size).
    pub fn is_out_of_memory(&self) -> bool {
        self.message.contains("Out of Memory")
    }

    /// The message on one line, without tt-metal's backtrace.
    pub fn summary(&self) -> String {
        self.message
            .lines()
            .take_while(|l| !l.trim_start().starts_with("backtrace:"))
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "info:")
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_drops_the_backtrace() {
        let e = AllocError {
            message: "TT_FATAL @ allocator.cpp:302: num_cores.has_value()\ninfo:\nL1_SMALL only supports sharded \
                      allocations\nbacktrace:\n --- libtt_metal.so(+0x7d9008)\n"
                .into(),
        };
        assert_eq!(
            e.summary(),
            "TT_FATAL @ allocator.cpp:302: num_cores.has_value() L1_SMALL only supports sharded allocations"
        );
        assert!(!e.is_out_of_memory());
        assert!(AllocError { message: "Out of Memory: Not enough space".into() }.is_out_of_memory());
    }
}
