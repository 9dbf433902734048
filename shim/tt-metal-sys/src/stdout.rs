//! Keeping tt-metal's log lines off the caller's standard output.
//!
//! tt-metal's logger writes to file descriptor 1, even at error level (an allocation failure
//! logs a `critical | TT_FATAL ...` line before throwing). A tool whose stdout is its result
//! must not have those lines mixed in.

use crate::error::TtError;
use std::ffi::c_int;
use std::fs::File;
use std::os::fd::FromRawFd;

extern "C" {
    fn dup(fd: c_int) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
}

/// Points file descriptor 1 at standard error for the rest of the process and returns a
/// [`File`] on the original standard output, where the caller writes its results.
///
/// Anything written through `std::io::stdout()` afterwards also lands on stderr, so write
/// results only through the returned file.
pub fn divert_library_stdout() -> Result<File, TtError> {
    // SAFETY: dup and dup2 only manipulate descriptors; fd 1 and 2 exist in any process that
    // can report errors at all, and failures are checked.
    let saved = unsafe { dup(1) };
    if saved < 0 {
        return Err(TtError::Io { what: "cannot duplicate stdout".into(), source: std::io::Error::last_os_error() });
    }
    // SAFETY: as above.
    if unsafe { dup2(2, 1) } < 0 {
        return Err(TtError::Io {
            what: "cannot point stdout at stderr".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `saved` is a fresh descriptor owned by nobody else.
    Ok(unsafe { File::from_raw_fd(saved) })
}
