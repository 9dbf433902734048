//! Helpers shared by the end-to-end tests of the `ttsan` binary: running it, reading its
//! output, writing traces, and skipping a test whose outside requirement is missing.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tt_metal_sys::RuntimeRoot;
use ttsan_events::trace::TraceWriter;
use ttsan_events::Event;

/// The `ttsan` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ttsan");

/// The `ttsan` binary under test, with `TTSAN_OPTIONS` cleared so the caller's environment
/// cannot change results.
pub fn ttsan() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("TTSAN_OPTIONS");
    c
}

/// `ttsan ARGS` run to completion in `dir` (see [`ttsan`]).
pub fn ttsan_in(dir: &Path, args: &[&str]) -> Output {
    ttsan().current_dir(dir).args(args).output().expect("ttsan runs")
}

/// Whether the tests run in CI (`CI=true`), where every requirement must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Skips `test` loudly because of `why` (something outside the repository is missing), or
/// fails it under `CI=true`, where a skipped test would pass silently.
pub fn skip(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: CI=true but {why}");
    }
    // Straight to the stderr handle: the test harness captures eprintln! of passing tests.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test} because {why}");
}

/// The tt-metal runtime root when its library is usable; otherwise `None` after [`skip`].
pub fn tt_metal_root(test: &str) -> Option<RuntimeRoot> {
    let root = RuntimeRoot::locate(None);
    match root.check() {
        Ok(()) => Some(root),
        Err(e) => {
            skip(test, &format!("the tt-metal library is unusable: {e}"));
            None
        }
    }
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

/// stdout then stderr, as text.
pub fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
