//! Errors that make a trace unreadable as a whole.

use std::io;
use thiserror::Error;

/// Why a trace cannot be read at all. Damage to single records is not an error: it is counted
/// in [`super::ReadStats`] and reported as a warning.
#[derive(Debug, Error)]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("cannot read trace: {0}")]
    Io(#[from] io::Error),
    /// The file has no bytes at all.
    #[error("trace is empty (0 bytes): the producer never wrote a header")]
    Empty,
    /// Fewer bytes than a header.
    #[error("trace header is truncated ({len} of {expected} bytes)")]
    TruncatedHeader {
        /// Bytes present.
        len: usize,
        /// Bytes a header needs.
        expected: usize,
    },
    /// The file does not start with the ttsan magic.
    #[error("not a ttsan trace (bad magic {found:02x?}; expected \"TTSANTRC\")")]
    BadMagic {
        /// The first eight bytes.
        found: [u8; 8],
    },
    /// A format version this build cannot read.
    #[error("unsupported trace format version {found} (this ttsan reads version {supported}{})", written_by(*found, *supported))]
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// A header length field that cannot be right.
    #[error("corrupt trace header (header length {0})")]
    BadHeaderLength(u16),
}

/// Which side has to change, for the one-line reason.
fn written_by(found: u16, supported: u16) -> &'static str {
    if found < supported {
        "; the trace was written by an older ttsan: record it again with this one"
    } else {
        "; the trace was written by a newer ttsan"
    }
}
