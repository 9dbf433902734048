//! Blocks: many records under one checksum, with fixed-size raw allocation and free records.
//!
//! A COBS record costs its producer a postcard encoding, a CRC and a COBS pass per event; for
//! the preload shim, whose writer thread runs inside the traced program, that was a third of
//! its time per event. A block is framed once for up to a few thousand records: the hot
//! records (allocations and frees) are a tag, a flags byte and LEB128 varints written straight
//! into place, the rest are postcard payloads with a length prefix, and one CRC covers the
//! block. (Fixed-size fields were tried first: twice the bytes, and the kernel's share of the
//! writer thread, copying them into the page cache, grew with them.) The price is
//! granularity: damage inside a block costs the whole block, and a crash mid-block loses that
//! block (the shim writes each block with one write(2), so only a crash inside that call can).
//!
//! Layout (all integers little-endian; `docs/trace-format.md` is the specification):
//!
//! ```text
//! block   = 0x00 "TBK" len:u32 count:u32 crc32:u32 entry*      -- header 16 bytes, then len bytes
//! entry   = 0x01 space:u8 flags:u8 id address size page_size [device] [op] [stack]  -- alloc
//!         | 0x02 flags:u8 id [op] [stack]                                          -- free
//!         | 0x03 len:u32 postcard(Event)
//!   (fields after the flags: unsigned LEB128 varints; bracketed ones present per flag bit)
//! ```
//!
//! `crc32` covers `len`, `count` and the entries. A block starts where a record could start,
//! and only in traces whose header has [`FLAG_BLOCKS`] set: in those, `0x00 "TBK"` at a record
//! boundary is a block, any other `0x00` there is still an empty record.

use crate::device::Space;
use crate::event::{BufferAlloc, BufferFree, Event, Role};
use crate::layout::Layout;
use integer_encoding::VarInt;

/// Header flag: the trace may contain blocks as well as COBS records.
pub const FLAG_BLOCKS: u32 = 1;
/// The first four bytes of every block.
pub const BLOCK_MAGIC: [u8; 4] = [0x00, b'T', b'B', b'K'];
/// Bytes of a block header.
pub const BLOCK_HEADER_LEN: usize = 16;

const TAG_ALLOC: u8 = 1;
const TAG_FREE: u8 = 2;
const TAG_EVENT: u8 = 3;
/// The longest allocation entry: tag, space, flags, seven varints of at most ten bytes.
const ALLOC_MAX: usize = 3 + 7 * 10;
/// The longest free entry: tag, flags, three varints.
const FREE_MAX: usize = 2 + 3 * 10;
const EVENT_HEADER_LEN: usize = 5;

const HAS_DEVICE: u8 = 1;
const HAS_OP: u8 = 2;
const HAS_STACK: u8 = 4;

/// An allocation that fits a raw record: what a [`BufferAlloc`] holds besides an interleaved
/// layout, an empty name, role `other` and no inline stack (which the raw record implies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAlloc {
    /// Unique buffer id.
    pub id: u64,
    /// The chip, or `None` for a mesh buffer.
    pub device: Option<u32>,
    /// Memory space.
    pub space: Space,
    /// Bank-local address.
    pub address: u64,
    /// Bytes over all banks.
    pub size: u64,
    /// Page size.
    pub page_size: u64,
    /// The op during which it was allocated.
    pub op: Option<u64>,
    /// The interned allocation stack.
    pub stack_id: Option<u64>,
}

fn space_code(space: Space) -> u8 {
    match space {
        Space::Dram => 0,
        Space::L1 => 1,
        Space::L1Small => 2,
        Space::Trace => 3,
    }
}

fn space_of(code: u8) -> Option<Space> {
    Some(match code {
        0 => Space::Dram,
        1 => Space::L1,
        2 => Space::L1Small,
        3 => Space::Trace,
        _ => return None,
    })
}

fn flag(present: bool, bit: u8) -> u8 {
    if present {
        bit
    } else {
        0
    }
}

