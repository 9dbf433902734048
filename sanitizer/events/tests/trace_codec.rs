//! The trace file: round trips, cuts at every byte, damage and malformed input, on real traces
//! (`tests/data/`: the simulator's, COBS records; the preload shim's over the real tt-metal
//! library in mock mode, blocks of raw records).

use proptest::prelude::*;
use std::io::Cursor;
use ttsan_events::trace::{
    encode_record, ReadStats, TraceError, TraceReader, TraceWriter, BLOCK_HEADER_LEN, FORMAT_VERSION, HEADER_LEN,
};
use ttsan_events::{BufferAlloc, BufferFree, Event};

/// `ttsan run gpt-oss --mesh 1x1 --mode prefill --modules attention --detect both`.
const SIM: &[u8] = include_bytes!("data/sim-attention.ttsan");
/// `ttsan run -- preload_prog processor 1` (tests/cpp/preload_prog.cpp), ttnn 0.81.1 mock mode.
const SHIM: &[u8] = include_bytes!("data/shim-processor.ttsan");

/// The first 60 events of the simulator's trace: every kind it writes.
fn sample_events() -> Vec<Event> {
    read(SIM).unwrap().0.into_iter().take(60).collect()
}

fn encode(events: &[Event]) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new()).unwrap();
    for e in events {
        w.write(e).unwrap();
    }
    w.into_inner().unwrap()
}

fn read(bytes: &[u8]) -> Result<(Vec<Event>, ttsan_events::trace::ReadStats), TraceError> {
    let mut r = TraceReader::new(Cursor::new(bytes))?;
    let mut out = Vec::new();
    while let Some(e) = r.next_event()? {
        out.push(e);
    }
    Ok((out, r.stats()))
}

#[test]
fn round_trip_keeps_every_event() {
    let events = sample_events();
    let (back, stats) = read(&encode(&events)).unwrap();
    assert_eq!(back, events);
    assert!(!stats.is_damaged());
    assert_eq!(stats.records, events.len() as u64);
}

#[test]
fn a_cut_at_every_byte_recovers_every_complete_record() {
    let events = sample_events();
    let bytes = encode(&events);
    // Record ends: after each zero byte past the header.
    let ends: Vec<usize> = (HEADER_LEN..bytes.len()).filter(|&i| bytes[i] == 0).map(|i| i + 1).collect();
    assert_eq!(ends.len(), events.len());
    for cut in 0..=bytes.len() {
        let prefix = &bytes[..cut];
        match read(prefix) {
            Err(TraceError::Empty) => assert_eq!(cut, 0),
            Err(TraceError::TruncatedHeader { len, .. }) => assert_eq!(len, cut),
            Err(other) => panic!("cut at {cut}: unexpected error {other}"),
            Ok((got, stats)) => {
                assert!(cut >= HEADER_LEN);
                let complete = ends.iter().filter(|&&e| e <= cut).count();
                assert_eq!(got, events[..complete], "cut at {cut}");
                let last_end = ends.iter().copied().filter(|&e| e <= cut).max().unwrap_or(HEADER_LEN);
                assert_eq!(stats.torn_tail_bytes, (cut - last_end) as u64, "cut at {cut}");
                assert_eq!(stats.corrupt + stats.unknown, 0, "cut at {cut}");
            }
        }
    }
}

#[test]
fn a_damaged_record_costs_only_itself() {
    let events = sample_events();
    let mut bytes = encode(&events);
    let ends: Vec<usize> = (HEADER_LEN..bytes.len()).filter(|&i| bytes[i] == 0).map(|i| i + 1).collect();
    // Flip a byte in the middle of record 10 (never turning it into a zero).
    let mid = (ends[9] + ends[10]) / 2;
    bytes[mid] = if bytes[mid] == 0xff { 0xfe } else { bytes[mid] ^ 0x5a | 1 };
    let (got, stats) = read(&bytes).unwrap();
    assert_eq!(stats.corrupt, 1);
    assert_eq!(got.len(), events.len() - 1);
    assert_eq!(got[..10], events[..10]);
    assert_eq!(got[10..], events[11..]);
}

