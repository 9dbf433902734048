//! Reading traces in bounded memory, tolerating damage.

use super::header::Header;
use super::TraceError;
use crate::event::Event;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
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
    /// Bytes read in total, header included.
    pub bytes: u64,
}

impl ReadStats {
    /// Whether anything at all was wrong with the records.
    pub fn is_damaged(&self) -> bool {
        self.corrupt + self.unknown + self.oversized + self.torn_tail_bytes > 0
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
        out
    }
}

/// Streams events out of a trace.
///
/// Memory stays bounded by the longest record. Damaged records are skipped and counted;
/// only an unreadable header or an I/O error stops the reader.
pub struct TraceReader<R: Read> {
    input: BufReader<R>,
    header: Header,
    frame: Vec<u8>,
    stats: ReadStats,
    done: bool,
    max_record: usize,
}

impl TraceReader<File> {
    /// Opens a trace file and validates its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        TraceReader::new(File::open(path)?)
    }
}

impl<R: Read> TraceReader<R> {
    /// Reads and validates the header from `input`.
    pub fn new(input: R) -> Result<Self, TraceError> {
        let mut input = BufReader::with_capacity(1 << 16, input);
        let header = Header::read_from(&mut input)?;
        Ok(TraceReader {
            input,
            header,
            frame: Vec::with_capacity(256),
            stats: ReadStats { bytes: super::HEADER_LEN as u64, ..ReadStats::default() },
            done: false,
            max_record: MAX_RECORD_LEN,
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
            let Some(complete) = self.next_frame()? else {
                self.done = true;
                break;
            };
            if !complete {
                continue;
            }
            if let Some(event) = self.decode_frame() {
                self.stats.records += 1;
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// Fills `self.frame` with the bytes up to the next zero. `Ok(Some(false))` for an
    /// oversized frame that was skipped, `Ok(None)` at end of input.
    fn next_frame(&mut self) -> io::Result<Option<bool>> {
        self.frame.clear();
        let mut oversized = false;
        loop {
            let available = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                let tail = self.frame.len() as u64;
                if tail > 0 || oversized {
                    self.stats.torn_tail_bytes += tail;
                }
                return Ok(None);
            }
            let (take, found) = match memchr::memchr(0, available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            let body = if found { &available[..take - 1] } else { available };
            if !oversized {
                if self.frame.len() + body.len() > self.max_record {
                    oversized = true;
                    self.frame.clear();
                } else {
                    self.frame.extend_from_slice(body);
                }
            }
            self.input.consume(take);
            self.stats.bytes += take as u64;
            if found {
                if oversized {
                    self.stats.oversized += 1;
                    return Ok(Some(false));
                }
                return Ok(Some(true));
            }
        }
    }

    fn decode_frame(&mut self) -> Option<Event> {
        if self.frame.is_empty() {
            // Two zeros in a row: a writer padded or a byte was damaged. Nothing was lost.
            return None;
        }
        let Ok(n) = cobs::decode_in_place(&mut self.frame) else {
            self.stats.corrupt += 1;
            return None;
        };
        if n < 4 {
            self.stats.corrupt += 1;
            return None;
        }
        let (payload, crc) = self.frame[..n].split_at(n - 4);
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(payload) != crc {
            self.stats.corrupt += 1;
            return None;
        }
        match postcard::from_bytes::<Event>(payload) {
            Ok(event) => Some(event),
            Err(_) => {
                self.stats.unknown += 1;
                None
            }
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
