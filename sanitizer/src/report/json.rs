//! The JSON report (`docs/report-format.md`).

use crate::analyzer::{Analysis, Summary};
use crate::finding::Finding;
use serde::Serialize;

/// Version of the report format; bumped on incompatible changes.
pub const REPORT_VERSION: u32 = 1;

/// Overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Analysis complete, nothing found.
    Clean,
    /// Analysis complete, findings reported.
    Findings,
    /// ttsan could not analyse the run properly; findings (if any) are partial.
    Error,
}

impl Status {
    /// The status name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Clean => "clean",
            Status::Findings => "findings",
            Status::Error => "error",
        }
    }
}

/// What was captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportCapture {
    /// Producer of the trace.
    pub producer: String,
    /// Architecture.
    pub arch: String,
    /// Mesh shape, `RxC`.
    pub mesh: String,
    /// Command or scenario.
    pub command: String,
    /// The tt-metal build a real run used (absent for simulated and imported traces).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tt_metal: Option<String>,
    /// Where the ops of a real run came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops_from: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Report format version.
    pub version: u32,
    /// `ttsan <version>`.
    pub tool: String,
    /// Verdict.
    pub status: Status,
    /// What was captured, if the trace said.
    pub capture: Option<ReportCapture>,
    /// Counts.
    pub summary: Summary,
    /// Findings, worst kind first.
    pub findings: Vec<Finding>,
    /// Why the status is `error`, when it is.
    pub errors: Vec<String>,
    /// Things worth knowing that do not change the verdict.
    pub warnings: Vec<String>,
}

impl Report {
    /// Builds the report of an analysis.
    pub fn new(analysis: Analysis) -> Self {
        let status = if !analysis.errors.is_empty() {
            Status::Error
        } else if analysis.findings.is_empty() {
            Status::Clean
        } else {
            Status::Findings
        };
        let runtime = analysis.runtime;
        Report {
            version: REPORT_VERSION,
            tool: format!("ttsan {}", env!("CARGO_PKG_VERSION")),
            status,
            capture: analysis.capture.map(|c| ReportCapture {
                producer: c.producer,
                arch: c.geometry.arch.to_string(),
                mesh: c.mesh.to_string(),
                command: c.command,
                tt_metal: runtime.as_ref().map(|r| r.build.clone()),
                ops_from: runtime.as_ref().map(|r| r.ops_from.clone()),
            }),
            summary: analysis.summary,
            findings: analysis.findings,
            errors: analysis.errors,
            warnings: analysis.warnings,
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"status\":\"error\",\"errors\":[\"{e}\"]}}"))
    }
}
