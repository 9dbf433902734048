//! `TTSAN_OPTIONS`: defaults for command-line flags, as `ASAN_OPTIONS` works for ASan.
//!
//! Flags given on the command line always win over `TTSAN_OPTIONS`.

use anyhow::{bail, Result};
use std::collections::BTreeMap;
use ttsan_sanitizer::options::{parse_bool, parse_pairs, parse_u64};

/// Keys `TTSAN_OPTIONS` may set.
pub const KNOWN_KEYS: &[&str] = &[
    "quarantine",
    "leaks",
    "detect_leaks",
    "print_limit",
    "error_exitcode",
    "format",
    "json",
    "html",
    "ci",
    "junit",
    "sarif",
    "suppressions",
    "baseline",
    "write_baseline",
    "max_damaged_records",
    "guard_role",
    "canary",
];

/// Parsed `TTSAN_OPTIONS`.
#[derive(Debug, Default, Clone)]
pub struct EnvOptions {
    values: BTreeMap<String, String>,
}

impl EnvOptions {
    /// Reads and validates `TTSAN_OPTIONS` from the environment.
    pub fn from_env() -> Result<Self> {
        match std::env::var("TTSAN_OPTIONS") {
            Ok(text) => Self::parse(&text),
            Err(_) => Ok(EnvOptions::default()),
        }
    }

    /// Parses a `TTSAN_OPTIONS` value.
    pub fn parse(text: &str) -> Result<Self> {
        let mut values = BTreeMap::new();
        for (k, v) in parse_pairs(text)? {
            if !KNOWN_KEYS.contains(&k.as_str()) {
                bail!("unknown TTSAN_OPTIONS key `{k}` (known: {})", KNOWN_KEYS.join(", "));
            }
            let k = if k == "detect_leaks" { "leaks".to_string() } else { k };
            values.insert(k, v);
        }
        Ok(EnvOptions { values })
    }

    /// A string option.
    pub fn string(&self, key: &str) -> Option<String> {
        self.values.get(key).cloned()
    }

    /// An integer option.
    pub fn u64(&self, key: &str) -> Result<Option<u64>> {
        self.values.get(key).map(|v| parse_u64(key, v)).transpose().map_err(Into::into)
    }

    /// A boolean option.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        self.values.get(key).map(|v| parse_bool(key, v)).transpose().map_err(Into::into)
    }
}
