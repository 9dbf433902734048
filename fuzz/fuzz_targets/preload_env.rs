//! The preload shim's environment configuration (guard selection and digest sampling): an
//! error, never a panic. The input is split on NUL into the variables' values.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ttsan_preload_protocol::{DigestSampling, GuardSelection};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.split('\0').map(|p| (!p.is_empty()).then_some(p));
    let mut next = || parts.next().flatten();
    let (min, types, stack, pre, every, ops) = (next(), next(), next(), next(), next(), next());
    let _ = GuardSelection::parse(min, types, stack, pre);
    let _ = DigestSampling::parse(every, ops);
});
