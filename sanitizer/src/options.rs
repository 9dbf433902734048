//! Analysis options, and the `TTSAN_OPTIONS` syntax shared by every command.

use thiserror::Error;

/// Knobs of the analysis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisOptions {
    /// How many recent frees the quarantine remembers.
    pub quarantine: usize,
    /// Report buffers alive at the end of the trace.
    pub leaks: bool,
    /// Distinct findings kept at most (repeats are merged and never count against it).
    pub max_findings: usize,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions { quarantine: 4096, leaks: false, max_findings: 10_000 }
    }
}

/// A malformed `TTSAN_OPTIONS` value.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptionsError {
    /// An entry without `=`.
    #[error("TTSAN_OPTIONS entry `{0}` is not of the form key=value")]
    NotKeyValue(String),
    /// A key no command knows.
    #[error("unknown TTSAN_OPTIONS key `{key}` (known: {known})")]
    UnknownKey {
        /// The key.
        key: String,
        /// The keys that exist.
        known: String,
    },
    /// A value of the wrong type.
    #[error("TTSAN_OPTIONS {key}={value}: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What was expected.
        reason: String,
    },
}

/// Splits `TTSAN_OPTIONS` into key/value pairs. Entries are separated by `:`, spaces or commas,
/// as `ASAN_OPTIONS` allows; values may be quoted with `'` or `"` to contain separators.
pub fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, OptionsError> {
    let mut out = Vec::new();
    let mut entry = String::new();
    let mut quote: Option<char> = None;
    let flush = |entry: &mut String, out: &mut Vec<(String, String)>| -> Result<(), OptionsError> {
        let e = std::mem::take(entry);
        if e.trim().is_empty() {
            return Ok(());
        }
        let (k, v) = e.split_once('=').ok_or_else(|| OptionsError::NotKeyValue(e.clone()))?;
        out.push((k.trim().to_string(), v.to_string()));
        Ok(())
    };
    for ch in text.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => entry.push(c),
            (None, '\'' | '"') => quote = Some(ch),
            (None, ':' | ' ' | ',' | '\n' | '\t') => flush(&mut entry, &mut out)?,
            (None, c) => entry.push(c),
        }
    }
    flush(&mut entry, &mut out)?;
    Ok(out)
}

/// Parses a boolean option value (`1`/`0`, `true`/`false`, `yes`/`no`).
pub fn parse_bool(key: &str, value: &str) -> Result<bool, OptionsError> {
    match value {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(OptionsError::BadValue { key: key.into(), value: value.into(), reason: "expected 0 or 1".into() }),
    }
}

/// Parses a non-negative integer option value.
pub fn parse_u64(key: &str, value: &str) -> Result<u64, OptionsError> {
    value.parse().map_err(|_| OptionsError::BadValue {
        key: key.into(),
        value: value.into(),
        reason: "expected a non-negative integer".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_asan_options() {
        let p = parse_pairs("quarantine=10:leaks=1 format=json,suppressions='a b.txt'").unwrap();
        assert_eq!(
            p,
            vec![
                ("quarantine".into(), "10".into()),
                ("leaks".into(), "1".into()),
                ("format".into(), "json".into()),
                ("suppressions".into(), "a b.txt".into())
            ]
        );
        assert_eq!(parse_pairs("oops").unwrap_err(), OptionsError::NotKeyValue("oops".into()));
        assert!(parse_bool("leaks", "maybe").is_err());
        assert_eq!(parse_u64("q", "12").unwrap(), 12);
    }
}
