//! The shim's graph processor: ops, circular buffers and programs as tt-metal reports them.
//!
//! Every ttnn op, C++ or Python, fast runtime mode or not, and every device operation nested in
//! one, calls `GraphTracker::track_function_start(name, args...)` and `track_function_end(...)`
//! (header templates in `graph_tracking.hpp`) on each processor in `GraphTracker`'s list; the
//! same list receives circular-buffer placements and program dispatches. The shim registers an
//! object of its own in that list. Its vtable is tt-metal's `IGraphProcessor` vtable copied
//! word for word, with the slots of the methods the shim needs (found by name, [`vtable`])
//! pointing at the functions below; every other slot keeps tt-metal's default (empty) body.
//!
//! The list is thread-local in ttnn 0.81.1 (`GraphTracker::processors` is a TLS symbol), so the
//! object is pushed once on every thread. The place to do that is `GraphTracker::instance()`:
//! exported, called through the PLT by every op before it reads the list (the template is
//! `GraphTracker::instance().track_function_start(...)`), so interposing it registers a thread
//! before its first op is announced.
//!
//! `is_capture_processor` answers false, as tt-metal's own always-on processors do: it only
//! feeds `GraphTracker::is_enabled()`, which must stay false so that ttnn behaves as it would
//! without ttsan.

use crate::reentry::Entered;
use crate::vtable::{self, Layout};
use crate::{state, tt};
use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicUsize;
use std::sync::OnceLock;

/// `tt::tt_metal::GraphTracker::instance()`.
pub(crate) const INSTANCE: &CStr = c"_ZN2tt8tt_metal12GraphTracker8instanceEv";
/// `GraphTracker::push_processor(std::shared_ptr<IGraphProcessor> const&)`.
const PUSH_PROCESSOR: &CStr = c"_ZN2tt8tt_metal12GraphTracker14push_processorERKSt10shared_ptrINS0_15IGraphProcessorEE";
/// `CoreRangeSet::ranges() const`: `std::vector<CoreRange> const&`.
const CORE_RANGES: &CStr = c"_ZNK2tt8tt_metal12CoreRangeSet6rangesEv";
/// `CoreRangeSet::num_cores() const`, to check the ranges read against the library's own count.
const CORE_COUNT: &CStr = c"_ZNK2tt8tt_metal12CoreRangeSet9num_coresEv";
/// `Program::get_runtime_id() const`.
const PROGRAM_ID: &CStr = c"_ZNK2tt8tt_metal7Program14get_runtime_idEv";

extern "C" {
    fn ttsan_preload_push_processor(
        tracker: *mut c_void,
        push: unsafe extern "C" fn(*mut c_void, *const c_void),
        object: *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
}

/// The registered object: what C++ sees as an `IGraphProcessor` (a vtable pointer and nothing
/// else; the methods keep no per-object state).
#[repr(C)]
struct Object {
    vptr: *const usize,
}

type RangesFn = unsafe extern "C" fn(*const c_void) -> *const tt::RawVec<[usize; 4]>;
type CountFn = unsafe extern "C" fn(*const c_void) -> u32;
type ProgramIdFn = unsafe extern "C" fn(*const c_void) -> u64;

/// What registering needs, resolved once.
pub(crate) struct Registration {
    /// The layout the vtable was built from.
    pub layout: Layout,
    object: usize,
    push: unsafe extern "C" fn(*mut c_void, *const c_void),
    /// `CoreRangeSet::ranges()` and `num_cores()`.
    ranges: Option<(RangesFn, CountFn)>,
    program_id: Option<ProgramIdFn>,
}

// SAFETY: the object and its vtable are leaked, immutable after construction.
unsafe impl Send for Registration {}
unsafe impl Sync for Registration {}

static REGISTRATION: OnceLock<Result<Registration, String>> = OnceLock::new();
/// The real `GraphTracker::instance()`.
static REAL_INSTANCE: AtomicUsize = AtomicUsize::new(0);

/// The registration, discovering the layout on first use (tt-metal must be loaded).
pub(crate) fn registration() -> &'static Result<Registration, String> {
    REGISTRATION.get_or_init(build)
}