/// Builds blocks: entries are appended in order, [`BlockBuilder::finish_into`] frames them.
///
/// The builder keeps its buffers between blocks, so a producer that reuses one allocates only
/// while its blocks grow.
#[derive(Debug, Default)]
pub struct BlockBuilder {
    payload: Vec<u8>,
    count: u32,
    scratch: Vec<u8>,
}

impl BlockBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        BlockBuilder::default()
    }

    /// Entries appended since the last [`BlockBuilder::finish_into`].
    pub fn entries(&self) -> u32 {
        self.count
    }

    /// Bytes of entries appended since the last [`BlockBuilder::finish_into`].
    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }

    /// Appends an allocation as a raw record.
    pub fn alloc(&mut self, a: &RawAlloc) {
        let flags =
            flag(a.device.is_some(), HAS_DEVICE) | flag(a.op.is_some(), HAS_OP) | flag(a.stack_id.is_some(), HAS_STACK);
        let mut r = self.raw(ALLOC_MAX);
        r.byte(TAG_ALLOC);
        r.byte(space_code(a.space));
        r.byte(flags);
        for v in [a.id, a.address, a.size, a.page_size] {
            r.varint(v);
        }
        for v in [a.device.map(u64::from), a.op, a.stack_id].into_iter().flatten() {
            r.varint(v);
        }
        r.done();
    }

    /// Appends a free (no inline stack) as a raw record.
    pub fn free(&mut self, id: u64, op: Option<u64>, stack_id: Option<u64>) {
        let mut r = self.raw(FREE_MAX);
        r.byte(TAG_FREE);
        r.byte(flag(op.is_some(), HAS_OP) | flag(stack_id.is_some(), HAS_STACK));
        for v in [Some(id), op, stack_id].into_iter().flatten() {
            r.varint(v);
        }
        r.done();
    }

    /// Room for one raw record of at most `max` bytes, written in place at the payload's end.
    ///
    /// Why in place: assembling the record in a zeroed stack array and appending it cost a
    /// memset and a call to memmove per record, the largest part of the shim's writer thread
    /// per event.
    fn raw(&mut self, max: usize) -> RawRecord<'_> {
        RawRecord::new(&mut self.payload, &mut self.count, max)
    }

    /// Appends any event, postcard-encoded (the raw kinds for allocations and frees that fit).
    pub fn event(&mut self, event: &Event) {
        match event {
            Event::BufferAlloc(b)
                if b.layout == Layout::Interleaved
                    && b.name.is_empty()
                    && b.role == Role::Other
                    && b.stack.is_none() =>
            {
                return self.alloc(&RawAlloc {
                    id: b.id,
                    device: b.device,
                    space: b.space,
                    address: b.address,
                    size: b.size,
                    page_size: b.page_size,
                    op: b.op,
                    stack_id: b.stack_id,
                })
            }
            Event::BufferFree(f) if f.stack.is_none() => return self.free(f.id, f.op, f.stack_id),
            _ => {}
        }
        self.scratch.clear();
        // Serialising into a Vec cannot fail for our types: every field is representable.
        match postcard::to_extend(event, std::mem::take(&mut self.scratch)) {
            Ok(bytes) => self.scratch = bytes,
            Err(_) => return,
        }
        let Ok(len) = u32::try_from(self.scratch.len()) else { return };
        self.payload.push(TAG_EVENT);
        self.payload.extend_from_slice(&len.to_le_bytes());
        self.payload.extend_from_slice(&self.scratch);
        self.count += 1;
    }

    /// Appends the framed block to `out` and starts a new one; nothing when it is empty.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        if self.count == 0 {
            return;
        }
        // Blocks stay far below 4 GiB (producers finish them every few thousand records).
        let len = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        let mut sums = [0u8; 8];
        sums[..4].copy_from_slice(&len.to_le_bytes());
        sums[4..].copy_from_slice(&self.count.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&sums);
        crc.update(&self.payload);
        out.extend_from_slice(&BLOCK_MAGIC);
        out.extend_from_slice(&sums);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&self.payload);
        self.payload.clear();
        self.count = 0;
    }
}

