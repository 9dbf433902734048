//! Writing traces.

use super::header::Header;
use crate::event::Event;
use std::io::{self, Write};

/// Appends the framed encoding of `event` to `out`, using `scratch` as working space.
///
/// Producers that batch records in their own buffers (the preload shim's per-thread buffers)
/// call this directly and hand whole frames to the writer thread.
pub fn encode_record(event: &Event, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    scratch.clear();
    // Through `Extend`, not `io::Write`: postcard emits most fields a byte at a time, and each
    // byte through `Write` became a memcpy call (a quarter of the preload shim's writer thread).
    // Serialising into a Vec cannot fail for our types: every field is representable.
    match postcard::to_extend(event, std::mem::take(scratch)) {
        Ok(payload) => *scratch = payload,
        Err(_) => scratch.clear(),
    }
    let crc = crc32fast::hash(scratch);
    scratch.extend_from_slice(&crc.to_le_bytes());
    let start = out.len();
    out.resize(start + cobs::max_encoding_length(scratch.len()), 0);
    let n = cobs::encode(scratch, &mut out[start..]);
    out.truncate(start + n);
    out.push(0);
}

/// Writes a trace: the header at creation, then one framed record per event.
///
/// Records are buffered; call [`TraceWriter::flush`] at points where a crash must not lose
/// what came before. Every record is complete on its own, so a crash between flushes loses at
/// most the unflushed tail and never corrupts earlier records.
pub struct TraceWriter<W: Write> {
    out: W,
    scratch: Vec<u8>,
    frame: Vec<u8>,
    records: u64,
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on `out` by writing the header.
    pub fn new(mut out: W) -> io::Result<Self> {
        Header::current().write_to(&mut out)?;
        Ok(TraceWriter { out, scratch: Vec::with_capacity(256), frame: Vec::with_capacity(256), records: 0 })
    }

    /// Appends one event.
    pub fn write(&mut self, event: &Event) -> io::Result<()> {
        self.frame.clear();
        encode_record(event, &mut self.scratch, &mut self.frame);
        self.out.write_all(&self.frame)?;
        self.records += 1;
        Ok(())
    }

    /// Appends frames already encoded with [`encode_record`].
    pub fn write_frames(&mut self, frames: &[u8], records: u64) -> io::Result<()> {
        self.out.write_all(frames)?;
        self.records += records;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Flushes buffered bytes to the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
