//! Suppression files: findings known and accepted, each with a mandatory reason.
//!
//! One entry per line; blank lines and lines starting with `#` are ignored:
//!
//! ```text
//! # kind, op, victim and stack are globs; reason is required
//! kind=use-after-free op=ttnn.experimental.reduce_scatter_* victim=layer*.attn.sinks reason="tt-metal#1234, fixed in 0.82"
//! stack="*ccl_manager.py*" reason="upstream CCL scratch reuse, tracked in #77"
//! ```
//!
//! Values are bare words or double-quoted strings (`\"` and `\\` escape inside quotes). An
//! entry matches a finding when every field it gives matches: `kind` the finding kind, `op`
//! the culprit op name, `victim` the victim buffer's name, `stack` any one frame (line) of the
//! victim's or the related buffer's allocation or free stack. A field given for a finding
//! that lacks it (no culprit, no victim, no stack) does not match. The first matching entry
//! wins.

use super::error::CiError;
use crate::finding::{Finding, FindingKind};
use globset::{Glob, GlobMatcher};
use std::path::{Path, PathBuf};

/// One entry.
#[derive(Debug, Clone)]
pub struct Suppression {
    /// 1-based line in the file.
    pub line: usize,
    /// Kind glob.
    pub kind: Option<String>,
    /// Culprit op glob.
    pub op: Option<String>,
    /// Victim name glob.
    pub victim: Option<String>,
    /// Stack frame glob.
    pub stack: Option<String>,
    /// Why the finding is accepted.
    pub reason: String,
    matchers: Matchers,
}

#[derive(Debug, Clone, Default)]
struct Matchers {
    kind: Option<GlobMatcher>,
    op: Option<GlobMatcher>,
    victim: Option<GlobMatcher>,
    stack: Option<GlobMatcher>,
}

impl Suppression {
    /// Whether this entry matches `f`.
    pub fn matches(&self, f: &Finding) -> bool {
        let m = &self.matchers;
        let field = |glob: &Option<GlobMatcher>, value: Option<&str>| match (glob, value) {
            (None, _) => true,
            (Some(g), Some(v)) => g.is_match(v),
            (Some(_), None) => false,
        };
        field(&m.kind, Some(f.kind.as_str()))
            && field(&m.op, f.culprit.as_ref().map(|c| c.op.as_str()))
            && field(&m.victim, f.victim.as_ref().map(|v| v.name.as_str()))
            && m.stack.as_ref().is_none_or(|g| stacks(f).any(|frame| g.is_match(frame.trim())))
    }

    /// The entry as it would be written back, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [("kind", &self.kind), ("op", &self.op), ("victim", &self.victim), ("stack", &self.stack)] {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        parts.join(" ")
    }
}

/// Every frame of every stack a finding carries.
fn stacks(f: &Finding) -> impl Iterator<Item = &str> {
    let v = f.victim.as_ref();
    let r = f.related.as_ref().map(|r| &r.buffer);
    [v.and_then(|b| b.alloc_stack.as_deref()), v.and_then(|b| b.free_stack.as_deref())]
        .into_iter()
        .chain([r.and_then(|b| b.alloc_stack.as_deref()), r.and_then(|b| b.free_stack.as_deref())])
        .flatten()
        .flat_map(str::lines)
}

/// A parsed suppressions file.
#[derive(Debug, Clone, Default)]
pub struct Suppressions {
    /// Where it came from.
    pub path: PathBuf,
    /// The entries, in file order.
    pub entries: Vec<Suppression>,
}

impl Suppressions {
    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, CiError> {
        let text = std::fs::read_to_string(path).map_err(|source| CiError::Read { path: path.into(), source })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a file; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, CiError> {
        let mut entries = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: String| CiError::Suppression { path: path.into(), line: n + 1, reason };
            entries.push(entry(n + 1, line).map_err(err)?);
        }
        Ok(Suppressions { path: path.into(), entries })
    }

    /// The index of the first entry matching `f`.
    pub fn find(&self, f: &Finding) -> Option<usize> {
        self.entries.iter().position(|s| s.matches(f))
    }
}

