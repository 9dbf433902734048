//! The graph-capture importer over arbitrary text: an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ttsan_graph_capture::import_str(text, &ttsan_graph_capture::ImportOptions::default());
    }
});