#[test]
fn a_well_framed_record_of_an_unknown_type_is_counted_not_fatal() {
    let mut bytes = encode(&sample_events()[..2]);
    // A postcard enum variant index far past the last variant, with a valid checksum.
    let payload = [200u8, 1, 2, 3];
    let mut framed = payload.to_vec();
    framed.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    let mut enc = vec![0u8; cobs::max_encoding_length(framed.len())];
    let n = cobs::encode(&framed, &mut enc);
    bytes.extend_from_slice(&enc[..n]);
    bytes.push(0);
    let mut tail = Vec::new();
    encode_record(&Event::Mark { text: "after".into() }, &mut Vec::new(), &mut tail);
    bytes.extend_from_slice(&tail);
    let (got, stats) = read(&bytes).unwrap();
    assert_eq!(stats.unknown, 1);
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], Event::Mark { text: "after".into() });
}

#[test]
fn oversized_records_are_skipped_in_bounded_memory() {
    let mut bytes = encode(&sample_events()[..1]);
    bytes.extend(std::iter::repeat_n(0x11u8, 10_000));
    bytes.push(0);
    let mut tail = Vec::new();
    encode_record(&Event::Mark { text: "after".into() }, &mut Vec::new(), &mut tail);
    bytes.extend_from_slice(&tail);
    let mut r = TraceReader::new(Cursor::new(&bytes)).unwrap().with_max_record_len(1024);
    let mut got = Vec::new();
    while let Some(e) = r.next_event().unwrap() {
        got.push(e);
    }
    assert_eq!(r.stats().oversized, 1);
    assert_eq!(got.len(), 2);
}

#[test]
fn header_errors_name_the_problem() {
    assert!(matches!(read(b""), Err(TraceError::Empty)));
    assert!(matches!(read(b"TTSAN"), Err(TraceError::TruncatedHeader { len: 5, .. })));
    assert!(matches!(read(b"ELF\x7f0123456789abcdef"), Err(TraceError::BadMagic { .. })));
    assert!(matches!(read(b"hello"), Err(TraceError::BadMagic { .. })));
    let mut future = encode(&[]);
    future[8] = 9;
    let err = read(&future).unwrap_err();
    assert!(matches!(err, TraceError::UnsupportedVersion { found: 9, supported: FORMAT_VERSION }));
    assert_eq!(
        err.to_string(),
        "unsupported trace format version 9 (this ttsan reads version 2; the trace was written by a newer ttsan)"
    );
}

#[test]
fn a_version_1_trace_is_refused_with_a_reason() {
    // Version 1 allocation and free records had no `stack_id`: decoding them as version 2
    // would misread every field after `stack`, so the whole file is refused up front.
    let mut old = encode(&sample_events()[..3]);
    old[8..10].copy_from_slice(&1u16.to_le_bytes());
    let err = read(&old).unwrap_err();
    assert!(matches!(err, TraceError::UnsupportedVersion { found: 1, supported: 2 }), "{err}");
    assert_eq!(
        err.to_string(),
        "unsupported trace format version 1 (this ttsan reads version 2; the trace was written by an older ttsan: \
         record it again with this one)"
    );
}

fn alloc(id: u64, stack: Option<&str>, stack_id: Option<u64>) -> Event {
    let Some(Event::BufferAlloc(mut b)) = sample_events().into_iter().find(|e| matches!(e, Event::BufferAlloc(_)))
    else {
        panic!("the fixtures hold no allocation")
    };
    b.id = id;
    b.stack = stack.map(Into::into);
    b.stack_id = stack_id;
    Event::BufferAlloc(b)
}

fn free(id: u64, stack_id: Option<u64>) -> Event {
    Event::BufferFree(BufferFree { id, op: None, stack: None, stack_id })
}

fn stack_of(e: &Event) -> (Option<&str>, Option<u64>) {
    match e {
        Event::BufferAlloc(BufferAlloc { stack, stack_id, .. })
        | Event::BufferFree(BufferFree { stack, stack_id, .. }) => (stack.as_deref(), *stack_id),
        other => panic!("not an allocation or free: {other:?}"),
    }
}

