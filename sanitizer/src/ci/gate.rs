//! The CI verdict: run-level checks, then each finding classified as active, suppressed or
//! baselined.

use super::baseline::Baseline;
use super::checks::{check_run, RunFailure, RunFailureKind};
use super::scan::TraceFacts;
use super::suppress::Suppressions;
use crate::analyzer::{Analysis, Summary};
use crate::finding::Finding;
use crate::report::Report;
use serde::Serialize;

/// What the gate is configured with.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Damaged records tolerated; `None`: any number.
    pub max_damaged_records: Option<u64>,
    /// Accepted findings.
    pub suppressions: Option<Suppressions>,
    /// Known findings.
    pub baseline: Option<Baseline>,
}

/// How the gate treats one finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum FindingState {
    /// Fails the run.
    Active,
    /// Matched a suppression entry.
    Suppressed {
        /// 1-based line of the entry in the suppressions file.
        line: usize,
        /// The entry's reason.
        reason: String,
    },
    /// Present in the baseline.
    Baselined,
}

/// The overall outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Everything checked, nothing new found.
    Pass,
    /// Findings that are neither suppressed nor baselined.
    Findings,
    /// A run-level check failed: the result cannot be trusted.
    Failed,
    /// ttsan itself failed.
    Internal,
    /// Memory checks found nothing new, but a check of the workload's own results failed
    /// (e.g. a GPT-OSS module below its PCC threshold).
    Checks,
}

impl Verdict {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Findings => "findings",
            Verdict::Failed => "failed",
            Verdict::Internal => "internal-error",
            Verdict::Checks => "checks-failed",
        }
    }
}

/// A pass/fail check of the workload's own results that the gate reports beside the memory
/// findings: one JUnit test case each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The JUnit class name (e.g. `ttsan.gpt-oss.modules`).
    pub classname: String,
    /// What was checked (e.g. `model decode`).
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// The measured result (e.g. `PCC 0.89900 (threshold 0.95)`).
    pub message: String,
}

/// A report judged for CI.
#[derive(Debug, Clone)]
pub struct Gate {
    /// What was analysed (trace path or command), for the outputs.
    pub subject: String,
    /// The analysis report.
    pub report: Report,
    /// One state per `report.findings` entry.
    pub states: Vec<FindingState>,
    /// Run-level failures.
    pub failures: Vec<RunFailure>,
    /// Suppression entries that matched nothing, as messages.
    pub unused_suppressions: Vec<String>,
    /// Whether a baseline was given (SARIF then marks results new or unchanged).
    pub baseline_given: bool,
    /// Checks of the workload's own results (none for a plain trace).
    pub checks: Vec<Check>,
    /// The outcome.
    pub verdict: Verdict,
}

impl Gate {
    /// Judges `report`.
    pub fn new(subject: impl Into<String>, report: Report, facts: &TraceFacts, policy: &Policy) -> Self {
        let failures = check_run(&report, facts, policy.max_damaged_records);
        let mut used = vec![false; policy.suppressions.as_ref().map_or(0, |s| s.entries.len())];
        let states: Vec<FindingState> = report
            .findings
            .iter()
            .map(|f| {
                if let Some((i, s)) = policy.suppressions.as_ref().and_then(|s| s.find(f).map(|i| (i, &s.entries[i]))) {
                    used[i] = true;
                    FindingState::Suppressed { line: s.line, reason: s.reason.clone() }
                } else if policy.baseline.as_ref().is_some_and(|b| b.contains(f)) {
                    FindingState::Baselined
                } else {
                    FindingState::Active
                }
            })
            .collect();
        let unused_suppressions = policy
            .suppressions
            .iter()
            .flat_map(|s| s.entries.iter().zip(&used).filter(|(_, u)| !**u).map(move |(e, _)| (s, e)))
            .map(|(s, e)| {
                format!("unused suppression {}:{} ({}): it matched no finding", s.path.display(), e.line, e.describe())
            })
            .collect();
        let mut gate = Gate {
            subject: subject.into(),
            report,
            states,
            failures,
            unused_suppressions,
            baseline_given: policy.baseline.is_some(),
            checks: Vec::new(),
            verdict: Verdict::Pass,
        };
        gate.verdict = gate.judge();
        gate
    }

    /// A gate for a run that produced no report at all (unreadable trace, internal error).
    pub fn without_report(subject: impl Into<String>, failure: RunFailure, policy: &Policy) -> Self {
        let analysis = Analysis {
            capture: None,
            findings: Vec::new(),
            summary: Summary::default(),
            errors: vec![failure.message.clone()],
            warnings: Vec::new(),
            runtime: None,
        };
        let mut gate = Gate {
            subject: subject.into(),
            report: Report::new(analysis),
            states: Vec::new(),
            failures: vec![failure],
            unused_suppressions: Vec::new(),
            baseline_given: policy.baseline.is_some(),
            checks: Vec::new(),
            verdict: Verdict::Pass,
        };
        gate.verdict = gate.judge();
        gate
    }

    /// The gate with `checks` added; a failed check fails a run that had nothing worse.
    pub fn with_checks(mut self, checks: Vec<Check>) -> Self {
        self.checks.extend(checks);
        self.verdict = self.judge();
        self
    }

    fn judge(&self) -> Verdict {
        if self.failures.iter().any(|f| f.kind == RunFailureKind::Internal) {
            Verdict::Internal
        } else if !self.failures.is_empty() {
            Verdict::Failed
        } else if self.states.contains(&FindingState::Active) {
            Verdict::Findings
        } else if self.checks.iter().any(|c| !c.passed) {
            Verdict::Checks
        } else {
            Verdict::Pass
        }
    }

