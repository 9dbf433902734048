//! The interposed tt-metal functions.
//!
//! Each one forwards to the real definition (found with `dlsym(RTLD_NEXT)`) with its own
//! arguments. The real call sits outside `catch_unwind` and the functions use the `C-unwind`
//! ABI: tt-metal throws C++ exceptions through them (an out-of-memory allocation is a normal,
//! catchable error in ttnn) and those must reach the caller unchanged. The recording around the
//! call is inside `catch_unwind` and behind the re-entrancy guard.

use crate::reentry::Entered;
use crate::state;
use std::ffi::{c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `tt::tt_metal::BufferImpl::allocate_impl(Buffer&)`.
pub(crate) const ALLOCATE_IMPL: &CStr = c"_ZN2tt8tt_metal10BufferImpl13allocate_implERNS0_6BufferE";
/// `tt::tt_metal::BufferImpl::deallocate_impl(Buffer&)`.
pub(crate) const DEALLOCATE_IMPL: &CStr = c"_ZN2tt8tt_metal10BufferImpl15deallocate_implERNS0_6BufferE";
/// `tt::tt_metal::GraphTracker::hook_write_to_device(const Buffer*)`.
const HOOK_WRITE_BUFFER: &CStr = c"_ZN2tt8tt_metal12GraphTracker20hook_write_to_deviceEPKNS0_6BufferE";
/// `tt::tt_metal::GraphTracker::hook_write_to_device(const distributed::MeshBuffer*)`.
const HOOK_WRITE_MESH_BUFFER: &CStr =
    c"_ZN2tt8tt_metal12GraphTracker20hook_write_to_deviceEPKNS0_11distributed10MeshBufferE";

type ImplFn = unsafe extern "C-unwind" fn(*mut c_void, *mut c_void);
type HookFn = unsafe extern "C-unwind" fn(*mut c_void, *const c_void) -> bool;

/// The real function behind `name`, cached in `slot`. Without it the program cannot go on:
/// nothing would do what it called, so the shim says why and aborts.
fn real(slot: &AtomicUsize, name: &CStr) -> usize {
    let cached = slot.load(Ordering::Acquire);
    if cached != 0 {
        return cached;
    }
    match crate::tt::next(name) {
        Some(p) => {
            slot.store(p as usize, Ordering::Release);
            p as usize
        }
        None => {
            let msg = b"ttsan-preload: the real tt-metal function behind an interposed symbol is missing\n";
            // SAFETY: writing a static message to stderr, then aborting.
            unsafe {
                libc::write(2, msg.as_ptr().cast(), msg.len());
                libc::abort()
            }
        }
    }
}

fn quietly(f: impl FnOnce()) {
    // A panic here must never reach tt-metal; losing one event is the lesser harm.
    let _ = catch_unwind(AssertUnwindSafe(f));
}

static REAL_ALLOCATE: AtomicUsize = AtomicUsize::new(0);
static REAL_DEALLOCATE: AtomicUsize = AtomicUsize::new(0);
static REAL_HOOK_BUFFER: AtomicUsize = AtomicUsize::new(0);
static REAL_HOOK_MESH: AtomicUsize = AtomicUsize::new(0);

/// Interposes `BufferImpl::allocate_impl`: the address is known once the real one returns.
///
/// # Safety
/// Called by tt-metal with its own `this` and `Buffer&`.
#[export_name = "_ZN2tt8tt_metal10BufferImpl13allocate_implERNS0_6BufferE"]
pub unsafe extern "C-unwind" fn allocate_impl(this: *mut c_void, buffer: *mut c_void) {
    // SAFETY: the symbol's real definition has this signature.
    let f: ImplFn = unsafe { std::mem::transmute::<usize, ImplFn>(real(&REAL_ALLOCATE, ALLOCATE_IMPL)) };
    let entered = if state::enabled() { Entered::enter() } else { None };
    // SAFETY: forwarding the caller's arguments unchanged.
    unsafe { f(this, buffer) };
    if entered.is_some() {
        quietly(|| state::on_allocated(buffer));
    }
}

/// Interposes `BufferImpl::deallocate_impl`: recorded before the address is released.
///
/// # Safety
/// Called by tt-metal with its own `this` and `Buffer&`.
#[export_name = "_ZN2tt8tt_metal10BufferImpl15deallocate_implERNS0_6BufferE"]
pub unsafe extern "C-unwind" fn deallocate_impl(this: *mut c_void, buffer: *mut c_void) {
    // SAFETY: as above.
    let f: ImplFn = unsafe { std::mem::transmute::<usize, ImplFn>(real(&REAL_DEALLOCATE, DEALLOCATE_IMPL)) };
    if state::enabled() {
        if let Some(_entered) = Entered::enter() {
            quietly(|| state::on_deallocating(buffer));
        }
    }
    // SAFETY: forwarding the caller's arguments unchanged.
    unsafe { f(this, buffer) }
}

/// Interposes `GraphTracker::hook_write_to_device(const Buffer*)`, which tt-metal calls before
/// every host write of a buffer: a guarded buffer the host rewrites needs a new reference digest.
///
/// # Safety
/// Called by tt-metal with its own `this` and buffer.
#[export_name = "_ZN2tt8tt_metal12GraphTracker20hook_write_to_deviceEPKNS0_6BufferE"]
pub unsafe extern "C-unwind" fn hook_write_buffer(this: *mut c_void, buffer: *const c_void) -> bool {
    // SAFETY: as above.
    let f: HookFn = unsafe { std::mem::transmute::<usize, HookFn>(real(&REAL_HOOK_BUFFER, HOOK_WRITE_BUFFER)) };
    if state::enabled() {
        if let Some(_entered) = Entered::enter() {
            quietly(|| state::on_host_write(buffer));
        }
    }
    // SAFETY: forwarding the caller's arguments unchanged.
    unsafe { f(this, buffer) }
}

/// Interposes `GraphTracker::hook_write_to_device(const MeshBuffer*)` (see [`hook_write_buffer`]).
///
/// # Safety
/// Called by tt-metal with its own `this` and mesh buffer.
#[export_name = "_ZN2tt8tt_metal12GraphTracker20hook_write_to_deviceEPKNS0_11distributed10MeshBufferE"]
pub unsafe extern "C-unwind" fn hook_write_mesh_buffer(this: *mut c_void, mesh_buffer: *const c_void) -> bool {
    // SAFETY: as above.
    let f: HookFn = unsafe { std::mem::transmute::<usize, HookFn>(real(&REAL_HOOK_MESH, HOOK_WRITE_MESH_BUFFER)) };
    if state::enabled() {
        if let Some(_entered) = Entered::enter() {
            quietly(|| {
                if let Some(b) = state::backing_of(mesh_buffer) {
                    state::on_host_write(b);
                }
            });
        }
    }
    // SAFETY: forwarding the caller's arguments unchanged.
    unsafe { f(this, mesh_buffer) }
}