#[test]
fn interned_stacks_read_back_as_text() {
    let events = vec![
        Event::StackDef { id: 0, frames: "alloc_site\nmain".into() },
        alloc(10, None, Some(0)),
        alloc(11, None, Some(0)),
        Event::StackDef { id: 1, frames: "free_site\nmain".into() },
        free(10, Some(1)),
        free(11, Some(1)),
        // Inline text (simulator, graph capture) still reads as it was written.
        alloc(12, Some("inline"), None),
        alloc(13, None, None),
    ];
    let (back, stats) = read(&encode(&events)).unwrap();
    assert!(!stats.is_damaged(), "{stats:?}");
    assert_eq!(stats.records, events.len() as u64);
    // Definitions are passed on as they are (`ttsan trace dump` shows them) ...
    assert_eq!(back[0], events[0]);
    assert_eq!(back[3], events[3]);
    // ... and every reference comes back with the text filled in, the id kept.
    let stacks: Vec<_> = [1, 2, 4, 5, 6, 7].iter().map(|&i| stack_of(&back[i])).collect();
    assert_eq!(
        stacks,
        vec![
            (Some("alloc_site\nmain"), Some(0)),
            (Some("alloc_site\nmain"), Some(0)),
            (Some("free_site\nmain"), Some(1)),
            (Some("free_site\nmain"), Some(1)),
            (Some("inline"), None),
            (None, None),
        ]
    );
    // Nothing else about the records changed.
    let mut resolved = events.clone();
    for (i, text) in [(1, "alloc_site\nmain"), (2, "alloc_site\nmain"), (4, "free_site\nmain"), (5, "free_site\nmain")]
    {
        match &mut resolved[i] {
            Event::BufferAlloc(b) => b.stack = Some(text.into()),
            Event::BufferFree(f) => f.stack = Some(text.into()),
            _ => unreachable!(),
        }
    }
    assert_eq!(back, resolved);
}

#[test]
fn a_reference_to_an_undefined_stack_is_a_warning_not_an_error() {
    let mut events = vec![Event::StackDef { id: 0, frames: "defined".into() }, alloc(1, None, Some(0))];
    // Id 7 was never defined (its definition damaged or cut away); id 0 still resolves after it.
    events.push(alloc(2, None, Some(7)));
    events.push(free(2, Some(7)));
    events.push(free(1, Some(0)));
    let (back, stats) = read(&encode(&events)).unwrap();
    assert_eq!(back.len(), events.len(), "the records are kept");
    assert_eq!(stats.unresolved_stacks, 2);
    assert!(stats.is_damaged());
    assert_eq!(
        stacks_of(&back),
        vec![(Some("defined"), Some(0)), (None, Some(7)), (None, Some(7)), (Some("defined"), Some(0))]
    );
    let warnings = stats.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("2 allocation/free record(s) refer to a stack id"), "{warnings:?}");

    // A damaged definition: its references are reported the same way.
    let bytes = encode(&[Event::StackDef { id: 3, frames: "lost".repeat(50) }, alloc(5, None, Some(3))]);
    let mut bytes = bytes;
    let mid = HEADER_LEN + 40;
    bytes[mid] = if bytes[mid] == 0xff { 0xfe } else { bytes[mid] ^ 0x5a | 1 };
    let (back, stats) = read(&bytes).unwrap();
    assert_eq!((stats.corrupt, stats.unresolved_stacks), (1, 1));
    assert_eq!(stacks_of(&back), vec![(None, Some(3))]);
}

fn stacks_of(events: &[Event]) -> Vec<(Option<&str>, Option<u64>)> {
    events.iter().filter(|e| !matches!(e, Event::StackDef { .. })).map(stack_of).collect()
}

