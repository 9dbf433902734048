//! Reading traces in bounded memory, tolerating damage.

use super::header::Header;
use super::TraceError;
use crate::event::Event;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Longest record the reader accepts (encoded). Anything longer is damage, not data: the
/// largest legitimate record (a digest of a huge guarded buffer) stays far below this.
pub const MAX_RECORD_LEN: usize = 64 << 20;

/// What the reader saw besides the good records. Non-zero counts are warnings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Records decoded.
    pub records: u64,
    /// Records whose checksum failed or whose framing was broken (skipped).
    pub corrupt: u64,
    /// Records with a good checksum this build cannot decode (a newer producer's event types).
    pub unknown: u64,
    /// Records longer than [`MAX_RECORD_LEN`] (skipped).
    pub oversized: u64,
    /// Bytes after the last complete record (a producer cut off mid-record).
    pub torn_tail_bytes: u64,
    /// Allocation or free records whose `stack_id` no earlier [`Event::StackDef`] defined
    /// (the definition was damaged); they are kept, without a stack.
    pub unresolved_stacks: u64,
    /// Bytes read in total, header included.
    pub bytes: u64,
}

impl ReadStats {
    /// Whether anything at all was wrong with the records.
    pub fn is_damaged(&self) -> bool {
        self.corrupt + self.unknown + self.oversized + self.torn_tail_bytes + self.unresolved_stacks > 0
    }

    /// One line per kind of damage, for warnings.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.torn_tail_bytes > 0 {
            out.push(format!(
                "trace ends in a torn record ({} bytes after the last complete record): the producer stopped mid-write",
                self.torn_tail_bytes
            ));
        }
        if self.corrupt > 0 {
            out.push(format!("{} corrupt record(s) skipped (checksum or framing)", self.corrupt));
        }
        if self.unknown > 0 {
            out.push(format!(
                "{} record(s) of an unknown event type skipped (written by a newer ttsan?)",
                self.unknown
            ));
        }
        if self.oversized > 0 {
            out.push(format!("{} oversized record(s) skipped", self.oversized));
        }
        if self.unresolved_stacks > 0 {
            out.push(format!(
                "{} allocation/free record(s) refer to a stack id no earlier stack_def defines (kept without a stack)",
                self.unresolved_stacks
            ));
        }
        out
    }
}

/// Streams events out of a trace.
///
/// Memory stays bounded by the longest record plus the interned stacks. Damaged records are
/// skipped and counted; only an unreadable header or an I/O error stops the reader. Records
/// are COBS-decoded in place in the reader's own buffer, so each byte is copied once, from the
/// file.
///
/// Stacks are resolved on the way out: the reader keeps the text of every [`Event::StackDef`]
/// (which it also yields) and fills `stack` of every allocation and free record that refers to
/// one by `stack_id`, so consumers read `stack` whichever way the producer wrote it. Memory for
/// this grows with the number of distinct stacks, not with the number of records.
pub struct TraceReader<R: Read> {
    input: R,
    header: Header,
    buf: Vec<u8>,
    start: usize,
    scanned: usize,
    end: usize,
    eof: bool,
    skipping: u64,
    stats: ReadStats,
    done: bool,
    max_record: usize,
    stacks: HashMap<u64, String>,
}

/// Initial read buffer; it grows only for records longer than this.
const READ_CHUNK: usize = 1 << 16;

impl TraceReader<File> {
    /// Opens a trace file and validates its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        TraceReader::new(File::open(path)?)
    }
}

impl<R: Read> TraceReader<R> {
    /// Reads and validates the header from `input`.
    pub fn new(mut input: R) -> Result<Self, TraceError> {
        let header = Header::read_from(&mut input)?;
        Ok(TraceReader {
            input,
            header,
            buf: vec![0; READ_CHUNK],
            start: 0,
            scanned: 0,
            end: 0,
            eof: false,
            skipping: 0,
            stats: ReadStats { bytes: super::HEADER_LEN as u64, ..ReadStats::default() },
            done: false,
            max_record: MAX_RECORD_LEN,
            stacks: HashMap::new(),
        })
    }

    /// Lowers (or raises) the longest record accepted; longer ones are skipped as damage.
    pub fn with_max_record_len(mut self, max: usize) -> Self {
        self.max_record = max;
        self
    }

