//! How a simulated mesh is set up: chips, detection mode, guards, faults.

use super::fault::Fault;
use std::fmt;
use std::str::FromStr;
use ttsan_events::{Arch, Role};

/// What the simulator reports so the sanitizer can find corruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DetectMode {
    /// Every device write as a coalesced `Write` event.
    #[default]
    Writes,
    /// Per-page digests of guarded buffers after each op that touched them.
    Digests,
    /// Both.
    Both,
    /// Nothing: the same run with recording and checking off (the overhead baseline).
    None,
}

impl DetectMode {
    /// Whether `Write` events are emitted.
    pub fn writes(self) -> bool {
        matches!(self, DetectMode::Writes | DetectMode::Both)
    }

    /// Whether guard digests are taken.
    pub fn digests(self) -> bool {
        matches!(self, DetectMode::Digests | DetectMode::Both)
    }

    /// Whether anything is tracked at all.
    pub fn enabled(self) -> bool {
        self != DetectMode::None
    }

    /// Every mode.
    pub const ALL: [DetectMode; 4] = [DetectMode::Writes, DetectMode::Digests, DetectMode::Both, DetectMode::None];
}

impl fmt::Display for DetectMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DetectMode::Writes => "writes",
            DetectMode::Digests => "digests",
            DetectMode::Both => "both",
            DetectMode::None => "none",
        })
    }
}

/// A detection mode name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown detection mode `{0}` (writes, digests, both, none)")]
pub struct UnknownDetectMode(pub String);

impl FromStr for DetectMode {
    type Err = UnknownDetectMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DetectMode::ALL.into_iter().find(|m| m.to_string() == s).ok_or_else(|| UnknownDetectMode(s.to_string()))
    }
}

/// Which buffers get guard digests, and which free memory is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSelect {
    /// Name globs (`*.sinks`).
    pub globs: Vec<String>,
    /// Roles (by default every role: weights, live activations, the KV cache, CCL scratch,
    /// semaphores).
    pub roles: Vec<Role>,
    /// Canaries over free memory (all of them by default).
    pub canaries: Canaries,
}

impl GuardSelect {
    /// The roles guarded by default: all of them. Every op declares what it writes (outputs,
    /// scratch, in-place caches, what it allocates), so a live buffer changes only across its
    /// writers and any other change is corruption; the simulator re-hashes only written pages,
    /// so guarding everything costs about one hash of every byte written.
    pub const DEFAULT_ROLES: [Role; 8] = Role::ALL;

    /// Weights only and no canaries: what digest mode watched before activation guards and
    /// canaries existed.
    pub fn weights_only() -> Self {
        GuardSelect { globs: Vec::new(), roles: vec![Role::Weight], canaries: Canaries::NONE }
    }
}

impl Default for GuardSelect {
    fn default() -> Self {
        GuardSelect { globs: Vec::new(), roles: Self::DEFAULT_ROLES.to_vec(), canaries: Canaries::ALL }
    }
}

/// Free memory the digest modes watch, as ASan's quarantine poisoning watches freed memory:
/// its pages are digested before and after each op, and a change is a write into memory
/// nobody owns. Each kind is a read-back real hardware could do; they differ in how much it
/// would have to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Canaries {
    /// The free bytes just past the end, on each bank or core, of every buffer an op writes,
    /// up to the next allocation and at most [`super::canary::PAST_END_BYTES`].
    pub past_end: bool,
    /// The regions of the most recently freed buffers (as many as the analyzer's default
    /// quarantine), until they are reallocated.
    pub quarantine: bool,
    /// All free memory (on hardware a read-back of every free byte after every op).
    pub free: bool,
}

impl Canaries {
    /// Every canary.
    pub const ALL: Canaries = Canaries { past_end: true, quarantine: true, free: true };
    /// No canary.
    pub const NONE: Canaries = Canaries { past_end: false, quarantine: false, free: false };

    /// Whether any canary is on.
    pub fn any(self) -> bool {
        self.past_end || self.quarantine || self.free
    }

    /// Parses a comma-separated list of `past-end`, `quarantine`, `free`, or `all` / `none`.
    pub fn parse(list: &str) -> Result<Canaries, UnknownCanary> {
        let mut c = Canaries::NONE;
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "all" => c = Canaries::ALL,
                "none" => {}
                "past-end" => c.past_end = true,
                "quarantine" => c.quarantine = true,
                "free" => c.free = true,
                other => return Err(UnknownCanary(other.to_string())),
            }
        }
        Ok(c)
    }
}

impl fmt::Display for Canaries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<&str> = [(self.past_end, "past-end"), (self.quarantine, "quarantine"), (self.free, "free")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        f.write_str(if on.is_empty() { "none".to_string() } else { on.join(",") }.as_str())
    }
}

/// A canary name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown canary `{0}` (past-end, quarantine, free, all, none)")]
pub struct UnknownCanary(pub String);

/// Everything a [`super::Mesh`] is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConfig {
    /// Chip architecture.
    pub arch: Arch,
    /// Mesh rows.
    pub rows: u32,
    /// Mesh columns.
    pub cols: u32,
    /// Detection mode.
    pub detect: DetectMode,
    /// Guard selection (digest modes).
    pub guards: GuardSelect,
    /// Injected faults (none by default).
    pub faults: Vec<Fault>,
    /// The scenario, for the trace header.
    pub command: String,
    /// Ops place their buffers and circular buffers and end without running their kernels
    /// (plan mode: full-size shapes whose data would not fit the host).
    pub placement_only: bool,
    /// Every op's outputs are digested on every chip when it ends (`OutputDigest`), so that
    /// `ttsan diff` can compare two runs of the same workload.
    pub digest_outputs: bool,
}

impl MeshConfig {
    /// A `rows` x `cols` mesh of `arch` chips, writes mode, the default guards and canaries
    /// (for the digest modes), no faults.
    pub fn new(arch: Arch, rows: u32, cols: u32) -> Self {
        MeshConfig {
            arch,
            rows,
            cols,
            detect: DetectMode::default(),
            guards: GuardSelect::default(),
            faults: Vec::new(),
            command: String::new(),
            placement_only: false,
            digest_outputs: false,
        }
    }

    /// The same with another detection mode.
    pub fn detect(mut self, mode: DetectMode) -> Self {
        self.detect = mode;
        self
    }

    /// The same, also guarding buffers whose name matches `glob`.
    pub fn guard_glob(mut self, glob: &str) -> Self {
        self.guards.globs.push(glob.to_string());
        self
    }

    /// The same, guarding exactly these roles.
    pub fn guard_roles(mut self, roles: &[Role]) -> Self {
        self.guards.roles = roles.to_vec();
        self
    }

    /// The same with these canaries over free memory.
    pub fn canaries(mut self, canaries: Canaries) -> Self {
        self.guards.canaries = canaries;
        self
    }

    /// The same with one more injected fault.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// The same with ops that only place (outputs, op-cache scratch, circular buffers) and
    /// run no kernel ([`super::OpRun::compute`]), and host uploads that write nothing.
    pub fn placement_only(mut self) -> Self {
        self.placement_only = true;
        self
    }

    /// The same, digesting every op's outputs when it ends (see [`MeshConfig::digest_outputs`]).
    pub fn digest_outputs(mut self) -> Self {
        self.digest_outputs = true;
        self
    }

    /// The same with a scenario description for the trace header.
    pub fn command(mut self, command: &str) -> Self {
        self.command = command.to_string();
        self
    }
}
