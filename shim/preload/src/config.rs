//! The shim's settings, read once from the environment when the library is loaded (the
//! variables are the wrapper's protocol, `ttsan_preload_protocol::env`).

use std::path::PathBuf;
use std::sync::OnceLock;
use ttsan_preload_protocol::env::*;
use ttsan_preload_protocol::{DigestSampling, GuardSelection};

const DEFAULT_STACK_DEPTH: usize = 16;
/// More frames than this are never useful in a report and only cost unwinding time.
const MAX_STACK_DEPTH: usize = 64;

/// Settings of this process's shim.
#[derive(Debug)]
pub(crate) struct Config {
    /// The trace path; `None` leaves the shim passive.
    pub trace: Option<PathBuf>,
    /// The status file.
    pub status: Option<PathBuf>,
    /// Frames per backtrace.
    pub stack_depth: usize,
    /// Command line for the capture header.
    pub command: String,
    /// Which buffers to guard.
    pub guards: GuardSelection,
    /// Which op ends compare guard digests.
    pub sample: DigestSampling,
    /// A setting that could not be parsed, reported once the trace exists.
    pub problems: Vec<String>,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// The settings (read on first use).
pub(crate) fn get() -> &'static Config {
    CONFIG.get_or_init(Config::from_env)
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    fn from_env() -> Config {
        let mut problems = Vec::new();
        let stack_depth = match var(ENV_STACK_DEPTH).map(|v| v.parse::<usize>()) {
            None => DEFAULT_STACK_DEPTH,
            Some(Ok(n)) => n.min(MAX_STACK_DEPTH),
            Some(Err(_)) => {
                problems.push(format!("{ENV_STACK_DEPTH}: expected a number of frames"));
                DEFAULT_STACK_DEPTH
            }
        };
        let guards = match GuardSelection::parse(
            var(ENV_GUARD_MIN_SIZE).as_deref(),
            var(ENV_GUARD_TYPES).as_deref(),
            var(ENV_GUARD_STACK).as_deref(),
            var(ENV_GUARD_PRELOADED).as_deref(),
        ) {
            Ok(g) => g,
            Err(e) => {
                problems.push(format!("guard selection ignored: {e}"));
                GuardSelection::default()
            }
        };
        let sample = match DigestSampling::parse(var(ENV_GUARD_EVERY).as_deref(), var(ENV_GUARD_OPS).as_deref()) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("guard sampling ignored: {e}"));
                DigestSampling::default()
            }
        };
        Config {
            trace: var(ENV_TRACE).map(PathBuf::from),
            sample,
            status: var(ENV_STATUS).map(PathBuf::from),
            stack_depth,
            command: var(ENV_COMMAND).unwrap_or_else(own_command_line),
            guards,
            problems,
        }
    }
}

/// `/proc/self/cmdline` with spaces between the arguments.
fn own_command_line() -> String {
    match std::fs::read("/proc/self/cmdline") {
        Ok(bytes) => bytes
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => String::new(),
    }
}
