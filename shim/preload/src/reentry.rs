//! The per-thread re-entrancy guard, and what else the shim keeps per thread.
//!
//! The shim calls into tt-metal itself (accessors, buffer reads); if one of those calls reached
//! an interposed function again on the same thread, recording it would deadlock on the shim's
//! own state. Such nested calls go straight to the real function.

use crate::state::LinkSlot;
use std::cell::Cell;

/// The shim's per-thread state, in one block of initial-exec thread-local storage that the C++
/// side provides (cpp/thread.cpp says why): the interposed calls look it up once (at
/// [`Entered::enter`]) and pass the reference on.
///
/// All zeroes is its initial value (false, 0, `None`), which is what the block starts as.
#[repr(C)]
pub(crate) struct ThreadState {
    inside: Cell<bool>,
    /// Whether this thread's graph processor list holds the shim's processor.
    pushed: Cell<bool>,
    /// This thread's kernel id once asked for (gettid is a system call).
    tid: Cell<i64>,
    /// Where this thread publishes mesh-buffer links ([`crate::state::on_mesh_buffer`]).
    link: Cell<Option<&'static LinkSlot>>,
}

extern "C" {
    /// This thread's zero-initialised block of 64 bytes, 16-byte aligned.
    fn ttsan_preload_thread_block() -> *mut std::ffi::c_void;
}

/// The calling thread's state.
///
/// `'static` stands for "as long as this thread": the block lives until the thread ends, and
/// a `&ThreadState` cannot leave its thread (`ThreadState` holds Cells: it is not Sync, so a
/// reference to it is not Send, and no static can hold one).
pub(crate) fn thread() -> &'static ThreadState {
    const { assert!(std::mem::size_of::<ThreadState>() <= 64 && std::mem::align_of::<ThreadState>() <= 16) };
    // SAFETY: the block is this thread's, large and aligned enough (checked above), starts as
    // all zeroes (a valid ThreadState) and is only ever used as a ThreadState.
    unsafe { &*(ttsan_preload_thread_block() as *const ThreadState) }
}

impl ThreadState {
    /// This thread's kernel id.
    pub(crate) fn tid(&self) -> i64 {
        if self.tid.get() == 0 {
            // SAFETY: gettid has no preconditions.
            self.tid.set(i64::from(unsafe { libc::gettid() }));
        }
        self.tid.get()
    }

    /// This thread's link slot, made (and registered) on first use.
    pub(crate) fn link(&self) -> &'static LinkSlot {
        if let Some(slot) = self.link.get() {
            return slot;
        }
        let slot = LinkSlot::register();
        self.link.set(Some(slot));
        slot
    }

    /// Whether this thread registered the shim's graph processor.
    pub(crate) fn pushed(&self) -> bool {
        self.pushed.get()
    }

    /// This thread registered the shim's graph processor (or is about to).
    pub(crate) fn set_pushed(&self) {
        self.pushed.set(true);
    }

    /// This thread's link slot if it has one.
    pub(crate) fn link_if_any(&self) -> Option<&'static LinkSlot> {
        self.link.get()
    }
}

/// This thread's kernel id.
pub(crate) fn thread_id() -> i64 {
    thread().tid()
}

/// Proof that this thread is inside the shim; leaving is tied to drop so that a C++ exception
/// unwinding through an interposed call still clears the flag.
///
/// It holds the address of the thread's state, so that leaving, and whatever the recording
/// needs of the thread, costs no further thread-local lookup.
pub(crate) struct Entered(&'static ThreadState);

impl Entered {
    /// Enters the shim, or `None` when this thread is already inside it.
    pub(crate) fn enter() -> Option<Entered> {
        let t = thread();
        if t.inside.replace(true) {
            None
        } else {
            Some(Entered(t))
        }
    }

    /// The state of the thread inside the shim.
    pub(crate) fn thread(&self) -> &ThreadState {
        self.0
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.inside.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_entry_is_refused_until_the_outer_one_leaves() {
        let outer = Entered::enter();
        assert!(outer.is_some());
        assert!(Entered::enter().is_none());
        drop(outer);
        assert!(Entered::enter().is_some());
    }

    #[test]
    fn a_thread_keeps_its_link_slot_and_id() {
        let e = Entered::enter().expect("not inside");
        let t = e.thread();
        assert!(t.link_if_any().is_none());
        let slot = t.link();
        assert!(std::ptr::eq(slot, t.link()));
        assert_eq!(t.tid(), thread_id());
        assert_ne!(t.tid(), 0);
    }
}