    /// Findings with their states.
    pub fn findings(&self) -> impl Iterator<Item = (&Finding, &FindingState)> {
        self.report.findings.iter().zip(&self.states)
    }

    /// Findings that fail the run.
    pub fn active(&self) -> impl Iterator<Item = &Finding> {
        self.findings().filter(|(_, s)| **s == FindingState::Active).map(|(f, _)| f)
    }

    /// (active, suppressed, baselined) finding counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for s in &self.states {
            match s {
                FindingState::Active => c.0 += 1,
                FindingState::Suppressed { .. } => c.1 += 1,
                FindingState::Baselined => c.2 += 1,
            }
        }
        c
    }

    /// The engine's warnings plus the gate's own.
    pub fn warnings(&self) -> impl Iterator<Item = &String> {
        self.report.warnings.iter().chain(&self.unused_suppressions)
    }

    /// The baseline of this run's findings, suppressed ones excluded (they have their own file).
    pub fn baseline(&self) -> Baseline {
        Baseline::from_findings(
            self.findings().filter(|(_, s)| !matches!(s, FindingState::Suppressed { .. })).map(|(f, _)| f),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::scan::TraceFacts;
    use crate::Analyzer;
    use std::path::Path;
    use ttsan_events::Event;
    use ttsan_test_support::fixtures;

    fn gate(events: &[Event], policy: &Policy) -> Gate {
        let mut a = Analyzer::new(Default::default());
        let mut facts = TraceFacts::new();
        for e in events {
            facts.feed(e);
            a.feed(e);
        }
        Gate::new("t", Report::new(a.finish(None)), &facts, policy)
    }

    #[test]
    fn clean_findings_suppressed_and_baselined() {
        let none = Policy::default();
        assert_eq!(gate(&fixtures::clean(), &none).verdict, Verdict::Pass);
        let g = gate(&fixtures::use_after_free(), &none);
        assert_eq!(g.verdict, Verdict::Findings);
        let supp =
            Suppressions::parse("kind=use-after-free reason=known\nkind=leak reason=unused", Path::new("s")).unwrap();
        let g = gate(&fixtures::use_after_free(), &Policy { suppressions: Some(supp), ..Policy::default() });
        assert_eq!(g.verdict, Verdict::Pass);
        assert_eq!(g.counts(), (0, 1, 0));
        assert_eq!(g.unused_suppressions.len(), 1);
        assert!(g.unused_suppressions[0].contains("s:2"), "{:?}", g.unused_suppressions);
        let baseline = gate(&fixtures::use_after_free(), &none).baseline();
        let g = gate(&fixtures::use_after_free(), &Policy { baseline: Some(baseline.clone()), ..Policy::default() });
        assert_eq!((g.verdict, g.counts()), (Verdict::Pass, (0, 0, 1)));
        // A new finding is not excused by a baseline of another.
        let g = gate(&fixtures::oob_write(), &Policy { baseline: Some(baseline), ..Policy::default() });
        assert_eq!(g.verdict, Verdict::Findings);
    }

    #[test]
    fn run_level_failures_win_over_findings() {
        let mut events = fixtures::use_after_free();
        events.insert(1, Event::Mark { text: "shim-error: dlsym(tt::tt_metal::Buffer) failed".into() });
        let g = gate(&events, &Policy::default());
        assert_eq!(g.verdict, Verdict::Failed);
        assert_eq!(g.failures[0].kind, RunFailureKind::ShimFailed);
        assert!(g.failures[0].message.contains("dlsym"));
        let no_allocs: Vec<Event> = fixtures::clean()
            .into_iter()
            .filter(|e| !matches!(e, Event::BufferAlloc(_) | Event::BufferFree(_)))
            .collect();
        let g = gate(&no_allocs, &Policy::default());
        assert_eq!(g.verdict, Verdict::Failed);
        assert!(g.failures.iter().any(|f| f.kind == RunFailureKind::NoAllocations));
        let g = gate(&fixtures::clean()[1..], &Policy::default());
        assert_eq!(g.failures.iter().map(|f| f.kind).collect::<Vec<_>>(), [RunFailureKind::NoCapture]);
    }

    #[test]
    fn a_failed_check_fails_only_a_run_with_nothing_worse() {
        let check = |passed| Check {
            classname: "ttsan.gpt-oss.modules".into(),
            name: "model decode".into(),
            passed,
            message: "PCC 0.89900 (threshold 0.95)".into(),
        };
        let none = Policy::default();
        assert_eq!(gate(&fixtures::clean(), &none).with_checks(vec![check(true)]).verdict, Verdict::Pass);
        let failed = gate(&fixtures::clean(), &none).with_checks(vec![check(true), check(false)]);
        assert_eq!(failed.verdict, Verdict::Checks);
        assert_eq!(failed.verdict.as_str(), "checks-failed");
        let junit = crate::ci::junit::render(&failed);
        assert!(junit.contains(r#"tests="3" failures="1""#), "{junit}");
        assert!(junit.contains(r#"<failure type="check" message="PCC 0.89900 (threshold 0.95)">"#), "{junit}");
        // Findings (and run-level failures) keep their verdicts and exit codes.
        let g = gate(&fixtures::use_after_free(), &none).with_checks(vec![check(false)]);
        assert_eq!(g.verdict, Verdict::Findings);
    }
}