/// A raw record being written into the spare capacity of a block's payload
/// ([`BlockBuilder::raw`], which reserved room for the longest one).
struct RawRecord<'a> {
    payload: &'a mut Vec<u8>,
    count: &'a mut u32,
    /// Where the record starts: the payload's end, with `room` bytes reserved after it.
    start: *mut u8,
    room: usize,
    at: usize,
}

impl<'a> RawRecord<'a> {
    fn new(payload: &'a mut Vec<u8>, count: &'a mut u32, room: usize) -> Self {
        payload.reserve(room);
        let start = payload.spare_capacity_mut().as_mut_ptr().cast::<u8>();
        RawRecord { payload, count, start, room, at: 0 }
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) {
        // A bound that holds by construction (`room` is the longest record's length); checked
        // anyway, as it is one compare against a register, and a record longer than its room
        // must panic rather than write past the allocation.
        assert!(self.at < self.room);
        // SAFETY: within the `room` bytes reserved after the payload's end.
        unsafe { self.start.add(self.at).write(b) };
        self.at += 1;
    }

    /// Unsigned LEB128, as `integer_encoding` writes and [`Varints`] reads it.
    #[inline(always)]
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// The record's bytes become part of the payload.
    fn done(self) {
        let len = self.payload.len() + self.at;
        // SAFETY: `byte` initialised the first `at` bytes of the spare capacity, in order.
        unsafe { self.payload.set_len(len) };
        *self.count += 1;
    }
}

/// The payload length announced by the header at `bytes[..BLOCK_HEADER_LEN]`.
pub(crate) fn announced_len(bytes: &[u8]) -> usize {
    u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize
}

/// Whether a whole block (`bytes` = header and exactly its payload) is intact.
pub(crate) fn check(bytes: &[u8]) -> bool {
    let len = announced_len(bytes);
    if bytes.len() != BLOCK_HEADER_LEN + len {
        return false;
    }
    let want = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[4..12]);
    crc.update(&bytes[BLOCK_HEADER_LEN..]);
    crc.finalize() == want
}

/// One entry of a checked block.
pub(crate) enum Entry {
    /// A decoded event.
    Event(Event),
    /// An entry this build cannot decode but can step over (a newer producer's).
    Unknown,
}

/// Varints read in order from a byte slice; `None` once one is cut short or malformed.
struct Varints<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Varints<'_> {
    fn next(&mut self) -> Option<u64> {
        let (v, n) = u64::decode_var(self.bytes.get(self.at..)?)?;
        self.at += n;
        Some(v)
    }

    fn next_if(&mut self, present: bool) -> Option<Option<u64>> {
        if present {
            self.next().map(Some)
        } else {
            Some(None)
        }
    }
}