/// The bytes `event` took in a COBS trace (its stack text is what the reader filled in from a
/// definition, not what was written).
fn record_len(event: &Event) -> u64 {
    let mut e = event.clone();
    match &mut e {
        Event::BufferAlloc(b) if b.stack_id.is_some() => b.stack = None,
        Event::BufferFree(f) if f.stack_id.is_some() => f.stack = None,
        _ => {}
    }
    let mut out = Vec::new();
    encode_record(&e, &mut Vec::new(), &mut out);
    out.len() as u64
}

/// Every byte of a COBS trace is the header, a record that came back, skipped, or a torn tail.
fn accounts_for_every_byte(file: &[u8], events: &[Event], stats: &ReadStats) -> bool {
    let records: u64 = events.iter().map(record_len).sum();
    stats.bytes == file.len() as u64
        && HEADER_LEN as u64 + records + stats.skipped_bytes + stats.torn_tail_bytes == file.len() as u64
}

/// Record spans `(start, end)` of a COBS trace: each ends after its zero byte.
fn spans(file: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = HEADER_LEN;
    for (i, &b) in file.iter().enumerate().skip(HEADER_LEN) {
        if b == 0 {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    out
}

/// One kind of damage at `at` (a fraction of the file past the header).
#[derive(Debug, Clone)]
enum Damage {
    Flip(f64, u8),
    Drop(f64, usize),
    Duplicate(f64, usize),
    /// A whole record written twice (a producer retrying a write).
    DuplicateRecord(f64),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..1.0f64, 1..=255u8).prop_map(|(a, x)| Damage::Flip(a, x)),
        (0.0..1.0f64, 1..64usize).prop_map(|(a, n)| Damage::Drop(a, n)),
        (0.0..1.0f64, 1..64usize).prop_map(|(a, n)| Damage::Duplicate(a, n)),
        (0.0..1.0f64).prop_map(Damage::DuplicateRecord),
    ]
}

/// The damaged file and the damaged byte range `[from, to)` of the original (`to` exclusive; a
/// duplicated record damages nothing).
fn apply(file: &[u8], d: &Damage) -> (Vec<u8>, usize, usize) {
    let body = file.len() - HEADER_LEN;
    let pos = |a: f64| HEADER_LEN + ((a * body as f64) as usize).min(body - 1);
    let mut out = file.to_vec();
    match *d {
        Damage::Flip(a, x) => {
            let i = pos(a);
            out[i] ^= x;
            (out, i, i + 1)
        }
        Damage::Drop(a, n) => {
            let i = pos(a);
            let n = n.min(file.len() - i);
            out.drain(i..i + n);
            (out, i, i + n)
        }
        Damage::Duplicate(a, n) => {
            let i = pos(a);
            let n = n.min(file.len() - i);
            let copy = file[i..i + n].to_vec();
            out.splice(i + n..i + n, copy);
            (out, i + n, i + n)
        }
        Damage::DuplicateRecord(a) => {
            let s = spans(file);
            let (from, to) = s[((a * s.len() as f64) as usize).min(s.len() - 1)];
            let copy = file[from..to].to_vec();
            out.splice(to..to, copy);
            (out, to, to)
        }
    }
}

/// `sub` occurs in `all` in order (not necessarily contiguous).
fn is_subsequence(sub: &[Event], all: &[Event]) -> bool {
    let mut it = all.iter();
    sub.iter().all(|s| it.any(|a| a == s))
}

fn without_stack_text(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .cloned()
        .map(|mut e| {
            match &mut e {
                Event::BufferAlloc(b) => b.stack = None,
                Event::BufferFree(f) => f.stack = None,
                _ => {}
            }
            e
        })
        .collect()
}

