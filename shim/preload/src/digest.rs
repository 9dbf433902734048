//! Guard digests: per-page hashes of each chip's copy of a guarded buffer, read back after the
//! op has run.
//!
//! Under fast dispatch an op has only been enqueued when it returns to the host, so the reads
//! are ordered after it: the mesh device is synchronised first (`distributed::Synchronize`, which
//! waits for every command queue), then each chip's copy is read through the mesh buffer
//! (`MeshBuffer::get_device_buffer(MeshCoordinate)` and `detail::ReadFromBuffer`), each inside a
//! C++ try/catch. Mock chips have no memory behind them: there every chip's digest is recorded
//! as unreadable, never as clean, after the chip's buffer was resolved the same way.

use crate::tt::Api;
use std::ffi::{c_char, c_void, CStr};
use std::time::Instant;
use ttsan_events::{Digest, GuardDigest};

extern "C" {
    fn ttsan_preload_read_buffer(
        read: unsafe extern "C" fn(*mut c_void, *mut u8),
        buffer: *mut c_void,
        out: *mut u8,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
    fn ttsan_preload_device_buffer(
        coord: unsafe extern "C" fn(*mut c_void, u32, u32),
        get: unsafe extern "C" fn(*const c_void, *const c_void) -> *mut c_void,
        mesh_buffer: *const c_void,
        row: u32,
        col: u32,
        out: *mut *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
    fn ttsan_preload_synchronize(
        sync: unsafe extern "C" fn(*mut c_void, u16, *const c_void, usize),
        mesh_device: *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
}

/// Buffers larger than this are not read back (the host copy would be as large); their digest
/// is unreadable rather than silently partial.
const MAX_READ: u64 = 1 << 30;

/// What the reads of one run cost.
#[derive(Debug, Default)]
pub(crate) struct ReadStats {
    /// Digests attempted (one per chip per guarded buffer per checked boundary).
    pub attempts: u64,
    /// Of which the bytes were read.
    pub read: u64,
    /// Bytes read back.
    pub bytes: u64,
    /// Time spent synchronising and reading.
    pub nanos: u128,
}

impl ReadStats {
    pub(crate) const fn new() -> Self {
        ReadStats { attempts: 0, read: 0, bytes: 0, nanos: 0 }
    }

    /// One line for the trace and the wrapper's output.
    pub(crate) fn describe(&self) -> String {
        format!(
            "guard reads: {} digest(s) attempted, {} read, {} byte(s) read back in {:.1} ms",
            self.attempts,
            self.read,
            self.bytes,
            self.nanos as f64 / 1e6
        )
    }
}

/// The mesh the digests are taken on.
pub(crate) struct Target<'a> {
    /// The `MeshDevice*` to synchronise, once a mesh buffer revealed it.
    pub mesh_device: Option<usize>,
    /// Device ids in row-major mesh order.
    pub devices: &'a [u32],
    /// Rows and columns.
    pub shape: (u32, u32),
}

/// One guarded buffer.
pub(crate) struct Guarded {
    /// The backing `Buffer*`.
    pub backing: *mut c_void,
    /// Its `MeshBuffer*`, when `MeshBuffer::create` was seen returning it.
    pub mesh: Option<usize>,
    pub id: u64,
    pub size: u64,
    pub page_size: u64,
}

fn message(err: &[c_char]) -> String {
    // SAFETY: the C++ side NUL-terminates within err.
    unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned()
}

/// Waits until every command enqueued so far has run, so reads see what the op left. In mock
/// mode nothing runs and nothing is read, so nothing is waited for.
pub(crate) fn synchronize(api: &Api, target: &Target<'_>, stats: &mut ReadStats) -> Result<(), String> {
    if crate::tt::is_mock(api) {
        return Ok(());
    }
    let (Some(sync), Some(mesh)) = (api.synchronize, target.mesh_device) else {
        return Err("the mesh device could not be synchronised before guard reads (distributed::Synchronize \
                    missing or no mesh buffer seen): reads may race the op"
            .into());
    };
    let t = Instant::now();
    let mut err = [0 as c_char; 256];
    // SAFETY: mesh is the live MeshDevice a mesh buffer was created on.
    let rc = unsafe { ttsan_preload_synchronize(sync, mesh as *mut c_void, err.as_mut_ptr(), err.len()) };
    stats.nanos += t.elapsed().as_nanos();
    if rc != 0 {
        return Err(format!("synchronising the mesh before guard reads failed: {}", message(&err)));
    }
    Ok(())
}

/// One digest per chip of the mesh for `buffer`, plus a note per distinct reason a chip could
/// not be read (naming the first chip it held for).
pub(crate) fn take(
    api: &Api,
    target: &Target<'_>,
    buffer: &Guarded,
    after_op: Option<u64>,
    stats: &mut ReadStats,
) -> (Vec<GuardDigest>, Vec<String>) {
    let mut out = Vec::with_capacity(target.devices.len());
    let mut reasons: Vec<(String, u32)> = Vec::new();
    let cols = target.shape.1.max(1);
    let mock = crate::tt::is_mock(api);
    for (i, &device) in target.devices.iter().enumerate() {
        stats.attempts += 1;
        let unreadable = GuardDigest { buffer: buffer.id, device, after_op, pages: Vec::new(), readable: false };
        let (row, col) = (i as u32 / cols, i as u32 % cols);
        let t = Instant::now();
        let result = read_chip(api, buffer, row, col, mock);
        stats.nanos += t.elapsed().as_nanos();
        match result {
            Ok(bytes) => {
                stats.read += 1;
                stats.bytes += bytes.len() as u64;
                out.push(GuardDigest {
                    buffer: buffer.id,
                    device,
                    after_op,
                    pages: page_digests(&bytes, buffer.page_size),
                    readable: true,
                });
            }
            Err(why) => {
                if !reasons.iter().any(|(r, _)| *r == why) {
                    reasons.push((why, device));
                }
                out.push(unreadable);
            }
        }
    }
    let notes = reasons.into_iter().map(|(why, chip)| format!("guarded buffer {} on chip {chip}: {why}", buffer.id));
    (out, notes.collect())
}

/// The bytes of one chip's copy.
fn read_chip(api: &Api, buffer: &Guarded, row: u32, col: u32, mock: bool) -> Result<Vec<u8>, String> {
    // Each chip's copy is its own Buffer of the mesh buffer; without the mesh buffer only the
    // backing buffer can be read, which is one chip's copy, so no other chip can be vouched for.
    let chip = match (buffer.mesh, api.mesh_coordinate, api.device_buffer) {
        (Some(mesh), Some(coord), Some(get)) => {
            let mut out: *mut c_void = std::ptr::null_mut();
            let mut err = [0 as c_char; 256];
            // SAFETY: mesh is a live MeshBuffer (its backing buffer is live); the glue builds
            // a MeshCoordinate with the library's own constructor.
            let rc = unsafe {
                ttsan_preload_device_buffer(
                    coord,
                    get,
                    mesh as *const c_void,
                    row,
                    col,
                    &mut out,
                    err.as_mut_ptr(),
                    err.len(),
                )
            };
            if rc != 0 || out.is_null() {
                return Err(format!(
                    "its buffer on mesh coordinate ({row}, {col}) could not be resolved: {}",
                    message(&err)
                ));
            }
            out
        }
        (None, _, _) if row == 0 && col == 0 => buffer.backing,
        (None, _, _) => {
            return Err("its mesh buffer was not seen being created, so this chip's copy cannot be addressed".into())
        }
        _ => return Err("MeshBuffer::get_device_buffer or MeshCoordinate's constructor is not exported".into()),
    };
    if mock {
        return Err("not possible in mock mode (mock chips have no memory)".into());
    }
    let Some(read) = api.read_buffer else {
        return Err("tt::tt_metal::detail::ReadFromBuffer is not exported".into());
    };
    if buffer.size > MAX_READ {
        return Err(format!("{} bytes is too large to read back", buffer.size));
    }
    let mut bytes = vec![0u8; buffer.size as usize];
    let mut err = [0 as c_char; 256];
    // SAFETY: chip is a live Buffer of `size` bytes; ReadFromBuffer writes exactly that many.
    let rc = unsafe { ttsan_preload_read_buffer(read, chip, bytes.as_mut_ptr(), err.as_mut_ptr(), err.len()) };
    if rc != 0 {
        return Err(format!("the read failed: {}", message(&err)));
    }
    Ok(bytes)
}

/// The page digest ([`ttsan_events::page_digest`]) of each `page_size` chunk.
pub(crate) fn page_digests(bytes: &[u8], page_size: u64) -> Vec<Digest> {
    let chunk = (page_size.max(1) as usize).min(bytes.len().max(1));
    bytes.chunks(chunk).map(ttsan_events::page_digest).collect()
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
