//! Reading traces in bounded memory, tolerating damage.

use super::block::{self, Entry, BLOCK_HEADER_LEN, BLOCK_MAGIC, FLAG_BLOCKS};
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
    /// Bytes that gave no event: corrupt, oversized and unknown records (with their
    /// terminating zero), stray zero bytes, and damaged blocks up to the next block. With the
    /// header, the records' own bytes and `torn_tail_bytes`, they account for the whole file.
    pub skipped_bytes: u64,
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
    /// The header announced blocks ([`FLAG_BLOCKS`]).
    blocks: bool,
    /// The entries of the checked block not handed out yet, as `buf[at..end]`.
    block: Option<(usize, usize)>,
    /// After a damaged block: skipping to the next block magic.
    resync: bool,
    /// Raw bytes (terminator included) of the record `next_frame` returned last, counted as
    /// skipped if it turns out corrupt or unknown.
    frame_bytes: u64,
}

/// What [`TraceReader::at_block`] found at a record boundary.
enum Scan {
    /// No block starts here.
    NotBlock,
    /// A checked block, now in `block`; or a damaged one, skipped.
    Handled,
    /// A block starts here but is not all in the buffer yet.
    NeedMore,
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
            blocks: header.flags & FLAG_BLOCKS != 0,
            block: None,
            resync: false,
            frame_bytes: 0,
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
        while !self.done || self.block.is_some() {
            if let Some(event) = self.next_block_event() {
                self.stats.records += 1;
                return Ok(Some(event));
            }
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
        while !self.done || self.block.is_some() {
            while let Some(event) = self.next_block_event() {
                self.stats.records += 1;
                f(&event);
            }
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
                Err(_) => {
                    self.stats.unknown += 1;
                    self.stats.skipped_bytes += self.frame_bytes;
                }
            }
        }
        Ok(())
    }

    /// Finds the next record and decodes it in place. `Ok(Some(Some((at, n))))`: `n` decoded
    /// bytes at `buf[at..]`; `Ok(Some(None))`: a record was skipped; `Ok(None)`: end of input.
    fn next_frame(&mut self) -> io::Result<Option<Option<(usize, usize)>>> {
        loop {
            if self.resync {
                if self.seek_block() {
                    continue;
                }
                if self.eof {
                    return Ok(None);
                }
                self.refill()?;
                continue;
            }
            if self.blocks && self.scanned == self.start {
                match self.at_block() {
                    Scan::NotBlock => {}
                    Scan::Handled => return Ok(Some(None)),
                    Scan::NeedMore if self.eof => {
                        if memchr::memmem::find(&self.buf[self.start + 1..self.end], &BLOCK_MAGIC).is_some() {
                            // Another block follows, so this one was not cut off by a crash:
                            // its length is damaged.
                            self.damaged_block();
                            continue;
                        }
                        let tail = (self.end - self.start) as u64;
                        self.stats.bytes += tail;
                        self.stats.torn_tail_bytes += tail;
                        self.start = self.end;
                        self.scanned = self.end;
                        return Ok(None);
                    }
                    Scan::NeedMore => {
                        self.refill()?;
                        continue;
                    }
                }
            }
            if let Some(i) = memchr::memchr(0, &self.buf[self.scanned..self.end]) {
                let zero = self.scanned + i;
                let frame = self.start..zero;
                self.start = zero + 1;
                self.scanned = self.start;
                self.stats.bytes += (frame.len() + 1) as u64;
                let raw = (frame.len() + 1) as u64;
                if self.skipping > 0 || frame.len() > self.max_record {
                    self.stats.skipped_bytes += self.skipping + raw;
                    self.skipping = 0;
                    self.stats.oversized += 1;
                    return Ok(Some(None));
                }
                if frame.is_empty() {
                    // Two zeros in a row: a writer padded or a byte was hit; nothing was lost.
                    self.stats.skipped_bytes += 1;
                    return Ok(Some(None));
                }
                return Ok(Some(match cobs::decode_in_place(&mut self.buf[frame.clone()]) {
                    Ok(n) => {
                        self.frame_bytes = raw;
                        Some((frame.start, n))
                    }
                    Err(_) => {
                        self.stats.corrupt += 1;
                        self.stats.skipped_bytes += raw;
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

    /// Whether a block starts at `buf[start..]`, and if it is all there, takes it: checked, its
    /// entries become the current block; damaged, it is counted and skipped.
    fn at_block(&mut self) -> Scan {
        let here = &self.buf[self.start..self.end];
        let prefix = here.len().min(BLOCK_MAGIC.len());
        if prefix == 0 || here[..prefix] != BLOCK_MAGIC[..prefix] {
            return Scan::NotBlock;
        }
        if here.len() < BLOCK_HEADER_LEN {
            return Scan::NeedMore;
        }
        if self.skipping > 0 {
            // An oversized record ended right before this block.
            self.stats.skipped_bytes += self.skipping;
            self.skipping = 0;
            self.stats.oversized += 1;
        }
        let len = block::announced_len(here);
        if len > self.max_record {
            self.damaged_block();
            return Scan::Handled;
        }
        let total = BLOCK_HEADER_LEN + len;
        if here.len() < total {
            return Scan::NeedMore;
        }
        if !block::check(&here[..total]) {
            self.damaged_block();
            return Scan::Handled;
        }
        if len > 0 {
            self.block = Some((self.start + BLOCK_HEADER_LEN, self.start + total));
        }
        self.stats.bytes += total as u64;
        self.start += total;
        self.scanned = self.start;
        Scan::Handled
    }

    /// A block whose checksum or length is wrong: its length cannot be trusted either, so the
    /// reader resumes at the next block magic after its first byte.
    fn damaged_block(&mut self) {
        self.stats.corrupt += 1;
        self.stats.bytes += 1;
        self.stats.skipped_bytes += 1;
        self.start += 1;
        self.scanned = self.start;
        self.resync = true;
    }

    /// While resynchronising: moves to the next block magic in the buffer (true), or drops
    /// what cannot start one (false: read more, or stop at the end of input).
    fn seek_block(&mut self) -> bool {
        let here = &self.buf[self.start..self.end];
        if let Some(k) = memchr::memmem::find(here, &BLOCK_MAGIC) {
            self.stats.bytes += k as u64;
            self.stats.skipped_bytes += k as u64;
            self.start += k;
            self.scanned = self.start;
            self.resync = false;
            return true;
        }
        // The last bytes may be the beginning of a magic that the next read completes.
        let keep = if self.eof { 0 } else { here.len().min(BLOCK_MAGIC.len() - 1) };
        let dropped = here.len() - keep;
        self.stats.bytes += dropped as u64;
        self.stats.skipped_bytes += dropped as u64;
        self.start += dropped;
        self.scanned = self.start;
        false
    }

    /// The next event of the current block, if one is being read. Entries of a kind this build
    /// does not know are counted as `unknown`.
    fn next_block_event(&mut self) -> Option<Event> {
        while let Some((at, end)) = self.block {
            let Some((entry, n)) = block::decode_entry(&self.buf[at..end]) else {
                // An entry of unknown length: the rest of the block cannot be stepped through.
                self.stats.unknown += 1;
                self.block = None;
                break;
            };
            self.block = (at + n < end).then_some((at + n, end));
            match entry {
                Entry::Event(mut event) => {
                    self.resolve(&mut event);
                    return Some(event);
                }
                Entry::Unknown => self.stats.unknown += 1,
            }
        }
        None
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
                self.stats.skipped_bytes += self.frame_bytes;
                None
            }
        }
    }

    /// The payload of the decoded record at `buf[at..at + n]` if its CRC holds (counted as
    /// corrupt otherwise).
    fn checked_payload(&mut self, at: usize, n: usize) -> Option<std::ops::Range<usize>> {
        if n < 4 {
            self.stats.corrupt += 1;
            self.stats.skipped_bytes += self.frame_bytes;
            return None;
        }
        let (payload, crc) = self.buf[at..at + n].split_at(n - 4);
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(payload) != crc {
            self.stats.corrupt += 1;
            self.stats.skipped_bytes += self.frame_bytes;
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