    /// The header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// Counts so far (complete once [`TraceReader::next_event`] returned `Ok(None)`).
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// The next good event, `Ok(None)` at the end of the trace.
    pub fn next_event(&mut self) -> io::Result<Option<Event>> {
        while !self.done {
            let Some(frame) = self.next_frame()? else {
                self.done = true;
                break;
            };
            let Some((at, n)) = frame else { continue };
            if let Some(event) = self.decode_frame(at, n) {
                self.stats.records += 1;
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// Calls `f` on every remaining good event, in order. Faster than iterating with
    /// [`TraceReader::next_event`]: events are handed over by reference, never moved.
    pub fn for_each_event(&mut self, mut f: impl FnMut(&Event)) -> io::Result<()> {
        while !self.done {
            let Some(frame) = self.next_frame()? else {
                self.done = true;
                break;
            };
            let Some((at, n)) = frame else { continue };
            let Some(payload) = self.checked_payload(at, n) else { continue };
            // Decoded and handed over in this frame, not returned through `decode_frame`: an
            // `Event` is a few hundred bytes, and every move of it is a memcpy per record.
            match postcard::from_bytes::<Event>(&self.buf[payload]) {
                Ok(mut event) => {
                    self.resolve(&mut event);
                    self.stats.records += 1;
                    f(&event);
                }
                Err(_) => self.stats.unknown += 1,
            }
        }
        Ok(())
    }

    /// Finds the next record and decodes it in place. `Ok(Some(Some((at, n))))`: `n` decoded
    /// bytes at `buf[at..]`; `Ok(Some(None))`: a record was skipped; `Ok(None)`: end of input.
    fn next_frame(&mut self) -> io::Result<Option<Option<(usize, usize)>>> {
        loop {
            if let Some(i) = memchr::memchr(0, &self.buf[self.scanned..self.end]) {
                let zero = self.scanned + i;
                let frame = self.start..zero;
                self.start = zero + 1;
                self.scanned = self.start;
                self.stats.bytes += (frame.len() + 1) as u64;
                if self.skipping > 0 || frame.len() > self.max_record {
                    self.skipping = 0;
                    self.stats.oversized += 1;
                    return Ok(Some(None));
                }
                if frame.is_empty() {
                    // Two zeros in a row: a writer padded or a byte was hit; nothing was lost.
                    return Ok(Some(None));
                }
                return Ok(Some(match cobs::decode_in_place(&mut self.buf[frame.clone()]) {
                    Ok(n) => Some((frame.start, n)),
                    Err(_) => {
                        self.stats.corrupt += 1;
                        None
                    }
                }));
            }
            self.scanned = self.end;
            let pending = self.end - self.start;
            if pending > self.max_record {
                // Damage, not data: drop what we hold and skip to the next zero.
                self.skipping += pending as u64;
                self.stats.bytes += pending as u64;
                self.start = self.end;
                self.scanned = self.end;
            }
            if self.eof {
                let tail = (self.end - self.start) as u64;
                self.stats.bytes += tail;
                self.stats.torn_tail_bytes += tail + self.skipping;
                self.skipping = 0;
                self.start = self.end;
                return Ok(None);
            }
            self.refill()?;
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).min(self.max_record.saturating_add(READ_CHUNK)).max(self.buf.len() + 1);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn decode_frame(&mut self, at: usize, n: usize) -> Option<Event> {
        let payload = self.checked_payload(at, n)?;
        match postcard::from_bytes::<Event>(&self.buf[payload]) {
            Ok(mut event) => {
                self.resolve(&mut event);
                Some(event)
            }
            Err(_) => {
                self.stats.unknown += 1;
                None
            }
        }
    }

    /// The payload of the decoded record at `buf[at..at + n]` if its CRC holds (counted as
    /// corrupt otherwise).
    fn checked_payload(&mut self, at: usize, n: usize) -> Option<std::ops::Range<usize>> {
        if n < 4 {
            self.stats.corrupt += 1;
            return None;
        }
        let (payload, crc) = self.buf[at..at + n].split_at(n - 4);
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(payload) != crc {
            self.stats.corrupt += 1;
            return None;
        }
        Some(at..at + n - 4)
    }

    /// Remembers a stack definition, or fills in the stack an allocation or free refers to.
    fn resolve(&mut self, event: &mut Event) {
        let (stack, id) = match event {
            Event::StackDef { id, frames } => {
                self.stacks.insert(*id, frames.clone());
                return;
            }
            Event::BufferAlloc(b) => (&mut b.stack, b.stack_id),
            Event::BufferFree(f) => (&mut f.stack, f.stack_id),
            _ => return,
        };
        // Text written inline wins: a producer that sends both means the text.
        let (None, Some(id)) = (&stack, id) else { return };
        match self.stacks.get(&id) {
            Some(text) => *stack = Some(text.clone()),
            None => self.stats.unresolved_stacks += 1,
        }
    }
}

impl<R: Read> Iterator for TraceReader<R> {
    type Item = io::Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// Reads a whole trace into memory (for tests and small traces).
pub fn read_all(path: impl AsRef<Path>) -> Result<(Vec<Event>, ReadStats), TraceError> {
    let mut reader = TraceReader::open(path)?;
    let mut events = Vec::new();
    while let Some(event) = reader.next_event()? {
        events.push(event);
    }
    Ok((events, reader.stats()))
}
