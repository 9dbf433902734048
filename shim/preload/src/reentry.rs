//! The per-thread re-entrancy guard, and what else the shim keeps per thread.
//!
//! The shim calls into tt-metal itself (accessors, buffer reads); if one of those calls reached
//! an interposed function again on the same thread, recording it would deadlock on the shim's
//! own state. Such nested calls go straight to the real function.

use crate::state::LinkSlot;
use std::cell::Cell;

/// The shim's per-thread state, in one thread-local: in the shim (a shared library) every
/// thread-local access is a call to `__tls_get_addr`, so the interposed calls look it up once
/// (at [`Entered::enter`]) and pass the reference on.
pub(crate) struct ThreadState {
    inside: Cell<bool>,
    /// This thread's kernel id once asked for (gettid is a system call).
    tid: Cell<i64>,
    /// Where this thread publishes mesh-buffer links ([`crate::state::on_mesh_buffer`]).
    link: Cell<Option<&'static LinkSlot>>,
}

thread_local! {
    // const-initialised and without a destructor: reading it never allocates, so it is safe
    // from any context, including before the thread's TLS destructors are registered.
    static THREAD: ThreadState = const {
        ThreadState { inside: Cell::new(false), tid: Cell::new(0), link: Cell::new(None) }
    };
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

    /// This thread's link slot if it has one.
    pub(crate) fn link_if_any(&self) -> Option<&'static LinkSlot> {
        self.link.get()
    }
}

/// This thread's kernel id (0 while the thread's storage is being torn down).
pub(crate) fn thread_id() -> i64 {
    THREAD.try_with(ThreadState::tid).unwrap_or(0)
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
        THREAD
            .try_with(|t| {
                // SAFETY: the state lives as long as this thread, and an `Entered` never leaves
                // the thread that made it (`ThreadState` holds Cells: it is not Sync, so a
                // reference to it is not Send).
                let t: &'static ThreadState = unsafe { &*(t as *const ThreadState) };
                if t.inside.replace(true) {
                    None
                } else {
                    Some(Entered(t))
                }
            })
            .ok()
            .flatten()
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
