//! The trace file: a versioned header followed by self-delimiting, checksummed records.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! header   = "TTSANTRC" version:u16 header_len:u16 flags:u32          (16 bytes)
//! record   = COBS( postcard(Event) ++ crc32(postcard(Event)):u32 ) 0x00
//! ```
//!
//! COBS removes every zero byte from a record so that `0x00` marks record ends. That makes the
//! file append-only and crash-tolerant: a file cut at any byte still yields every complete
//! record, the partial last one is reported as a torn tail, and a record damaged in the middle
//! of the file costs only that record (the reader resynchronises at the next `0x00`).
//!
//! A trace whose header sets [`FLAG_BLOCKS`] may also hold blocks (`0x00 "TBK"` at a record
//! boundary): many records under one checksum, allocations and frees as fixed-size raw
//! records, for producers that cannot afford a COBS record per event (see [`BlockBuilder`]).
//! `docs/trace-format.md` is the full specification.

mod block;
mod error;
mod header;
mod reader;
mod writer;

pub use block::{BlockBuilder, RawAlloc, BLOCK_HEADER_LEN, BLOCK_MAGIC, FLAG_BLOCKS};
pub use error::TraceError;
pub use header::{Header, FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use reader::{read_all, ReadStats, TraceReader, MAX_RECORD_LEN};
pub use writer::{encode_record, TraceWriter};
