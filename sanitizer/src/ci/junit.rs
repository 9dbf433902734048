//! JUnit XML, in the shape Jenkins' `junit-10.xsd` accepts (GitLab, GitHub test-report
//! actions and Buildkite read the same).
//!
//! One test case for the guarded run itself (errors for run-level failures, a failure when
//! new findings exist), and one per finding: a failure carrying the finding's full text, or
//! a skip saying why it was suppressed or baselined; then one per check of the workload's own
//! results (a GPT-OSS module's PCC), a failure when it did not pass.

use super::gate::{FindingState, Gate};
use super::text::{block, mechanism, title};
use super::xml::{escape, escape_text};
use std::fmt::Write as _;

/// Renders the JUnit XML document.
pub fn render(gate: &Gate) -> String {
    let (active, suppressed, baselined) = gate.counts();
    let tests = 1 + gate.states.len() + gate.checks.len();
    let run_failed = !gate.failures.is_empty();
    let errors = usize::from(run_failed);
    let failed_checks = gate.checks.iter().filter(|c| !c.passed).count();
    let failures = active + usize::from(!run_failed && active > 0) + failed_checks;
    let skipped = suppressed + baselined;
    let mut x = String::new();
    let _ = writeln!(x, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(x, r#"<testsuites name="ttsan" tests="{tests}" failures="{failures}" errors="{errors}">"#);
    let _ = writeln!(
        x,
        r#"  <testsuite name="ttsan: {}" tests="{tests}" failures="{failures}" errors="{errors}" skipped="{skipped}" time="0">"#,
        escape(&gate.subject)
    );
    let _ = writeln!(x, "    <properties>");
    let mut props = vec![
        ("tool", gate.report.tool.clone()),
        ("verdict", gate.verdict.as_str().to_string()),
        ("status", gate.report.status.as_str().to_string()),
    ];
    if let Some(c) = &gate.report.capture {
        props.push(("producer", c.producer.clone()));
        props.push(("mesh", format!("{} {}", c.arch, c.mesh)));
        props.push(("command", c.command.clone()));
    }
    for (name, value) in props {
        let _ = writeln!(x, r#"      <property name="{name}" value="{}"/>"#, escape(&value));
    }
    let _ = writeln!(x, "    </properties>");
    run_case(&mut x, gate, active);
    for (i, (f, state)) in gate.findings().enumerate() {
        let _ = writeln!(
            x,
            r#"    <testcase classname="ttsan.findings.{}" name="{} (#{})" time="0">"#,
            f.kind,
            escape(&title(f)),
            i + 1
        );
        match state {
            FindingState::Active => {
                let _ = writeln!(
                    x,
                    r#"      <failure type="{}" message="{}">{}</failure>"#,
                    f.kind,
                    escape(&mechanism(f)),
                    escape_text(&block(&gate.report, f))
                );
            }
            FindingState::Suppressed { line, reason } => {
                let _ = writeln!(x, r#"      <skipped message="suppressed (line {line}): {}"/>"#, escape(reason));
                let _ = writeln!(x, "      <system-out>{}</system-out>", escape_text(&block(&gate.report, f)));
            }
            FindingState::Baselined => {
                let _ = writeln!(x, r#"      <skipped message="in the baseline: a known finding"/>"#);
                let _ = writeln!(x, "      <system-out>{}</system-out>", escape_text(&block(&gate.report, f)));
            }
        }
        let _ = writeln!(x, "    </testcase>");
    }
    for c in &gate.checks {
        let _ =
            writeln!(x, r#"    <testcase classname="{}" name="{}" time="0">"#, escape(&c.classname), escape(&c.name));
        if c.passed {
            let _ = writeln!(x, "      <system-out>{}</system-out>", escape_text(&c.message));
        } else {
            let _ = writeln!(
                x,
                r#"      <failure type="check" message="{}">{}</failure>"#,
                escape(&c.message),
                escape_text(&c.message)
            );
        }
        let _ = writeln!(x, "    </testcase>");
    }
    let _ = writeln!(x, "  </testsuite>");
    let _ = writeln!(x, "</testsuites>");
    x
}

fn run_case(x: &mut String, gate: &Gate, active: usize) {
    let _ = writeln!(x, r#"    <testcase classname="ttsan.run" name="{}" time="0">"#, escape(&gate.subject));
    for f in &gate.failures {
        let _ = writeln!(
            x,
            r#"      <error type="{}" message="{}">{}</error>"#,
            f.kind.as_str(),
            escape(&f.message),
            escape_text(&f.message)
        );
    }
    if active > 0 {
        let list: Vec<String> = gate.active().map(|f| format!("{} ({})", title(f), f.place())).collect();
        let _ = writeln!(
            x,
            r#"      <failure type="findings" message="{active} new finding(s)">{}</failure>"#,
            escape_text(&list.join("\n"))
        );
    }
    let s = &gate.report.summary;
    let mut out = format!(
        "{} events, {} ops, {} allocations, {} writes, {} guard digests",
        s.events, s.ops, s.allocations, s.writes, s.digests
    );
    for w in gate.warnings() {
        let _ = write!(out, "\nwarning: {w}");
    }
    let _ = writeln!(x, "      <system-out>{}</system-out>", escape_text(&out));
    let _ = writeln!(x, "    </testcase>");
}
