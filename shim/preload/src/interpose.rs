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
use ttsan_events::TraceAction;

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
pub(crate) fn real(slot: &AtomicUsize, name: &CStr) -> usize {
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
    if let Some(entered) = &entered {
        quietly(|| state::on_allocated(buffer, entered));
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

/// `MeshDeviceImpl::begin_mesh_trace(uint8_t cq_id, MeshTraceId const&)`: every public route
/// to a trace capture (`MeshDevice::begin_mesh_trace` in all its overloads) ends here through
/// the PLT.
const BEGIN_TRACE: &CStr =
    c"_ZN2tt8tt_metal11distributed14MeshDeviceImpl16begin_mesh_traceEhRKN4ttsl10StrongTypeIjNS1_14MeshTraceIdTagEEE";
/// `MeshDeviceImpl::end_mesh_trace(uint8_t, MeshTraceId const&)`.
const END_TRACE: &CStr =
    c"_ZN2tt8tt_metal11distributed14MeshDeviceImpl14end_mesh_traceEhRKN4ttsl10StrongTypeIjNS1_14MeshTraceIdTagEEE";
/// `MeshDeviceImpl::replay_mesh_trace(uint8_t, MeshTraceId const&, bool blocking)`.
const REPLAY_TRACE: &CStr =
    c"_ZN2tt8tt_metal11distributed14MeshDeviceImpl17replay_mesh_traceEhRKN4ttsl10StrongTypeIjNS1_14MeshTraceIdTagEEEb";
/// `MeshDeviceImpl::release_mesh_trace(MeshTraceId const&)`.
const RELEASE_TRACE: &CStr =
    c"_ZN2tt8tt_metal11distributed14MeshDeviceImpl18release_mesh_traceERKN4ttsl10StrongTypeIjNS1_14MeshTraceIdTagEEE";

static REAL_BEGIN_TRACE: AtomicUsize = AtomicUsize::new(0);
static REAL_END_TRACE: AtomicUsize = AtomicUsize::new(0);
static REAL_REPLAY_TRACE: AtomicUsize = AtomicUsize::new(0);
static REAL_RELEASE_TRACE: AtomicUsize = AtomicUsize::new(0);

type TraceFn = unsafe extern "C-unwind" fn(*mut c_void, u8, *const u32);
type ReplayFn = unsafe extern "C-unwind" fn(*mut c_void, u8, *const u32, u8);
type ReleaseFn = unsafe extern "C-unwind" fn(*mut c_void, *const u32);

/// Reads a `MeshTraceId` (a strong type over `uint32_t`, passed by reference).
fn trace_id(id: *const u32) -> u32 {
    // SAFETY: tt-metal passes a reference to a live id.
    if id.is_null() {
        0
    } else {
        unsafe { *id }
    }
}

fn on_trace(action: TraceAction, id: *const u32) {
    if state::enabled() {
        if let Some(_entered) = Entered::enter() {
            quietly(|| state::on_mesh_trace(action, trace_id(id)));
        }
    }
}

/// Interposes the start of a mesh-trace capture: ops from here on are recorded into the trace.
///
/// # Safety
/// Called by tt-metal with its own arguments.
#[export_name = "_ZN2tt8tt_metal11distributed14MeshDeviceImpl16begin_mesh_traceEhRKN4ttsl10StrongTypeIjNS1_14MeshTraceIdTagEEE"]
pub unsafe extern "C-unwind" fn begin_mesh_trace(this: *mut c_void, cq: u8, id: *const u32) {
    // SAFETY: the symbol's real definition has this signature.
    let f: TraceFn = unsafe { std::mem::transmute::<usize, TraceFn>(real(&REAL_BEGIN_TRACE, BEGIN_TRACE)) };
    // SAFETY: forwarding the caller's arguments unchanged.
    unsafe { f(this, cq, id) };
    on_trace(TraceAction::BeginCapture, id);
}

/// Interposes the end of a mesh-trace capture.
///
/// # Safety
/// Called by tt-metal with its own arguments.
#[export_name = "_ZN2tt8tt_metal11distributed14MeshDeviceImpl14end_mesh_traceEhRKN4ttsl10StrongTypeIjNS1_14MeshTraceIdTagEEE"]
pub unsafe extern "C-unwind" fn end_mesh_trace(this: *mut c_void, cq: u8, id: *const u32) {
    // SAFETY: as above.
    let f: TraceFn = unsafe { std::mem::transmute::<usize, TraceFn>(real(&REAL_END_TRACE, END_TRACE)) };
    // SAFETY: forwarding the caller's arguments unchanged.
    unsafe { f(this, cq, id) };
    on_trace(TraceAction::EndCapture, id);
}

/// Interposes a replay: the recorded ops run on the device without any host call, so the
/// replay becomes one op of its own, around which guards are checked as a whole.
///
/// # Safety
/// Called by tt-metal with its own arguments.
#[export_name = "_ZN2tt8tt_metal11distributed14MeshDeviceImpl17replay_mesh_traceEhRKN4ttsl10StrongTypeIjNS1_14MeshTraceIdTagEEEb"]
pub unsafe extern "C-unwind" fn replay_mesh_trace(this: *mut c_void, cq: u8, id: *const u32, blocking: u8) {
    // SAFETY: as above.
    let f: ReplayFn = unsafe { std::mem::transmute::<usize, ReplayFn>(real(&REAL_REPLAY_TRACE, REPLAY_TRACE)) };
    // Entering fails alike before and after when this thread is already inside the shim, so
    // the op opened here is always the one closed.
    let recording = state::enabled();
    if recording {
        if let Some(_entered) = Entered::enter() {
            quietly(|| {
                state::op_begin(
                    &format!("MeshDevice::replay_mesh_trace(trace {})", trace_id(id)),
                    state::OpSource::Replay,
                )
            });
            quietly(|| state::on_mesh_trace(TraceAction::Replay, trace_id(id)));
        }
    }
    // SAFETY: forwarding the caller's arguments unchanged.
    unsafe { f(this, cq, id, blocking) };
    if recording {
        if let Some(_entered) = Entered::enter() {
            quietly(state::op_end);
        }
    }
}

/// Interposes the release of a mesh trace.
///
/// # Safety
/// Called by tt-metal with its own arguments.
#[export_name = "_ZN2tt8tt_metal11distributed14MeshDeviceImpl18release_mesh_traceERKN4ttsl10StrongTypeIjNS1_14MeshTraceIdTagEEE"]
pub unsafe extern "C-unwind" fn release_mesh_trace(this: *mut c_void, id: *const u32) {
    on_trace(TraceAction::Release, id);
    // SAFETY: as above.
    let f: ReleaseFn = unsafe { std::mem::transmute::<usize, ReleaseFn>(real(&REAL_RELEASE_TRACE, RELEASE_TRACE)) };
    // SAFETY: forwarding the caller's arguments unchanged.
    unsafe { f(this, id) }
}

/// `MeshBuffer::initialize_device_buffers()`: `MeshBuffer::create` calls it through the PLT on
/// the new mesh buffer, after its backing buffer was allocated, so the shim learns which mesh
/// buffer a backing buffer belongs to (each chip's copy of a guard is read through it) without a
/// frame of its own on the allocation stack.
const INIT_DEVICE_BUFFERS: &CStr = c"_ZN2tt8tt_metal11distributed10MeshBuffer25initialize_device_buffersEv";
static REAL_INIT_DEVICE_BUFFERS: AtomicUsize = AtomicUsize::new(0);

type MemberFn = unsafe extern "C-unwind" fn(*mut c_void);

/// Interposes `MeshBuffer::initialize_device_buffers`.
///
/// # Safety
/// Called by tt-metal with a live `MeshBuffer`.
#[export_name = "_ZN2tt8tt_metal11distributed10MeshBuffer25initialize_device_buffersEv"]
pub unsafe extern "C-unwind" fn initialize_device_buffers(this: *mut c_void) {
    // SAFETY: as above.
    let f: MemberFn =
        unsafe { std::mem::transmute::<usize, MemberFn>(real(&REAL_INIT_DEVICE_BUFFERS, INIT_DEVICE_BUFFERS)) };
    // SAFETY: forwarding the caller's arguments unchanged.
    unsafe { f(this) };
    if state::enabled() {
        if let Some(entered) = Entered::enter() {
            quietly(|| state::on_mesh_buffer(this, &entered));
        }
    }
}
