//! The fixed-size trace header.

use super::TraceError;
use std::io::{self, Read, Write};

/// First eight bytes of every trace.
pub const MAGIC: [u8; 8] = *b"TTSANTRC";
/// The format version this build writes and reads. Version 2 added [`crate::Event::StackDef`]
/// and the `stack_id` field of allocation and free records, which changes their encoding, so a
/// version 1 trace cannot be decoded by this build.
pub const FORMAT_VERSION: u16 = 2;
/// Size of the header in bytes (the same in versions 1 and 2).
pub const HEADER_LEN: usize = 16;

/// The decoded trace header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// Flag bits: [`super::FLAG_BLOCKS`] (the file may contain blocks); the others are reserved (0).
    pub flags: u32,
}

impl Header {
    /// The header this build writes.
    pub fn current() -> Self {
        Header { version: FORMAT_VERSION, flags: 0 }
    }

    /// Serialises the header.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..8].copy_from_slice(&MAGIC);
        bytes[8..10].copy_from_slice(&self.version.to_le_bytes());
        bytes[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        bytes[12..16].copy_from_slice(&self.flags.to_le_bytes());
        out.write_all(&bytes)
    }

    /// Reads and validates a header. Later versions may grow the header; their extra bytes are
    /// skipped, but their version is still refused because records may have changed.
    pub fn read_from(input: &mut impl Read) -> Result<Self, TraceError> {
        let mut bytes = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match input.read(&mut bytes[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if got == 0 {
            return Err(TraceError::Empty);
        }
        if got >= 8 && bytes[..8] != MAGIC {
            return Err(TraceError::BadMagic { found: first8(&bytes) });
        }
        if got < HEADER_LEN {
            if !MAGIC.starts_with(&bytes[..got.min(8)]) {
                return Err(TraceError::BadMagic { found: first8(&bytes) });
            }
            return Err(TraceError::TruncatedHeader { len: got, expected: HEADER_LEN });
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        let header_len = u16::from_le_bytes([bytes[10], bytes[11]]);
        if version != FORMAT_VERSION {
            return Err(TraceError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
        }
        if usize::from(header_len) != HEADER_LEN {
            return Err(TraceError::BadHeaderLength(header_len));
        }
        Ok(Header { version, flags: u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) })
    }
}

fn first8(bytes: &[u8; HEADER_LEN]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[..8]);
    out
}
