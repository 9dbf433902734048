//! The trace reader over arbitrary bytes: a whole file, or (when the first byte is odd) a
//! valid header followed by the bytes, so that records and blocks get explored rather than the
//! header check. Reading must never panic, and must account for every byte.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ttsan_events::trace::{Header, TraceReader, FLAG_BLOCKS, FORMAT_VERSION};

fuzz_target!(|data: &[u8]| {
    let mut file = Vec::new();
    if data.first().is_some_and(|b| b & 1 == 1) {
        let flags = if data.first().is_some_and(|b| b & 2 == 2) { FLAG_BLOCKS } else { 0 };
        let _ = Header { version: FORMAT_VERSION, flags }.write_to(&mut file);
        file.extend_from_slice(&data[1..]);
    } else {
        file.extend_from_slice(data);
    }
    let Ok(mut reader) = TraceReader::new(std::io::Cursor::new(&file)) else { return };
    while let Ok(Some(_)) = reader.next_event() {}
    let stats = reader.stats();
    assert!(stats.bytes <= file.len() as u64, "{stats:?} of {} bytes", file.len());
});