/// Decodes the entry at the start of `bytes` (the rest of a checked block): the entry and its
/// length, or `None` when it cannot be stepped over (unknown tag, or cut short), which ends
/// the block.
pub(crate) fn decode_entry(bytes: &[u8]) -> Option<(Entry, usize)> {
    let tag = *bytes.first()?;
    match tag {
        TAG_ALLOC => {
            let (code, flags) = (*bytes.get(1)?, *bytes.get(2)?);
            let mut v = Varints { bytes, at: 3 };
            let (id, address, size, page_size) = (v.next()?, v.next()?, v.next()?, v.next()?);
            let device = v.next_if(flags & HAS_DEVICE != 0)?;
            let op = v.next_if(flags & HAS_OP != 0)?;
            let stack_id = v.next_if(flags & HAS_STACK != 0)?;
            let (Some(space), Some(device)) = (space_of(code), device.map(u32::try_from).transpose().ok()) else {
                return Some((Entry::Unknown, v.at));
            };
            let alloc = BufferAlloc {
                id,
                device,
                space,
                address,
                size,
                page_size,
                layout: Layout::Interleaved,
                name: String::new(),
                role: Role::Other,
                op,
                stack: None,
                stack_id,
            };
            Some((Entry::Event(Event::BufferAlloc(alloc)), v.at))
        }
        TAG_FREE => {
            let flags = *bytes.get(1)?;
            let mut v = Varints { bytes, at: 2 };
            let id = v.next()?;
            let op = v.next_if(flags & HAS_OP != 0)?;
            let stack_id = v.next_if(flags & HAS_STACK != 0)?;
            let free = BufferFree { id, op, stack: None, stack_id };
            Some((Entry::Event(Event::BufferFree(free)), v.at))
        }
        TAG_EVENT if bytes.len() >= EVENT_HEADER_LEN => {
            let len = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
            let end = EVENT_HEADER_LEN.checked_add(len).filter(|&e| e <= bytes.len())?;
            match postcard::from_bytes::<Event>(&bytes[EVENT_HEADER_LEN..end]) {
                Ok(event) => Some((Entry::Event(event), end)),
                Err(_) => Some((Entry::Unknown, end)),
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::ReadStats;
    use crate::trace::{encode_record, Header, TraceReader, FORMAT_VERSION, HEADER_LEN};

    fn raw(id: u64, stack_id: Option<u64>) -> RawAlloc {
        RawAlloc {
            id,
            device: (id % 3 == 0).then_some(id as u32),
            space: [Space::Dram, Space::L1, Space::L1Small, Space::Trace][id as usize % 4],
            address: 0x1000 * id,
            size: 4096 + id,
            page_size: 2048,
            op: (id % 2 == 0).then_some(id / 2),
            stack_id,
        }
    }

    fn as_event(a: &RawAlloc, stack: Option<&str>) -> Event {
        Event::BufferAlloc(BufferAlloc {
            id: a.id,
            device: a.device,
            space: a.space,
            address: a.address,
            size: a.size,
            page_size: a.page_size,
            layout: Layout::Interleaved,
            name: String::new(),
            role: Role::Other,
            op: a.op,
            stack: stack.map(str::to_string),
            stack_id: a.stack_id,
        })
    }

    fn header() -> Vec<u8> {
        let mut out = Vec::new();
        let _ = Header { version: FORMAT_VERSION, flags: FLAG_BLOCKS }.write_to(&mut out);
        out
    }

    fn read(bytes: &[u8]) -> (Vec<Event>, ReadStats) {
        let mut r = TraceReader::new(std::io::Cursor::new(bytes)).expect("header");
        let mut out = Vec::new();
        while let Some(e) = r.next_event().expect("in memory") {
            out.push(e);
        }
        (out, r.stats())
    }

    /// A trace of COBS records and blocks, the events it must read back as, and where each
    /// record or block ends.
    fn sample() -> (Vec<u8>, Vec<Event>, Vec<(usize, usize)>) {
        let mut file = header();
        let mut want = Vec::new();
        let mut ends = Vec::new();
        let mark = Event::Mark { text: "cobs record".into() };
        encode_record(&mark, &mut Vec::new(), &mut file);
        want.push(mark);
        ends.push((file.len(), want.len()));
        let mut b = BlockBuilder::new();
        for block in 0..3u64 {
            let def = Event::StackDef { id: block, frames: format!("f{block}\nmain") };
            b.event(&def);
            want.push(def);
            for i in 0..5 {
                let a = raw(block * 10 + i, Some(block));
                b.alloc(&a);
                want.push(as_event(&a, Some(&format!("f{block}\nmain"))));
                b.free(block * 10 + i, (i == 1).then_some(7), (i != 2).then_some(block));
                want.push(Event::BufferFree(BufferFree {
                    id: block * 10 + i,
                    op: (i == 1).then_some(7),
                    stack: (i != 2).then(|| format!("f{block}\nmain")),
                    stack_id: (i != 2).then_some(block),
                }));
            }
            // An allocation that does not fit a raw record travels as postcard.
            let mut named = as_event(&raw(99, None), None);
            if let Event::BufferAlloc(a) = &mut named {
                a.name = "weights".into();
            }
            b.event(&named);
            want.push(named);
            b.finish_into(&mut file);
            ends.push((file.len(), want.len()));
            if block == 1 {
                let mark = Event::Mark { text: "between blocks".into() };
                encode_record(&mark, &mut Vec::new(), &mut file);
                want.push(mark);
                ends.push((file.len(), want.len()));
            }
        }
        (file, want, ends)
    }

    #[test]
    fn blocks_and_records_read_back_in_order() {
        let (file, want, _) = sample();
        let (got, stats) = read(&file);
        assert_eq!(got, want);
        assert!(!stats.is_damaged(), "{stats:?}");
        assert_eq!(stats.records, want.len() as u64);
        assert_eq!(stats.bytes, file.len() as u64);
        // for_each_event sees the same.
        let mut r = TraceReader::new(std::io::Cursor::new(&file)).expect("header");
        let mut seen = Vec::new();
        r.for_each_event(|e| seen.push(e.clone())).expect("in memory");
        assert_eq!(seen, want);
    }

    #[test]
    fn raw_records_take_fewer_bytes_than_their_block_overhead_would_suggest() {
        let mut b = BlockBuilder::new();
        // After tag, space and flags: id 1 (1 byte), address 0x1000 (2), size 4097 (2), page
        // 2048 (2), no device, no op, stack 0 (1): 11 bytes. The free: tag, flags, 1, 0.
        b.alloc(&raw(1, Some(0)));
        b.free(1, None, Some(0));
        assert_eq!((b.entries(), b.payload_len()), (2, 11 + 4));
        let mut out = Vec::new();
        b.finish_into(&mut out);
        assert_eq!(out.len(), BLOCK_HEADER_LEN + 15);
        assert_eq!((b.entries(), b.payload_len()), (0, 0));
        b.finish_into(&mut out);
        assert_eq!(out.len(), BLOCK_HEADER_LEN + 15, "an empty block is not written");
    }

    #[test]
    fn the_widest_raw_records_fit_and_read_back() {
        let widest = RawAlloc {
            id: u64::MAX,
            device: Some(u32::MAX),
            space: Space::Trace,
            address: u64::MAX,
            size: u64::MAX,
            page_size: u64::MAX,
            op: Some(u64::MAX),
            stack_id: Some(u64::MAX),
        };
        let mut b = BlockBuilder::new();
        b.alloc(&widest);
        b.free(u64::MAX, Some(u64::MAX), Some(u64::MAX));
        assert_eq!(b.payload_len(), ALLOC_MAX - 10 + 5 + FREE_MAX, "a u32 device takes five bytes");
        let mut file = header();
        b.finish_into(&mut file);
        let (got, stats) = read(&file);
        // The stack id names no definition (this trace has none): counted, nothing lost.
        assert_eq!((stats.records, stats.corrupt, stats.unknown, stats.unresolved_stacks), (2, 0, 0, 2), "{stats:?}");
        assert_eq!(
            got,
            vec![
                as_event(&widest, None),
                Event::BufferFree(BufferFree {
                    id: u64::MAX,
                    op: Some(u64::MAX),
                    stack: None,
                    stack_id: Some(u64::MAX)
                })
            ]
        );
    }

    #[test]
    fn a_cut_at_every_byte_recovers_every_complete_block_and_record() {
        let (file, want, ends) = sample();
        for cut in HEADER_LEN..=file.len() {
            let (got, stats) = read(&file[..cut]);
            let (last_end, complete) = ends.iter().copied().rfind(|&(e, _)| e <= cut).unwrap_or((HEADER_LEN, 0));
            assert_eq!(got, want[..complete], "cut at {cut}");
            assert_eq!(stats.torn_tail_bytes, (cut - last_end) as u64, "cut at {cut}");
            assert_eq!(stats.corrupt + stats.unknown + stats.unresolved_stacks, 0, "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_block_costs_only_itself() {
        let (mut file, want, ends) = sample();
        // Blocks are ends[1..=2] and ends[4]; damage the second block, in its header and in its
        // entries in turn (never its magic).
        let (start, end) = (ends[1].0, ends[2].0);
        for at in [start + 5, start + 13, (start + end) / 2, end - 1] {
            let keep = file[at];
            file[at] ^= 0x40;
            let (got, stats) = read(&file);
            assert_eq!(stats.corrupt, 1, "byte {at}: {stats:?}");
            assert_eq!(stats.torn_tail_bytes, 0, "byte {at}");
            // The reader resumes at the next block, so the COBS record between the damaged block
            // and the next one is lost with it (a producer that writes blocks writes only
            // blocks); everything else reads back. Stack 1's definition was in the damaged
            // block, and nothing later refers to it.
            let lost = ends[1].1..ends[3].1;
            let expect: Vec<Event> = want[..lost.start].iter().chain(&want[lost.end..]).cloned().collect();
            assert_eq!(got, expect, "byte {at}");
            file[at] = keep;
        }
    }

    #[test]
    fn raw_varints_are_the_leb128_of_integer_encoding() {
        // Traces written before raw records were written in place used integer_encoding; both
        // must give the same bytes.
        let mut values = vec![0, 1, 0x7f, 0x80, 0x3fff, 0x4000, u64::from(u32::MAX), u64::MAX - 1, u64::MAX];
        values.extend((0..64).map(|s| 1u64 << s).chain((1..64).map(|s| (1u64 << s) - 1)));
        for v in values {
            let mut b = BlockBuilder::new();
            b.free(v, Some(v), None);
            let mut want = vec![TAG_FREE, HAS_OP];
            let mut tmp = [0u8; 10];
            for _ in 0..2 {
                let n = v.encode_var(&mut tmp);
                want.extend_from_slice(&tmp[..n]);
            }
            assert_eq!(b.payload, want, "{v:#x}");
        }
    }

    #[test]
    fn unknown_entries_are_counted_and_the_block_ends_at_an_unknown_tag() {
        let mut file = header();
        let mut b = BlockBuilder::new();
        b.free(1, None, None);
        // A raw allocation of a memory space this build does not know: stepped over.
        let space_at = b.payload.len() + 1;
        b.alloc(&raw(2, None));
        b.payload[space_at] = 9;
        b.free(3, None, None);
        // An entry kind from the future: its length is unknown, so the block ends here.
        b.payload.extend_from_slice(&[0x7f, 1, 2, 3]);
        b.count += 1;
        b.free(4, None, None);
        b.finish_into(&mut file);
        b.free(5, None, None);
        b.finish_into(&mut file);
        let (got, stats) = read(&file);
        let ids: Vec<u64> = got
            .iter()
            .map(|e| match e {
                Event::BufferFree(f) => f.id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, [1, 3, 5]);
        assert_eq!((stats.unknown, stats.corrupt), (2, 0), "{stats:?}");
    }

    proptest::proptest! {
        #[test]
        fn damage_anywhere_never_panics_and_keeps_the_blocks_before_it(at in 0usize..1600, with in 1u8..=255, cut in 0usize..1600) {
            let (mut file, want, ends) = sample();
            let at = HEADER_LEN + at % (file.len() - HEADER_LEN);
            file[at] ^= with;
            file.truncate(HEADER_LEN + cut % (file.len() - HEADER_LEN + 1));
            let (got, _) = read(&file);
            // Whatever precedes the damaged byte reads back unchanged.
            let (_, intact) = ends.iter().copied().rfind(|&(e, _)| e <= at.min(file.len())).unwrap_or((HEADER_LEN, 0));
            proptest::prop_assert_eq!(&got[..intact.min(got.len())], &want[..intact.min(got.len())]);
            proptest::prop_assert!(got.len() >= intact);
        }
    }

    #[test]
    fn without_the_flag_a_block_is_not_read() {
        let (mut file, _, _) = sample();
        file[12] = 0;
        let (got, stats) = read(&file);
        assert!(got.iter().all(|e| matches!(e, Event::Mark { .. })), "{got:?}");
        assert!(stats.corrupt > 0, "{stats:?}");
    }
}
