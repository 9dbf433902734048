//! For the wrapper (`ttsan run`), not the shim: ignoring Ctrl-C while the wrapped command runs,
//! so that the wrapper survives to analyse the trace the interrupted command left behind.

/// Restores SIGINT and SIGTERM handling when dropped.
pub struct InterruptsIgnored {
    previous: [Option<libc::sigaction>; 2],
}

const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// Ignores SIGINT and SIGTERM in this process until the guard is dropped. Call it after the
/// child is spawned: ignored signals are inherited across exec.
pub fn ignore_interrupts() -> InterruptsIgnored {
    let mut previous = [None; 2];
    for (slot, &sig) in previous.iter_mut().zip(&SIGNALS) {
        // SAFETY: sigaction with a zeroed struct set to SIG_IGN; the old action is kept.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = libc::SIG_IGN;
            libc::sigemptyset(&mut act.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, &act, &mut old) == 0 {
                *slot = Some(old);
            }
        }
    }
    InterruptsIgnored { previous }
}

impl Drop for InterruptsIgnored {
    fn drop(&mut self) {
        for (old, &sig) in self.previous.iter().zip(&SIGNALS) {
            if let Some(old) = old {
                // SAFETY: restoring the action saved above.
                unsafe { libc::sigaction(sig, old, std::ptr::null_mut()) };
            }
        }
    }
}
