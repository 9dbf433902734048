//! The lock of the shim's state: a spin lock whose release is a plain store.
//!
//! tt-metal's thread takes the state lock twice per allocate/free pair. A futex mutex releases
//! with an atomic swap (it must learn whether to wake a waiter), a read-modify-write that waits
//! for every store before it, tt-metal's included, to reach the cache: in the profile, as much
//! of the shim's time per call as taking the lock. A release store is an ordinary store on
//! x86-64. The price is that a waiter cannot sleep until woken: it spins briefly, then yields,
//! then naps. The lock is held for microseconds (guard digests, rare, for longer), and is
//! contended only by the program's own threads allocating at the same moment, and by the writer
//! thread and signal handlers, which only ever try it.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// A mutual-exclusion lock around `T` (see the module's docs). A panic while it is held
/// releases it (the guard is dropped on unwinding); there is no poisoning: the shim's callers
/// carried on past a poisoned lock before as well.
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to the value is serialised by `locked` (acquire on taking, release on
// dropping the guard), as a Mutex<T> serialises it.
unsafe impl<T: Send> Sync for SpinLock<T> {}
unsafe impl<T: Send> Send for SpinLock<T> {}

/// Exclusive access to a [`SpinLock`]'s value until dropped.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> SpinLock<T> {
    /// An unlocked lock.
    pub(crate) const fn new(value: T) -> Self {
        SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// The lock if nobody holds it.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        // `then`, not `then_some`: a guard built eagerly for a failed attempt would be dropped,
        // and its drop would release the lock of whoever holds it.
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            .then(|| SpinGuard { lock: self })
    }

    /// Waits for the lock.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        match self.try_lock() {
            Some(guard) => guard,
            None => self.lock_contended(),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) -> SpinGuard<'_, T> {
        let mut round: u32 = 0;
        loop {
            // Read-only while it is held, so that the holder keeps the line.
            while self.locked.load(Ordering::Relaxed) {
                round = round.saturating_add(1);
                if round < 128 {
                    std::hint::spin_loop();
                } else if round < 1024 {
                    // Two cores and preemption: the holder may need this one.
                    std::thread::yield_now();
                } else {
                    // Held for long (guard digests read the device under it).
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            }
            if let Some(guard) = self.try_lock() {
                return guard;
            }
        }
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, and `&mut self` that this is the only use.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let lock = SpinLock::new(0u64);
        let g = lock.lock();
        assert!(lock.try_lock().is_none());
        drop(g);
        assert!(lock.try_lock().is_some());
    }

    #[test]
    fn threads_increment_without_losing_updates() {
        static LOCK: SpinLock<u64> = SpinLock::new(0);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..20_000 {
                        *LOCK.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(*LOCK.lock(), 80_000);
    }

    #[test]
    fn a_panic_releases_it() {
        let lock = SpinLock::new(1);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = lock.lock();
            panic!("inside");
        }));
        assert!(r.is_err());
        assert_eq!(*lock.lock(), 1);
    }
}
