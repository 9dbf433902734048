//! The C ABI for programs and bindings that mark ops and guards themselves.
//!
//! Look the functions up with `dlsym(RTLD_DEFAULT, "ttsan_op_begin")` so the program also runs
//! without the shim (the lookup then fails and the program skips the calls). Ops nest; an
//! allocation carries the innermost open op. Guarded buffers are digested at the start and end
//! of every top-level op.
//!
//! ```c
//! void ttsan_op_begin(const char* name);
//! void ttsan_op_end(void);
//! int  ttsan_guard(void* buffer, const char* name);      // buffer: tt::tt_metal::Buffer*
//! int  ttsan_guard_address(int buffer_type, uint64_t address, const char* name);
//! int  ttsan_op_writes(void* buffer);                      // the open op writes this buffer
//! int64_t ttsan_next_op(void);                             // index of the next op, -1 if not recording
//! int  ttsan_flush(void);                                  // records so far reach the trace file
//! ```
//!
//! `ttsan_guard_address` is for bindings that only see addresses (a ttnn tensor's
//! `buffer_address()`): `buffer_type` is tt-metal's `BufferType` (DRAM 0, L1 1, L1_SMALL 3,
//! TRACE 4), and a mesh buffer has the same address on every chip.
//!
//! `ttsan_next_op` and `ttsan_flush` let a caller check its own work while it runs (the pytest
//! plugin of the Python package does so after each test): the ops begun between two calls of
//! `ttsan_next_op` are the indices `[first, second)` that findings name as `op_index`, and after
//! `ttsan_flush` the trace file holds every record sent before it, so `ttsan analyze` of the
//! file so far sees them.

use crate::reentry::Entered;
use crate::state;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use ttsan_events::Space;

fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the caller passes a NUL-terminated string (or null).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Runs `f` inside the shim, or returns `fallback` when recording is off, the thread is already
/// inside the shim, or `f` panicked.
fn inside<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    if !state::enabled() {
        return fallback;
    }
    let Some(_entered) = Entered::enter() else { return fallback };
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Starts an op named `name`; allocations until the matching [`ttsan_op_end`] belong to it.
///
/// # Safety
/// `name` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttsan_op_begin(name: *const c_char) {
    let name = text(name);
    inside((), || state::op_begin(&name, state::OpSource::Marked));
}

/// Ends the innermost open op.
#[no_mangle]
pub extern "C" fn ttsan_op_end() {
    inside((), state::op_end);
}

/// Guards `buffer` (a live `tt::tt_metal::Buffer*`, e.g. `mesh_buffer->get_backing_buffer()`),
/// naming it `name` in reports. Returns 0, or -1 when the shim does not know the buffer.
///
/// # Safety
/// `name` is null or a NUL-terminated string; `buffer` is only compared, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn ttsan_guard(buffer: *mut c_void, name: *const c_char) -> c_int {
    let name = text(name);
    if inside(false, || state::guard(buffer, name)) {
        0
    } else {
        -1
    }
}

/// Guards the live buffer of `buffer_type` at `address`, naming it `name`. Returns 0, or -1 when
/// no such buffer is live.
///
/// # Safety
/// `name` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ttsan_guard_address(buffer_type: c_int, address: u64, name: *const c_char) -> c_int {
    let name = text(name);
    let space = match buffer_type {
        crate::tt::buffer_type::DRAM => Space::Dram,
        crate::tt::buffer_type::L1 => Space::L1,
        crate::tt::buffer_type::L1_SMALL => Space::L1Small,
        crate::tt::buffer_type::TRACE => Space::Trace,
        _ => return -1,
    };
    if inside(false, || state::guard_address(space, address, name)) {
        0
    } else {
        -1
    }
}

/// Declares that the innermost open op writes `buffer` (so its guard may change across it).
/// Returns 0, or -1 when no op is open or the buffer is unknown.
///
/// # Safety
/// `buffer` is only compared, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn ttsan_op_writes(buffer: *mut c_void) -> c_int {
    if inside(false, || state::op_writes(buffer)) {
        0
    } else {
        -1
    }
}

/// The index the next op will get, or -1 when the shim is not recording. Ops begun between two
/// calls are the indices in between, on every thread (ops are numbered per process).
#[no_mangle]
pub extern "C" fn ttsan_next_op() -> i64 {
    inside(-1, || i64::try_from(state::next_op_index()).unwrap_or(i64::MAX))
}

/// Hands every record sent so far to the trace file and waits for the writer thread to write
/// them, at most about 2 s. Returns 0, or -1 when the shim is not recording. Records of a
/// process that has not allocated a buffer yet wait for the first one (the trace starts there)
/// and are not written by this call.
#[no_mangle]
pub extern "C" fn ttsan_flush() -> c_int {
    inside(-1, || {
        // The signal handlers' flush waits at most about 0.2 s and returns at once when the writer
        // has caught up, so repeating it costs nothing then and gives a writer starved on a busy
        // machine ten times as long.
        for _ in 0..FLUSH_ROUNDS {
            crate::writer::flush_from_signal(false);
        }
        0
    })
}

/// Rounds of the signal handlers' bounded flush that [`ttsan_flush`] runs.
const FLUSH_ROUNDS: usize = 10;
