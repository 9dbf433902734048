//! The short summary CI logs show: a few lines a reviewer reads, never thousands.
//!
//! One line per group of findings (same kind, culprit op and victim), worst first, then the
//! run-level failures, then where the full report is. At most [`MAX_LINES`] lines whatever
//! the run produced.

use super::gate::{FindingState, Gate, Verdict};
use super::text::title;
use crate::finding::Finding;

/// The summary never exceeds this many lines.
pub const MAX_LINES: usize = 20;

struct Group<'a> {
    first: &'a Finding,
    state: &'a FindingState,
    findings: usize,
    occurrences: u64,
    devices: Vec<u32>,
}

/// Renders the summary; `full_report` says where the complete report was written, if it was.
pub fn render(gate: &Gate, full_report: Option<&str>) -> String {
    let (active, suppressed, baselined) = gate.counts();
    let s = &gate.report.summary;
    let verdict = match gate.verdict {
        Verdict::Pass => "PASS",
        Verdict::Findings => "FAIL (findings)",
        Verdict::Failed => "FAIL (run not checked)",
        Verdict::Internal => "FAIL (internal error)",
        Verdict::Checks => "FAIL (checks)",
    };
    let mut lines = vec![format!(
        "ttsan ci: {verdict}: {active} new finding(s), {suppressed} suppressed, {baselined} baselined \
         in {} events, {} ops, {} allocations [{}]",
        s.events, s.ops, s.allocations, gate.subject
    )];
    let warnings = gate.warnings().count();
    let footer = 1 + usize::from(warnings > 0);
    let mut body = Vec::new();
    for f in &gate.failures {
        body.push(format!("  ERROR {}: {}", f.kind.as_str(), f.message));
    }
    for c in gate.checks.iter().filter(|c| !c.passed) {
        body.push(format!("  FAIL {}: {}", c.name, c.message));
    }
    let groups = groups(gate);
    for g in &groups {
        body.push(group_line(g));
    }
    let room = MAX_LINES - lines.len() - footer;
    if body.len() > room {
        let hidden = body.len() - (room - 1);
        body.truncate(room - 1);
        body.push(format!("  ... and {hidden} more line(s) in the full report"));
    }
    lines.extend(body);
    if warnings > 0 {
        lines.push(format!("  {warnings} warning(s): see stderr or the full report"));
    }
    lines.push(match full_report {
        Some(path) => format!("full report: {path}"),
        None => "full report: not written (give --json FILE)".to_string(),
    });
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn groups(gate: &Gate) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for (f, state) in gate.findings() {
        let key = title(f);
        match groups.iter_mut().find(|g| title(g.first) == key && g.state == state) {
            Some(g) => {
                g.findings += 1;
                g.occurrences += f.count;
                g.devices.extend(&f.devices);
            }
            None => {
                groups.push(Group { first: f, state, findings: 1, occurrences: f.count, devices: f.devices.clone() })
            }
        }
    }
    let rank = |s: &FindingState| match s {
        FindingState::Active => 0,
        FindingState::Baselined => 1,
        FindingState::Suppressed { .. } => 2,
    };
    // Stable: within a state, the report's worst-first order stands.
    groups.sort_by_key(|g| (rank(g.state), g.first.kind.severity()));
    for g in &mut groups {
        g.devices.sort_unstable();
        g.devices.dedup();
    }
    groups
}

fn group_line(g: &Group<'_>) -> String {
    let tag = match g.state {
        FindingState::Active => "FAIL".to_string(),
        FindingState::Baselined => "base".to_string(),
        FindingState::Suppressed { .. } => "supp".to_string(),
    };
    let devices = match g.devices.as_slice() {
        [] => String::new(),
        [d] => format!(", device {d}"),
        ds => format!(", {} devices", ds.len()),
    };
    let why = match g.state {
        FindingState::Suppressed { line, reason } => format!(" [suppressed, line {line}: {reason}]"),
        FindingState::Baselined => " [in baseline]".to_string(),
        FindingState::Active => String::new(),
    };
    format!("  {tag}  {} ({} finding(s), {} occurrence(s){devices}){why}", title(g.first), g.findings, g.occurrences)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::{Policy, TraceFacts};
    use crate::finding::FindingKind;
    use crate::report::Report;
    use crate::Analyzer;
    use ttsan_test_support::fixtures;

    #[test]
    fn never_longer_than_the_limit() {
        let mut a = Analyzer::new(Default::default());
        for e in &fixtures::oob_write() {
            a.feed(e);
        }
        let mut report = Report::new(a.finish(None));
        let template = report.findings[0].clone();
        report.findings = (0..500)
            .map(|i| {
                let mut f = template.clone();
                f.kind = FindingKind::ALL[i % FindingKind::ALL.len()];
                if let Some(v) = f.victim.as_mut() {
                    v.name = format!("buffer{i}");
                }
                f
            })
            .collect();
        let facts = TraceFacts { capture_started: true, ..TraceFacts::default() };
        let gate = Gate::new("t.ttsan", report, &facts, &Policy::default());
        let text = render(&gate, Some("r.json"));
        assert_eq!(text.lines().count(), MAX_LINES, "{text}");
        assert!(text.lines().nth(1).unwrap().contains("guard-corruption"), "worst first:\n{text}");
        assert!(text.contains("more line(s) in the full report"));
        assert!(text.ends_with("full report: r.json\n"));
    }
}
