//! The status file: the shim's side of it. Every process the shim is loaded into appends one
//! line per event in its life; the line format and its parser are the wrapper's protocol
//! (`ttsan_preload_protocol::StatusLine`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
pub(crate) use ttsan_preload_protocol::{STATUS_ERROR, STATUS_LOADED, STATUS_TT_METAL, STATUS_UNSUPPORTED};

/// Appends `tag pid text` to the status file, if there is one. One write(2) per line with
/// O_APPEND keeps lines of concurrent processes whole.
pub(crate) fn append(tag: &str, text: &str) {
    let Some(path) = &crate::config::get().status else { return };
    let line = format!("{tag} {} {}\n", std::process::id(), text.replace('\n', " "));
    let file = std::fs::OpenOptions::new().create(true).append(true).custom_flags(libc::O_CLOEXEC).open(path);
    if let Ok(mut f) = file {
        let _ = f.write_all(line.as_bytes());
    }
}