fn build() -> Result<Registration, String> {
    let layout = vtable::discover()?;
    let push = tt::global(PUSH_PROCESSOR).ok_or("GraphTracker::push_processor is not exported")?;
    let mut words = layout.words.clone();
    let s = layout.slots;
    let at = |slot: usize| vtable_index(slot);
    words[at(s.is_capture_processor)] = is_capture_processor as *const () as usize;
    words[at(s.function_start)] = function_start as *const () as usize;
    words[at(s.function_end)] = function_end as *const () as usize;
    words[at(s.function_end_any)] = function_end_any as *const () as usize;
    words[at(s.allocate_cb)] = allocate_cb as *const () as usize;
    words[at(s.deallocate_cb)] = deallocate_cb as *const () as usize;
    words[at(s.program)] = program as *const () as usize;
    let words: &'static [usize] = Box::leak(words.into_boxed_slice());
    let object: &'static mut Object = Box::leak(Box::new(Object { vptr: words[2..].as_ptr() }));
    let ranges = tt::global(CORE_RANGES).zip(tt::global(CORE_COUNT)).map(|(r, n)| {
        // SAFETY: the exported const getters with these signatures.
        unsafe { (std::mem::transmute::<*mut c_void, RangesFn>(r), std::mem::transmute::<*mut c_void, CountFn>(n)) }
    });
    // SAFETY: as above.
    let program_id = tt::global(PROGRAM_ID).map(|p| unsafe { std::mem::transmute::<*mut c_void, ProgramIdFn>(p) });
    Ok(Registration {
        layout,
        object: object as *mut Object as usize,
        // SAFETY: push_processor's signature: (GraphTracker* this, shared_ptr const&).
        push: unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void, *const c_void)>(push) },
        ranges,
        program_id,
    })
}

/// Index into the vtable symbol's words of a slot (objects point past the two header words).
fn vtable_index(slot: usize) -> usize {
    slot + 2
}

/// Puts the shim's processor into this thread's list (of `tracker`, the real
/// `GraphTracker::instance()`), once; a no-op when recording is off and, when the layout is
/// unsupported, a status line instead (written once).
fn register_this_thread(tracker: *mut c_void) {
    if !state::enabled() {
        return;
    }
    crate::reentry::thread().set_pushed();
    let reg = match registration() {
        Ok(r) => r,
        Err(why) => return state::on_unsupported(why),
    };
    let mut err = [0 as c_char; 256];
    // SAFETY: the glue calls push_processor on the live tracker with a shared_ptr to our
    // leaked object, catching every C++ exception.
    let rc = unsafe {
        ttsan_preload_push_processor(tracker, reg.push, reg.object as *mut c_void, err.as_mut_ptr(), err.len())
    };
    if rc != 0 {
        // SAFETY: the glue NUL-terminates within err.
        let msg = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
        state::on_unsupported(&format!("GraphTracker::push_processor failed: {msg}"));
    }
}

/// Interposes `GraphTracker::instance()`: registers the calling thread before it reads its list.
///
/// # Safety
/// Called by tt-metal and ttnn as the real function.
#[export_name = "_ZN2tt8tt_metal12GraphTracker8instanceEv"]
pub unsafe extern "C-unwind" fn graph_tracker_instance() -> *mut c_void {
    let p = crate::interpose::real(&REAL_INSTANCE, INSTANCE);
    // SAFETY: the real GraphTracker::instance().
    let real = unsafe { std::mem::transmute::<usize, unsafe extern "C-unwind" fn() -> *mut c_void>(p) };
    if crate::reentry::thread().pushed() {
        // The common case, a tail call: tt-metal asks for the instance four times per
        // allocate/free pair.
        // SAFETY: as above.
        return unsafe { real() };
    }
    // SAFETY: as above.
    let tracker = unsafe { real() };
    // Not behind the re-entrancy guard: tt-metal's own allocate_impl asks for the instance while
    // the shim's interposed allocate_impl is on the stack, and that is a thread's first chance to
    // register when the program calls the real functions directly. Registering calls nothing
    // the shim interposes, and `pushed` is set before anything else, so it cannot recurse.
    let _ = catch_unwind(AssertUnwindSafe(|| register_this_thread(tracker)));
    tracker
}

