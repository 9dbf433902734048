//! Which buffers are guarded without a code change: by size, by type, by allocation stack, and
//! "everything allocated before the first compute op".
//!
//! Every criterion given must hold (they narrow each other); with none given, only buffers the
//! program names through `ttsan_guard` are guarded.

use crate::glob::glob_match;
use ttsan_events::Space;

/// A guard selection that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// The minimum size is not a number.
    #[error("guard minimum size `{0}` is not a byte count (e.g. 1048576, 64K, 1M)")]
    Size(String),
    /// An unknown buffer type.
    #[error("unknown guard buffer type `{0}` (known: dram, l1, l1_small, trace)")]
    Type(String),
    /// The preloaded flag is not a boolean.
    #[error("guard-preloaded value `{0}` is not 0 or 1")]
    Flag(String),
    /// The sampling interval is not a positive number.
    #[error("guard sampling interval `{0}` is not a positive number of ops")]
    Every(String),
}

/// What ends the preload phase for `--guard-preloaded`: an op the program marks itself
/// (`ttsan_op_begin`), a mesh-trace replay, or the first op that runs a device program.
/// tt-metal's graph tracker also announces host transfers and tensor creation as ops
/// (`Tensor::to_device`, `tt::tt_metal::copy_to_device`, `tt::tt_metal::create_device_tensor`
/// in ttnn/core/tensor/tensor_ops.cpp), and loading weights is made of exactly those, so an op
/// from the tracker counts only once it runs a program (`GraphTracker::track_program`).
pub const COMPUTE_OP: &str = "compute op";

/// The selection criteria.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardSelection {
    /// Buffers of at least this many bytes.
    pub min_size: Option<u64>,
    /// Buffers in one of these spaces.
    pub spaces: Option<Vec<Space>>,
    /// Buffers with an allocation frame matching one of these globs.
    pub stack_globs: Vec<String>,
    /// Only buffers allocated before the first compute op (see [`COMPUTE_OP`]).
    pub preloaded: bool,
}

/// Parses `1048576`, `64K`, `1M`, `2G` (binary multiples).
fn parse_size(text: &str) -> Result<u64, SelectError> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.trim().parse::<u64>().ok().and_then(|n| n.checked_mul(mult)).ok_or_else(|| SelectError::Size(text.into()))
}

/// The globs of a comma-separated list, blanks dropped.
fn glob_list(list: Option<&str>) -> Vec<String> {
    list.map(|s| s.split(',').map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect()).unwrap_or_default()
}

fn parse_space(name: &str) -> Result<Space, SelectError> {
    let n = name.trim().to_ascii_lowercase();
    Space::ALL.into_iter().find(|s| s.as_str() == n).ok_or_else(|| SelectError::Type(name.trim().into()))
}

impl GuardSelection {
    /// Parses the environment's values (see [`crate::ENV_GUARD_MIN_SIZE`] and friends).
    pub fn parse(
        min_size: Option<&str>,
        types: Option<&str>,
        stack: Option<&str>,
        preloaded: Option<&str>,
    ) -> Result<GuardSelection, SelectError> {
        let spaces = types
            .map(|t| t.split(',').filter(|s| !s.trim().is_empty()).map(parse_space).collect::<Result<Vec<_>, _>>())
            .transpose()?;
        let preloaded = match preloaded.map(str::trim) {
            None | Some("" | "0" | "false" | "no") => false,
            Some("1" | "true" | "yes") => true,
            Some(other) => return Err(SelectError::Flag(other.into())),
        };
        Ok(GuardSelection {
            min_size: min_size.map(parse_size).transpose()?,
            spaces,
            stack_globs: glob_list(stack),
            preloaded,
        })
    }

    /// The environment variables that carry this selection to the shim.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(n) = self.min_size {
            out.push((crate::ENV_GUARD_MIN_SIZE, n.to_string()));
        }
        if let Some(s) = &self.spaces {
            out.push((crate::ENV_GUARD_TYPES, s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")));
        }
        if !self.stack_globs.is_empty() {
            out.push((crate::ENV_GUARD_STACK, self.stack_globs.join(",")));
        }
        if self.preloaded {
            out.push((crate::ENV_GUARD_PRELOADED, "1".into()));
        }
        out
    }

    /// Whether any criterion is set.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.min_size.is_some() || self.spaces.is_some() || !self.stack_globs.is_empty() || self.preloaded
    }

    /// Whether the criteria need the allocation stack's symbol names.
    pub fn needs_symbols(&self) -> bool {
        !self.stack_globs.is_empty()
    }

    /// Why a buffer is guarded, or `None`. `frames` names the allocation stack, one frame per
    /// item; it is only asked for when a stack glob is set.
    pub fn reason(
        &self,
        size: u64,
        space: Space,
        preloading: bool,
        frames: impl FnOnce() -> Vec<String>,
    ) -> Option<String> {
        if !self.is_active() {
            return None;
        }
        let mut why = Vec::new();
        if let Some(min) = self.min_size {
            if size < min {
                return None;
            }
            why.push(format!("size >= {min}"));
        }
        if let Some(spaces) = &self.spaces {
            if !spaces.contains(&space) {
                return None;
            }
            why.push(format!("type {space}"));
        }
        if self.preloaded {
            if !preloading {
                return None;
            }
            why.push(format!("allocated before the first {COMPUTE_OP}"));
        }
        if !self.stack_globs.is_empty() {
            let frames = frames();
            let glob = self.stack_globs.iter().find(|g| frames.iter().any(|f| glob_match(g, f)))?;
            why.push(format!("allocation stack matches `{glob}`"));
        }
        Some(why.join(", "))
    }
}

