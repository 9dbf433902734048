//! What a run is: mesh, mode, model, module tests, faults, detection.

use super::module::Module;
use std::path::PathBuf;
use ttsan_events::{Arch, Role};
use ttsan_sim::{Canaries, DetectMode};

/// Prefill or decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// One prefill of `seq_len` tokens.
    Prefill,
    /// Decode steps after a prefill that fills the KV cache.
    Decode,
}

impl Mode {
    /// The phases a run of `mode` goes through (`None`: prefill, then decode).
    pub fn phases(mode: Option<Mode>) -> &'static [Mode] {
        match mode {
            Some(Mode::Prefill) => &[Mode::Prefill],
            Some(Mode::Decode) => &[Mode::Decode],
            None => &[Mode::Prefill, Mode::Decode],
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Prefill => "prefill",
            Mode::Decode => "decode",
        })
    }
}

/// One test case of a cross-test sequence (`--cases prefill:128,prefill:2048`): a phase and
/// a prompt length, run on the mesh, program cache and CCL manager the earlier cases used, as
/// pytest runs several test ids with one `mesh_device` fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The phase.
    pub mode: Mode,
    /// Prompt tokens.
    pub tokens: usize,
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.mode, self.tokens)
    }
}

/// Where the weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A preset config with random weights (`tiny`, `20b`, `120b`).
    Preset(String),
    /// An HF checkpoint directory.
    Checkpoint(PathBuf),
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Chip architecture.
    pub arch: Arch,
    /// Mesh rows.
    pub rows: u32,
    /// Mesh columns.
    pub cols: u32,
    /// `None`: prefill then decode steps.
    pub mode: Option<Mode>,
    /// Prefill tokens.
    pub seq_len: usize,
    /// Decode steps.
    pub decode_steps: usize,
    /// Layers the module tests run on (the first is used).
    pub layers: Vec<usize>,
    /// Module tests in order (`None`: the whole model).
    pub modules: Option<Vec<Module>>,
    /// The weights.
    pub model: ModelSource,
    /// Random-weight seed.
    pub seed: u64,
    /// Prompt token ids (default: random).
    pub input_ids: Option<Vec<u32>>,
    /// `--inject` values.
    pub inject: Vec<String>,
    /// The cross-test sequence (`--cases`); empty: one case of `mode` and `seq_len`.
    pub cases: Vec<Case>,
    /// Seed of the cross-chip skew (`--skew-seed`, the `ccl-peer-skew` fault): which peer's
    /// writes are late and by how many ops, independent of the weights and inputs.
    pub skew_seed: u64,
    /// `--fix all-reduce`.
    pub fix_all_reduce: bool,
    /// Detection mode.
    pub detect: DetectMode,
    /// Extra guard globs.
    pub guard_globs: Vec<String>,
    /// Guarded roles (default: [`ttsan_sim::GuardSelect::DEFAULT_ROLES`], every role).
    pub guard_roles: Option<Vec<Role>>,
    /// Canaries over free memory in the digest modes (default: all).
    pub canaries: Option<Canaries>,
    /// Digest every op's outputs when it ends (`OutputDigest`, for `ttsan diff`).
    pub digest_outputs: bool,
    /// The command line, for the trace header.
    pub command: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            arch: Arch::WormholeB0,
            rows: 1,
            cols: 8,
            mode: Some(Mode::Prefill),
            seq_len: 32,
            decode_steps: 2,
            layers: vec![0],
            modules: None,
            model: ModelSource::Preset("tiny".into()),
            seed: 21,
            input_ids: None,
            inject: Vec::new(),
            cases: Vec::new(),
            skew_seed: 0,
            fix_all_reduce: false,
            detect: DetectMode::Writes,
            guard_globs: Vec::new(),
            guard_roles: None,
            canaries: None,
            digest_outputs: false,
            command: String::new(),
        }
    }
}
