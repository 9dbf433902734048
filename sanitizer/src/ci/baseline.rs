//! Baselines: the findings a project already knows about, so CI fails only on new ones.
//!
//! A finding is identified by its kind, culprit op name and victim buffer name: never by
//! addresses, ids or op indices, which change whenever the allocation pattern does.

use super::error::CiError;
use crate::finding::Finding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// Format version written into baseline files.
pub const BASELINE_VERSION: u32 = 1;

/// The identity of a finding across runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BaselineKey {
    /// Finding kind (`use-after-free`).
    pub kind: String,
    /// Culprit op name, when there was one.
    pub op: Option<String>,
    /// Victim buffer name, when there was one.
    pub victim: Option<String>,
}

impl BaselineKey {
    /// The key of a finding.
    pub fn of(f: &Finding) -> Self {
        BaselineKey {
            kind: f.kind.as_str().to_string(),
            op: f.culprit.as_ref().map(|c| c.op.clone()),
            victim: f.victim.as_ref().map(|v| v.name.clone()),
        }
    }

    /// `kind|op|victim`, stable across runs (for SARIF `partialFingerprints`).
    pub fn fingerprint(&self) -> String {
        format!("{}|{}|{}", self.kind, self.op.as_deref().unwrap_or(""), self.victim.as_deref().unwrap_or(""))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct BaselineFile {
    ttsan_baseline: u32,
    findings: Vec<BaselineKey>,
}

/// A set of known findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    keys: BTreeSet<BaselineKey>,
}

impl Baseline {
    /// The baseline of `findings`.
    pub fn from_findings<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Self {
        Baseline { keys: findings.into_iter().map(BaselineKey::of).collect() }
    }

    /// Reads a baseline file.
    pub fn load(path: &Path) -> Result<Self, CiError> {
        let text = std::fs::read_to_string(path).map_err(|source| CiError::Read { path: path.into(), source })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a baseline file; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, CiError> {
        let bad = |reason: String| CiError::Baseline { path: path.into(), reason };
        let file: BaselineFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if file.ttsan_baseline != BASELINE_VERSION {
            return Err(bad(format!("version {} (this ttsan reads {BASELINE_VERSION})", file.ttsan_baseline)));
        }
        Ok(Baseline { keys: file.findings.into_iter().collect() })
    }

    /// The file's text: sorted, so regenerating an unchanged baseline leaves no diff.
    pub fn to_json(&self) -> String {
        let file = BaselineFile { ttsan_baseline: BASELINE_VERSION, findings: self.keys.iter().cloned().collect() };
        let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Whether `f` is known.
    pub fn contains(&self, f: &Finding) -> bool {
        self.keys.contains(&BaselineKey::of(f))
    }

    /// Number of known findings.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it knows no finding.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::findings;
    use super::*;
    use ttsan_test_support::fixtures;

    #[test]
    fn round_trips_and_ignores_addresses() {
        let uaf = findings(&fixtures::use_after_free());
        let b = Baseline::from_findings(&uaf);
        let back = Baseline::parse(&b.to_json(), Path::new("b.json")).unwrap();
        assert_eq!(back, b);
        let mut moved = uaf[0].clone();
        moved.address += 0x1000;
        moved.device = Some(3);
        assert!(back.contains(&moved));
        moved.victim.as_mut().unwrap().name = "other".into();
        assert!(!back.contains(&moved));
        assert!(!back.contains(&findings(&fixtures::oob_write())[0]));
    }

    #[test]
    fn rejects_other_files() {
        for text in ["{}", "[]", "{\"ttsan_baseline\": 9, \"findings\": []}", "not json"] {
            let e = Baseline::parse(text, Path::new("b.json")).unwrap_err().to_string();
            assert!(e.starts_with("b.json: not a ttsan baseline"), "{e}");
        }
    }
}