#[test]
fn the_real_traces_read_back_whole() {
    for (name, file) in [("sim", SIM), ("shim", SHIM)] {
        let (events, stats) = read(file).unwrap();
        assert!(!stats.is_damaged(), "{name}: {stats:?}");
        assert_eq!((stats.bytes, stats.skipped_bytes), (file.len() as u64, 0), "{name}");
        assert!(events.len() > 20, "{name}: {} events", events.len());
    }
    assert!(accounts_for_every_byte(SIM, &read(SIM).unwrap().0, &read(SIM).unwrap().1));
    // The shim's trace is blocks (the header's flag, then block magic right after it).
    assert_eq!(&SHIM[HEADER_LEN..HEADER_LEN + 4], b"\0TBK");
    assert!(SHIM.len() > HEADER_LEN + BLOCK_HEADER_LEN);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_and_every_byte_is_skipped_or_torn(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = read(&bytes);
        let mut with_header = encode(&[]);
        with_header.extend_from_slice(&bytes);
        let (events, stats) = read(&with_header).unwrap();
        prop_assert!(accounts_for_every_byte(&with_header, &events, &stats), "{stats:?}");
    }

    /// Flips, drops and duplicates in the simulator's trace: every record whose bytes were not
    /// touched comes back identical and in order, the damage is counted, and header, records,
    /// skipped bytes and torn tail add up to the whole file.
    #[test]
    fn damage_to_a_cobs_trace_costs_only_the_records_it_touches(d in damage()) {
        let (original, _) = read(SIM).unwrap();
        let (file, from, to) = apply(SIM, &d);
        let (events, stats) = read(&file).unwrap();
        prop_assert!(accounts_for_every_byte(&file, &events, &stats), "{d:?}: {stats:?}");
        let spans = spans(SIM);
        prop_assert_eq!(spans.len(), original.len());
        // Records wholly before the damaged range, or after it with the zero that ends the
        // record before them untouched too (a damaged terminator merges the next record into
        // the damaged one), are intact ...
        let intact: Vec<Event> = spans
            .iter()
            .zip(&original)
            .filter(|((s, e), _)| *e <= from || s.saturating_sub(1) >= to.max(from + 1))
            .map(|(_, ev)| ev.clone())
            .collect();
        // ... and come back in order (a stack definition lost to the damage leaves only the
        // stack text of the records that named it missing).
        prop_assert!(
            is_subsequence(&without_stack_text(&intact), &without_stack_text(&events)),
            "{d:?}: {} intact, {} read", intact.len(), events.len()
        );
        // A changed byte is always seen (a checksum or the framing fails); dropping exactly
        // whole records is not damage a reader can see, and the byte count above covers it.
        let lost = original.len() as i64 - events.len() as i64;
        if lost > 0 && matches!(d, Damage::Flip(..)) {
            prop_assert!(stats.is_damaged(), "{d:?}: {lost} lost, {stats:?}");
        }
    }

    /// The same for the shim's blocks: the blocks before the damage come back whole, and
    /// every byte is read; a damaged block is counted.
    #[test]
    fn damage_to_a_block_trace_costs_only_the_blocks_it_touches(d in damage()) {
        let (original, _) = read(SHIM).unwrap();
        let (file, from, _) = apply(SHIM, &d);
        let (events, stats) = read(&file).unwrap();
        prop_assert_eq!(stats.bytes, file.len() as u64);
        // Blocks wholly before the damage: their events are a prefix of what came back.
        let mut before = Vec::new();
        let mut at = HEADER_LEN;
        let mut blocks = 0;
        while at + BLOCK_HEADER_LEN <= SHIM.len() && &SHIM[at..at + 4] == b"\0TBK" {
            let len = u32::from_le_bytes([SHIM[at + 4], SHIM[at + 5], SHIM[at + 6], SHIM[at + 7]]) as usize;
            let count = u32::from_le_bytes([SHIM[at + 8], SHIM[at + 9], SHIM[at + 10], SHIM[at + 11]]) as usize;
            let end = at + BLOCK_HEADER_LEN + len;
            if end <= from {
                before.extend(original[blocks..blocks + count].iter().cloned());
            }
            blocks += count;
            at = end;
        }
        prop_assert_eq!(blocks, original.len(), "the trace is all blocks");
        prop_assert!(events.len() >= before.len());
        prop_assert_eq!(&events[..before.len()], &before[..]);
        if events.len() < original.len() && matches!(d, Damage::Flip(..)) {
            prop_assert!(stats.is_damaged(), "{d:?}: {stats:?}");
        }
    }
}
