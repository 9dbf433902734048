//! Suppressions and baseline files (`ttsan ci`): an error naming the file, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use ttsan_sanitizer::ci::Baseline;
use ttsan_sanitizer::ci::Suppressions;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Suppressions::parse(text, Path::new("fuzz.supp"));
        let _ = Baseline::parse(text, Path::new("fuzz.baseline"));
    }
});
