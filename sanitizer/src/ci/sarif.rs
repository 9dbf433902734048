//! SARIF 2.1.0: findings as results of rules named after the finding kinds.
//!
//! Device memory has no source file, so results carry logical locations only: the culprit op
//! (kind `function`) and the victim buffer (kind `variable`). Suppressed findings carry a
//! SARIF `suppressions` entry with the reason as justification; with a baseline, results are
//! marked `new` or `unchanged`. Run-level failures become tool execution notifications and
//! `executionSuccessful: false`.

use super::gate::{FindingState, Gate};
use super::text::{block, mechanism};
use crate::finding::{Finding, FindingKind};
use serde_json::{json, Value};

/// The `$schema` written into the log.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Renders the SARIF log.
pub fn render(gate: &Gate) -> String {
    serde_json::to_string_pretty(&log(gate)).unwrap_or_default()
}

/// The SARIF log as a JSON value.
pub fn log(gate: &Gate) -> Value {
    let rules: Vec<Value> = FindingKind::ALL.iter().map(|&k| rule(k)).collect();
    let results: Vec<Value> = gate.findings().map(|(f, s)| result(gate, f, s)).collect();
    let notifications: Vec<Value> = gate
        .failures
        .iter()
        .map(|f| {
            json!({
                "level": "error",
                "message": { "text": f.message },
                "descriptor": { "id": f.kind.as_str() },
            })
        })
        .chain(gate.warnings().map(|w| json!({ "level": "warning", "message": { "text": w } })))
        .collect();
    let mut invocation = json!({
        "executionSuccessful": gate.failures.is_empty(),
        "toolExecutionNotifications": notifications,
    });
    if let Some(c) = &gate.report.capture {
        invocation["commandLine"] = json!(c.command);
    }
    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "ttsan",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/ttsan",
                "rules": rules,
            }},
            "invocations": [invocation],
            "results": results,
            "properties": {
                "subject": gate.subject,
                "verdict": gate.verdict.as_str(),
                "status": gate.report.status.as_str(),
            },
        }],
    })
}

fn rule(kind: FindingKind) -> Value {
    json!({
        "id": kind.as_str(),
        "name": kind.as_str(),
        "shortDescription": { "text": describe(kind) },
        "defaultConfiguration": { "level": "error" },
    })
}

fn describe(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::OobWrite => "A write ran past the end or start of a device buffer",
        FindingKind::UseAfterFree => "A write into freed device memory",
        FindingKind::ForeignWrite => "A write into a live buffer the writing op does not declare",
        FindingKind::WildWrite => "A write where no buffer is allocated",
        FindingKind::GuardCorruption => "A guarded buffer changed across an op that does not write it",
        FindingKind::Overlap => "Two live allocations share bytes",
        FindingKind::CbClash => "A program's circular buffers overlap an L1 buffer",
        FindingKind::DoubleFree => "A buffer was freed twice",
        FindingKind::UnknownFree => "A free of a buffer that was never allocated",
        FindingKind::Leak => "A buffer still alive at the end of the run",
    }
}

fn result(gate: &Gate, f: &Finding, state: &FindingState) -> Value {
    let mut logical = Vec::new();
    if let Some(c) = &f.culprit {
        logical.push(json!({
            "name": c.op,
            "fullyQualifiedName": format!("op #{} {} (call {})", c.op_index, c.op, c.call),
            "kind": "function",
        }));
    }
    if let Some(v) = &f.victim {
        logical.push(json!({
            "name": v.name,
            "fullyQualifiedName": format!("{} buffer {} (id {})", v.space, v.name, v.id),
            "kind": "variable",
        }));
    }
    let rule_index = FindingKind::ALL.iter().position(|&k| k == f.kind).unwrap_or(0);
    let mut r = json!({
        "ruleId": f.kind.as_str(),
        "ruleIndex": rule_index,
        "level": "error",
        "kind": "fail",
        "message": { "text": mechanism(f) },
        "partialFingerprints": { "ttsanFinding/v1": super::baseline::BaselineKey::of(f).fingerprint() },
        "properties": {
            "place": f.place(),
            "address": f.address,
            "size": f.size,
            "count": f.count,
            "devices": f.devices,
            "report": block(&gate.report, f),
        },
    });
    if !logical.is_empty() {
        r["locations"] = json!([{ "logicalLocations": logical }]);
    }
    match state {
        FindingState::Suppressed { line, reason } => {
            r["suppressions"] = json!([{
                "kind": "external",
                "status": "accepted",
                "justification": reason,
                "properties": { "line": line },
            }]);
        }
        FindingState::Baselined => r["baselineState"] = json!("unchanged"),
        FindingState::Active if gate.baseline_given => r["baselineState"] = json!("new"),
        FindingState::Active => {}
    }
    r
}
