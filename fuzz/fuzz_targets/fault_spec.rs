//! The simulator's fault specification syntax (`run gpt-oss --inject`): an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ttsan_inference::sim::parse_faults(text);
    }
});
