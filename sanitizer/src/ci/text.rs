//! Short texts about findings shared by the outputs.

use crate::finding::Finding;
use crate::report::{render_text, Report, TextOptions};

/// `kind: op -> victim`, the identity a human scans for.
pub(crate) fn title(f: &Finding) -> String {
    let op = f.culprit.as_ref().map_or("(no op)", |c| c.op.as_str());
    let victim = f.victim.as_ref().map_or("(no buffer)", |v| v.name.as_str());
    format!("{}: {op} -> {victim}", f.kind)
}

/// The finding's full ASan-style block, exactly as `ttsan analyze` prints it.
pub(crate) fn block(report: &Report, f: &Finding) -> String {
    let single = Report { findings: vec![f.clone()], errors: Vec::new(), ..report.clone() };
    let text = render_text(&single, TextOptions { print_limit: 1 });
    // The rendering ends with a blank line and the SUMMARY line, which belong to the report.
    let body: Vec<&str> = text.lines().take_while(|l| !l.starts_with("SUMMARY: ")).collect();
    body.join("\n").trim_end().to_string()
}

/// The mechanism, or a sentence built from the place when the detector left none.
pub(crate) fn mechanism(f: &Finding) -> String {
    if f.mechanism.is_empty() {
        format!("{} of {} bytes on {} at {:#x}", f.kind, f.size, f.place(), f.address)
    } else {
        f.mechanism.clone()
    }
}
