//! The per-thread re-entrancy guard.
//!
//! The shim calls into tt-metal itself (accessors, buffer reads); if one of those calls reached
//! an interposed function again on the same thread, recording it would deadlock on the shim's
//! own state. Such nested calls go straight to the real function.

use std::cell::Cell;

thread_local! {
    // const-initialised and without a destructor: reading it never allocates, so it is safe
    // from any context, including before the thread's TLS destructors are registered.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Proof that this thread is inside the shim; leaving is tied to drop so that a C++ exception
/// unwinding through an interposed call still clears the flag.
pub(crate) struct Entered(());

impl Entered {
    /// Enters the shim, or `None` when this thread is already inside it.
    pub(crate) fn enter() -> Option<Entered> {
        INSIDE.try_with(|c| if c.replace(true) { None } else { Some(Entered(())) }).ok().flatten()
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let _ = INSIDE.try_with(|c| c.set(false));
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
}
