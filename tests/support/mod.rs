//! Helpers shared by the end-to-end tests of the `ttsan` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use ttsan_events::trace::TraceWriter;
use ttsan_events::Event;

/// The `ttsan` binary under test, with `TTSAN_OPTIONS` cleared so the caller's environment
/// cannot change results.
pub fn ttsan() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ttsan"));
    c.env_remove("TTSAN_OPTIONS");
    c
}

/// Writes `events` as a trace file.
pub fn write_trace(path: &Path, events: &[Event]) {
    let file = std::fs::File::create(path).expect("create trace");
    let mut w = TraceWriter::new(std::io::BufWriter::new(file)).expect("header");
    for e in events {
        w.write(e).expect("write");
    }
    w.into_inner().expect("flush");
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Path inside the crate's tests/ folder.
pub fn test_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(rel)
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
