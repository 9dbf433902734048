//! Load-time set-up and exit-time flush.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs when the library is loaded into a process (before `main`).
extern "C" fn on_load() {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !in_shared_object() {
            return;
        }
        let cfg = crate::config::get();
        if cfg.trace.is_none() {
            return;
        }
        crate::status::append(crate::status::STATUS_LOADED, &cfg.command);
        // SAFETY: registering plain extern "C" callbacks.
        unsafe {
            libc::atexit(on_exit);
            libc::pthread_atfork(None, None, Some(on_fork_child));
        }
    }));
}

/// Whether this code runs from the shared library. The rlib may end up linked into an
/// executable (the `ttsan` binary uses the wrapper-side items); there the constructor is inert.
fn in_shared_object() -> bool {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr on one of our own functions; dli_fname is NUL-terminated when set.
    unsafe {
        if libc::dladdr(in_shared_object as *const std::ffi::c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return false;
        }
        let name = std::ffi::CStr::from_ptr(info.dli_fname).to_bytes();
        name.ends_with(b".so") || name.windows(4).any(|w| w == b".so.")
    }
}

extern "C" fn on_exit() {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if crate::state::enabled() {
            crate::state::finish();
        }
    }));
}

extern "C" fn on_fork_child() {
    crate::state::on_fork_child();
}

// Runs wherever the rlib is linked too; `in_shared_object` keeps it inert outside the shim.
#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;
