//! The JSON report of a gated run: the ordinary report (docs/report-format.md) with a `ci`
//! object per finding (its state and, when suppressed, the reason) and a top-level `ci`
//! object (verdict, run-level failures, unused suppressions). Readers of the plain report
//! keep working: only fields are added.

use super::gate::Gate;
use serde_json::{json, Value};

/// The report as a JSON value.
pub fn value(gate: &Gate) -> Value {
    let mut v = serde_json::to_value(&gate.report).unwrap_or_else(|_| json!({}));
    if let Some(findings) = v.get_mut("findings").and_then(Value::as_array_mut) {
        for (f, state) in findings.iter_mut().zip(&gate.states) {
            f["ci"] = serde_json::to_value(state).unwrap_or(Value::Null);
        }
    }
    let (active, suppressed, baselined) = gate.counts();
    v["ci"] = json!({
        "subject": gate.subject,
        "verdict": gate.verdict.as_str(),
        "failures": gate.failures,
        "active": active,
        "suppressed": suppressed,
        "baselined": baselined,
        "unused_suppressions": gate.unused_suppressions,
        "checks": gate.checks,
    });
    v
}

/// The report as pretty-printed JSON.
pub fn render(gate: &Gate) -> String {
    serde_json::to_string_pretty(&value(gate)).unwrap_or_default()
}
