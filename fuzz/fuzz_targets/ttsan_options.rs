//! `TTSAN_OPTIONS` (`key=value` pairs separated by `:`, values quoted or bare): the library
//! parser the command line uses (`EnvOptions::parse` checks the keys on top of it). An error,
//! never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ttsan_sanitizer::options::{parse_bool, parse_pairs, parse_u64};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(pairs) = parse_pairs(text) {
        for (k, v) in pairs {
            let _ = parse_u64(&k, &v);
            let _ = parse_bool(&k, &v);
        }
    }
});