fn entry(line: usize, text: &str) -> Result<Suppression, String> {
    let mut s = Suppression {
        line,
        kind: None,
        op: None,
        victim: None,
        stack: None,
        reason: String::new(),
        matchers: Matchers::default(),
    };
    let mut reason = None;
    for (key, value) in pairs(text)? {
        let slot = match key.as_str() {
            "kind" => &mut s.kind,
            "op" => &mut s.op,
            "victim" => &mut s.victim,
            "stack" => &mut s.stack,
            "reason" => &mut reason,
            other => return Err(format!("unknown field `{other}` (fields: kind, op, victim, stack, reason)")),
        };
        if slot.is_some() {
            return Err(format!("`{key}` given twice"));
        }
        *slot = Some(value);
    }
    s.reason = match reason {
        Some(r) if !r.trim().is_empty() => r.trim().to_string(),
        // A suppression nobody can explain is how real bugs get hidden for good.
        _ => return Err("every suppression needs a non-empty reason=\"...\"".into()),
    };
    if s.kind.is_none() && s.op.is_none() && s.victim.is_none() && s.stack.is_none() {
        return Err("give at least one of kind=, op=, victim=, stack= (kind=* suppresses everything)".into());
    }
    s.matchers = Matchers {
        kind: s.kind.as_deref().map(kind_glob).transpose()?,
        op: s.op.as_deref().map(glob).transpose()?,
        victim: s.victim.as_deref().map(glob).transpose()?,
        stack: s.stack.as_deref().map(glob).transpose()?,
    };
    Ok(s)
}

fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    Glob::new(pattern).map(|g| g.compile_matcher()).map_err(|e| format!("bad glob `{pattern}`: {e}"))
}

/// A kind glob must match some kind, so a typo (`oob_write`) is an error, not a dead entry.
fn kind_glob(pattern: &str) -> Result<GlobMatcher, String> {
    let g = glob(pattern)?;
    if FindingKind::ALL.iter().any(|k| g.is_match(k.as_str())) {
        Ok(g)
    } else {
        let known: Vec<&str> = FindingKind::ALL.iter().map(|k| k.as_str()).collect();
        Err(format!("kind `{pattern}` matches no finding kind (kinds: {})", known.join(", ")))
    }
}

/// Splits `key=value key="quoted value"` into pairs.
fn pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|&c| c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        if chars.next_if_eq(&'=').is_none() {
            return Err(format!("expected key=value, found `{key}`"));
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quote in the value of `{key}`")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\')) => value.push(c),
                        Some(c) => {
                            // Glob escapes such as `\*` pass through to globset unchanged.
                            value.push('\\');
                            value.push(c);
                        }
                        None => return Err(format!("unterminated quote in the value of `{key}`")),
                    },
                    Some(c) => value.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(format!("expected a space after the quoted value of `{key}`"));
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::findings;
    use super::*;
    use ttsan_test_support::fixtures;

    fn parse(text: &str) -> Result<Suppressions, CiError> {
        Suppressions::parse(text, Path::new("s.supp"))
    }

    #[test]
    fn entries_match_by_every_given_field() {
        let uaf = &findings(&fixtures::use_after_free())[0];
        let s = parse(
            "# header\n\n\
             kind=oob-write reason=other\n\
             kind=use-after-free op=ttnn.experimental.reduce_scatter_* victim=\"layer*.attn.sinks\" reason=\"tt-metal#1: x\"\n",
        )
        .unwrap();
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.find(uaf), Some(1));
        assert_eq!(s.entries[1].reason, "tt-metal#1: x");
        assert_eq!(s.entries[1].line, 4);
        let s = parse("victim=other.* reason=r").unwrap();
        assert_eq!(s.find(uaf), None);
        // A stack field never matches a finding without stacks.
        let s = parse("stack=* reason=r").unwrap();
        assert_eq!(s.find(uaf), None);
    }

    #[test]
    fn malformed_entries_name_their_line() {
        for (text, needle) in [
            ("kind=oob-write", "reason"),
            ("kind=oob-write reason=\"  \"", "reason"),
            ("reason=why", "at least one"),
            ("kind=oob_write reason=r", "matches no finding kind"),
            ("colour=red reason=r", "unknown field"),
            ("kind=leak kind=leak reason=r", "twice"),
            ("kind=leak reason=\"open", "unterminated"),
            ("op=[ reason=r", "bad glob"),
            ("justaword", "key=value"),
        ] {
            let e = parse(&format!("# c\n{text}\n")).unwrap_err().to_string();
            assert!(e.starts_with("s.supp:2: "), "{text}: {e}");
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn stack_globs_match_single_frames() {
        let mut f = findings(&fixtures::use_after_free())[0].clone();
        if let Some(v) = f.victim.as_mut() {
            v.alloc_stack = Some("model.py:10 forward\nccl_manager.py:55 get_scratch".into());
        }
        assert!(parse("stack=*ccl_manager.py* reason=r").unwrap().find(&f).is_some());
        assert!(parse("stack=model.py:10* reason=r").unwrap().find(&f).is_some());
        assert!(parse("stack=nothing* reason=r").unwrap().find(&f).is_none());
    }
}