/// Runs `f` as the shim, unless this thread is already inside it or recording is off.
fn inside(f: impl FnOnce()) {
    if !state::enabled() {
        return;
    }
    if let Some(_entered) = Entered::enter() {
        let _ = catch_unwind(AssertUnwindSafe(f));
    }
}

extern "C" fn is_capture_processor(_this: *const c_void) -> bool {
    false
}

/// `track_function_start(std::string_view name, std::span<TrackedArgument> args)`: libstdc++
/// passes the view as (length, pointer) and the span as (pointer, length).
extern "C" fn function_start(_this: *mut c_void, len: usize, ptr: *const u8, _args: *const c_void, _nargs: usize) {
    inside(|| {
        let name = if ptr.is_null() {
            std::borrow::Cow::Borrowed("")
        } else {
            // SAFETY: tt-metal passes a valid string_view of `len` bytes.
            String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(ptr, len) })
        };
        state::op_begin(&name, state::OpSource::Tracker);
    });
}

extern "C" fn function_end(_this: *mut c_void) {
    inside(state::op_end);
}

extern "C" fn function_end_any(_this: *mut c_void, _outputs: *const c_void) {
    inside(state::op_end);
}

extern "C" fn allocate_cb(
    _this: *mut c_void,
    cores: *const c_void,
    address: u64,
    size: u64,
    globally_allocated: bool,
    device: *const c_void,
) {
    inside(|| {
        let ranges = core_ranges(cores);
        state::on_cb_allocated(ranges, address, size, globally_allocated, device);
    });
}

extern "C" fn deallocate_cb(_this: *mut c_void, device: *const c_void) {
    inside(|| state::on_cbs_released(device));
}

extern "C" fn program(_this: *mut c_void, program: *mut c_void, device: *const c_void) {
    inside(|| {
        let id = match registration() {
            // SAFETY: `program` is the live Program tt-metal reports.
            Ok(Registration { program_id: Some(f), .. }) if !program.is_null() => unsafe { f(program) },
            _ => 0,
        };
        state::on_program(id, device);
    });
}

/// The core ranges of a `CoreRangeSet`, as `[start.x, start.y, end.x, end.y]`, or `Err` with why
/// they cannot be trusted: what was read must cover as many cores as the library's own count.
fn core_ranges(set: *const c_void) -> Result<Vec<[usize; 4]>, String> {
    let Ok(Registration { ranges: Some((ranges, count)), .. }) = registration() else {
        return Err("CoreRangeSet::ranges is not exported".into());
    };
    if set.is_null() {
        return Err("no core range set".into());
    }
    // SAFETY: `set` is the live CoreRangeSet tt-metal passed; ranges() returns a reference to
    // its std::vector<CoreRange> (CoreRange = two CoreCoords of two size_t each).
    let (v, cores) = unsafe { (&*ranges(set), count(set)) };
    if v.begin.is_null() || v.end < v.begin {
        return Err("CoreRangeSet::ranges returned no vector".into());
    }
    // SAFETY: begin..end are the vector's initialised elements.
    let out: Vec<[usize; 4]> =
        unsafe { std::slice::from_raw_parts(v.begin, v.end.offset_from(v.begin) as usize) }.to_vec();
    let counted: usize =
        out.iter().map(|r| (r[2].saturating_sub(r[0]) + 1).saturating_mul(r[3].saturating_sub(r[1]) + 1)).sum();
    if counted != cores as usize || out.iter().any(|r| r[2] < r[0] || r[3] < r[1]) {
        return Err(format!("CoreRangeSet read as {counted} cores, the library counts {cores}: layout not understood"));
    }
    Ok(out)
}
