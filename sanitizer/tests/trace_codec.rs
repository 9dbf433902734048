//! The trace file: round trips, cuts at every byte, damage and malformed input.

use proptest::prelude::*;
use std::io::Cursor;
use ttsan_events::trace::{encode_record, TraceError, TraceReader, TraceWriter, HEADER_LEN};
use ttsan_events::Event;
use ttsan_sanitizer::fixtures;

fn sample_events() -> Vec<Event> {
    fixtures::all().into_iter().flat_map(|(_, e)| e).take(60).collect()
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
    assert!(matches!(err, TraceError::UnsupportedVersion { found: 9, supported: 1 }));
    assert_eq!(err.to_string(), "unsupported trace format version 9 (this ttsan reads version 1)");
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = read(&bytes);
        let mut with_header = encode(&[]);
        with_header.extend_from_slice(&bytes);
        let (events, stats) = read(&with_header).unwrap();
        // Whatever random bytes decode to, every byte is accounted for as a record or damage.
        prop_assert!(events.len() as u64 == stats.records);
    }
}