/// Which top-level op ends compare guard digests: every op by default, or every Nth, or those
/// whose name matches a glob (both given: both must hold). Baselines are taken whatever the
/// sampling, so a skipped op's change shows at the next sampled one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestSampling {
    /// Compare at every Nth top-level op end (1 or absent: every one).
    pub every: Option<u64>,
    /// Compare only after top-level ops whose name matches one of these globs.
    pub ops: Vec<String>,
}

impl DigestSampling {
    /// Parses the environment's values ([`crate::ENV_GUARD_EVERY`], [`crate::ENV_GUARD_OPS`]).
    pub fn parse(every: Option<&str>, ops: Option<&str>) -> Result<DigestSampling, SelectError> {
        let every = match every.map(str::trim) {
            None | Some("") => None,
            Some(n) => match n.parse::<u64>() {
                Ok(0) | Err(_) => return Err(SelectError::Every(n.into())),
                Ok(n) => Some(n),
            },
        };
        Ok(DigestSampling { every, ops: glob_list(ops) })
    }

    /// The environment variables that carry this sampling to the shim.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(n) = self.every {
            out.push((crate::ENV_GUARD_EVERY, n.to_string()));
        }
        if !self.ops.is_empty() {
            out.push((crate::ENV_GUARD_OPS, self.ops.join(",")));
        }
        out
    }

    /// Whether the `nth` top-level op end (counted from 1), of op `name`, compares digests.
    pub fn selects(&self, nth: u64, name: &str) -> bool {
        self.every.is_none_or(|n| nth % n == 0) && (self.ops.is_empty() || self.ops.iter().any(|g| glob_match(g, name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert!(parse_size("big").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn criteria_narrow_each_other() {
        let g = GuardSelection::parse(Some("1K"), Some("dram"), None, Some("1")).unwrap();
        assert!(g.reason(4096, Space::Dram, true, Vec::new).is_some());
        assert!(g.reason(4096, Space::L1, true, Vec::new).is_none());
        assert!(g.reason(512, Space::Dram, true, Vec::new).is_none());
        assert!(g.reason(4096, Space::Dram, false, Vec::new).is_none());
        assert!(GuardSelection::default().reason(1 << 30, Space::Dram, true, Vec::new).is_none());
    }

    #[test]
    fn stack_globs_match_any_frame() {
        let g = GuardSelection::parse(None, None, Some("*load_weights*, *embed*"), None).unwrap();
        let frames = || vec!["main+0x1 (prog)".to_string(), "load_weights(int)+0x2 (prog)".to_string()];
        let why = g.reason(1, Space::L1, false, frames).unwrap();
        assert!(why.contains("*load_weights*"), "{why}");
        assert!(g.reason(1, Space::L1, false, || vec!["main+0x1".into()]).is_none());
    }

    #[test]
    fn env_round_trip_and_errors() {
        let g = GuardSelection::parse(Some("2M"), Some("l1,l1_small"), Some("*a*"), Some("1")).unwrap();
        let env: std::collections::HashMap<_, _> = g.to_env().into_iter().collect();
        let back = GuardSelection::parse(
            env.get(crate::ENV_GUARD_MIN_SIZE).map(String::as_str),
            env.get(crate::ENV_GUARD_TYPES).map(String::as_str),
            env.get(crate::ENV_GUARD_STACK).map(String::as_str),
            env.get(crate::ENV_GUARD_PRELOADED).map(String::as_str),
        )
        .unwrap();
        assert_eq!(back, g);
        assert_eq!(GuardSelection::parse(None, Some("sram"), None, None), Err(SelectError::Type("sram".into())));
        assert!(GuardSelection::parse(None, None, None, Some("maybe")).is_err());
    }

    #[test]
    fn sampling_by_interval_and_by_name() {
        let all = DigestSampling::default();
        assert!((1..5).all(|n| all.selects(n, "ttnn::matmul")));
        let third = DigestSampling::parse(Some("3"), None).unwrap();
        assert_eq!((1..=6).filter(|&n| third.selects(n, "x")).collect::<Vec<_>>(), vec![3, 6]);
        let ccl = DigestSampling::parse(None, Some("*all_gather*, *reduce_scatter*")).unwrap();
        assert!(ccl.selects(1, "ttnn::experimental::all_gather_async"));
        assert!(!ccl.selects(1, "ttnn::matmul"));
        assert_eq!(DigestSampling::parse(Some("0"), None), Err(SelectError::Every("0".into())));
        assert!(DigestSampling::parse(Some("x"), None).is_err());
        let env: std::collections::HashMap<_, _> = ccl.to_env().into_iter().collect();
        assert_eq!(DigestSampling::parse(None, env.get(crate::ENV_GUARD_OPS).map(String::as_str)).unwrap(), ccl);
    }
}
