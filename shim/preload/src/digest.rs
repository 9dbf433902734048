//! Guard digests: per-page hashes of a guarded buffer read back through tt-metal.
//!
//! Mock chips have no memory behind them, so there the digest says `readable: false` and never
//! pretends to be clean. On hardware the whole buffer is read with
//! `tt::tt_metal::detail::ReadFromBuffer` (inside a C++ try/catch) and hashed page by page.

use crate::tt::Api;
use std::ffi::{c_char, c_void};
use ttsan_events::{Digest, GuardDigest};

extern "C" {
    fn ttsan_preload_read_buffer(
        read: unsafe extern "C" fn(*mut c_void, *mut u8),
        buffer: *mut c_void,
        out: *mut u8,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
}

/// Buffers larger than this are not read back (the host copy would be as large); their digest
/// is unreadable rather than silently partial.
const MAX_READ: u64 = 1 << 30;

/// One digest per chip `devices` lists (the same mesh buffer lives on every chip), plus a note
/// when the read failed.
pub(crate) fn take(
    api: &Api,
    buffer: *mut c_void,
    id: u64,
    size: u64,
    page_size: u64,
    devices: &[u32],
    after_op: Option<u64>,
) -> (Vec<GuardDigest>, Option<String>) {
    let unreadable = |note: Option<String>| {
        let d = devices.iter().map(|&device| GuardDigest {
            buffer: id,
            device,
            after_op,
            pages: Vec::new(),
            readable: false,
        });
        (d.collect(), note)
    };
    if crate::tt::is_mock(api) {
        return unreadable(None);
    }
    let Some(read) = api.read_buffer else {
        return unreadable(Some(
            "tt::tt_metal::detail::ReadFromBuffer is not exported: guard digests unreadable".into(),
        ));
    };
    if size > MAX_READ {
        return unreadable(Some(format!("guarded buffer {id} ({size} bytes) is too large to read back")));
    }
    let mut bytes = vec![0u8; size as usize];
    let mut err = [0 as c_char; 256];
    // SAFETY: buffer is a live Buffer; bytes holds size() bytes, what ReadFromBuffer writes.
    let rc = unsafe { ttsan_preload_read_buffer(read, buffer, bytes.as_mut_ptr(), err.as_mut_ptr(), err.len()) };
    if rc != 0 {
        // SAFETY: the C++ side NUL-terminates within err.
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
        return unreadable(Some(format!("reading guarded buffer {id} failed: {msg}")));
    }
    let pages = page_digests(&bytes, page_size);
    // A backing buffer reads back one chip's copy; the report attributes it to the first chip.
    let device = devices.first().copied().unwrap_or(0);
    (vec![GuardDigest { buffer: id, device, after_op, pages, readable: true }], None)
}

/// The first 16 bytes of blake3 over each `page_size` chunk.
pub(crate) fn page_digests(bytes: &[u8], page_size: u64) -> Vec<Digest> {
    let chunk = (page_size.max(1) as usize).min(bytes.len().max(1));
    bytes
        .chunks(chunk)
        .map(|page| {
            let mut d = [0u8; 16];
            d.copy_from_slice(&blake3::hash(page).as_bytes()[..16]);
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_digest_per_page_and_changes_show() {
        let mut bytes = vec![0u8; 4096];
        let a = page_digests(&bytes, 1024);
        assert_eq!(a.len(), 4);
        bytes[2048] = 1;
        let b = page_digests(&bytes, 1024);
        let changed: Vec<usize> = (0..4).filter(|&i| a[i] != b[i]).collect();
        assert_eq!(changed, vec![2]);
    }
}
