//! Flushing the trace when the process is killed or crashes.
//!
//! Handlers are installed when the trace is opened, chaining to whatever the program had
//! installed before (Python's SIGINT handler, pytest's faulthandler); a program that installs
//! its own handler later replaces ours for that signal.

use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

const SIGNALS: [c_int; 5] = [libc::SIGINT, libc::SIGTERM, libc::SIGABRT, libc::SIGSEGV, libc::SIGBUS];

struct Previous(UnsafeCell<[Option<libc::sigaction>; 5]>);
// SAFETY: written once in `install` before any handler can run, read-only afterwards.
unsafe impl Sync for Previous {}

static PREVIOUS: Previous = Previous(UnsafeCell::new([None; 5]));
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the handlers (once per process).
pub(crate) fn install() {
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: sigaction with a zeroed struct and our handler; `PREVIOUS[i]` is written
        // before our handler can be called for `sig`.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction == libc::SIG_IGN {
                // An ignored signal stays ignored: taking it over would change the program.
                continue;
            }
            (*PREVIOUS.0.get())[i] = Some(old);
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_signal(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let Some(i) = SIGNALS.iter().position(|&s| s == sig) else { return };
    // SAFETY: PREVIOUS is no longer written once handlers run.
    let prev = unsafe { (*PREVIOUS.0.get())[i] };
    let chained = prev.filter(|p| p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN);
    if !crate::state::forked() {
        // With the default action the process dies right after: keep the writer locked out so
        // it cannot start a record it would not finish.
        crate::writer::flush_from_signal(chained.is_none());
    }
    // SAFETY: calling the previous handler with its own convention, or restoring the default
    // action and re-raising; all async-signal-safe.
    unsafe {
        match chained {
            Some(p) if p.sa_flags & libc::SA_SIGINFO != 0 => {
                let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = std::mem::transmute(p.sa_sigaction);
                f(sig, info, ctx);
            }
            Some(p) => {
                let f: extern "C" fn(c_int) = std::mem::transmute(p.sa_sigaction);
                f(sig);
            }
            None => {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut act.sa_mask);
                libc::sigaction(sig, &act, std::ptr::null_mut());
                // Blocked until this handler returns; a fault re-executes and dies either way.
                libc::raise(sig);
            }
        }
    }
}
