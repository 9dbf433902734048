//! The ASan-style text report.

use super::json::{Report, Status};
use crate::finding::{BufferRef, Finding, Relation};
use std::fmt::Write as _;

/// Text rendering options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextOptions {
    /// Findings printed in full at most; the rest are counted.
    pub print_limit: usize,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions { print_limit: 50 }
    }
}

/// Renders the report as text: one block per finding, then a summary line.
pub fn render_text(report: &Report, options: TextOptions) -> String {
    let mut out = String::new();
    if let Some(c) = &report.capture {
        if let (Some(build), Some(ops)) = (&c.tt_metal, &c.ops_from) {
            let _ = writeln!(out, "==ttsan== tt-metal: {build}; ops from {ops}");
        }
    }
    for f in report.findings.iter().take(options.print_limit) {
        finding_block(&mut out, f);
        out.push('\n');
    }
    let hidden = report.findings.len().saturating_sub(options.print_limit);
    if hidden > 0 {
        let _ = writeln!(out, "... {hidden} more finding(s) not shown (raise --print-limit or read the JSON report)\n");
    }
    for e in &report.errors {
        let _ = writeln!(out, "==ttsan== ERROR: ttsan could not complete the analysis: {e}");
    }
    let _ = writeln!(out, "{}", summary_line(report));
    out
}

/// `SUMMARY: ttsan: ...`.
pub fn summary_line(report: &Report) -> String {
    let s = &report.summary;
    let counts = format!("{} events, {} ops, {} allocations", s.events, s.ops, s.allocations);
    match report.status {
        Status::Clean => format!("SUMMARY: ttsan: clean: no findings in {counts}"),
        Status::Findings | Status::Error => {
            let kinds: Vec<String> = s.by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
            let verdict = if report.status == Status::Error { "error" } else { "findings" };
            format!(
                "SUMMARY: ttsan: {verdict}: {} finding(s) ({}) in {counts}",
                report.findings.len(),
                if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") }
            )
        }
    }
}

fn finding_block(out: &mut String, f: &Finding) {
    let _ = writeln!(out, "==ttsan== ERROR: {} on {} at {:#010x} ({} bytes)", f.kind, f.place(), f.address, f.size);
    if let Some(c) = &f.culprit {
        let on = match c.chips.as_slice() {
            [] => String::new(),
            [chip] => format!(" on chip {chip}"),
            chips => format!(" on chips {chips:?}"),
        };
        let _ = writeln!(out, "  culprit: op #{} {} (call {}){on}", c.op_index, c.op, c.call);
    }
    if let Some(v) = &f.victim {
        buffer_lines(out, "victim:  ", v);
        if f.size > 0 {
            let (start, end) = (v.address, v.address + v.size_per_unit);
            if f.address >= start && f.address < end {
                let _ = writeln!(
                    out,
                    "  {:#010x} is {} bytes inside the {}-byte region [{:#010x}, {:#010x}) of '{}' on this {}",
                    f.address,
                    f.address - start,
                    v.size_per_unit,
                    start,
                    end,
                    v.name,
                    unit_word(f)
                );
            }
        }
    } else if matches!(f.kind, crate::FindingKind::WildWrite | crate::FindingKind::UseAfterFree) {
        let _ = writeln!(out, "  victim:  none (no live buffer owns these bytes)");
    }
    if let Some(r) = &f.related {
        buffer_lines(out, &format!("related: [{}] ", r.relation.as_str()), &r.buffer);
        let (start, end) = (r.buffer.address, r.buffer.address + r.buffer.size_per_unit);
        let line = match r.relation {
            Relation::PastEnd => Some(format!(
                "{:#010x} is {} bytes to the right of the {}-byte region [{:#010x}, {:#010x}) of '{}'",
                f.address, r.distance, r.buffer.size_per_unit, start, end, r.buffer.name
            )),
            Relation::BeforeStart => Some(format!(
                "the bad bytes end {} bytes to the left of the {}-byte region [{:#010x}, {:#010x}) of '{}'",
                r.distance, r.buffer.size_per_unit, start, end, r.buffer.name
            )),
            Relation::StaleAddress => Some(format!(
                "{:#010x} is inside the {}-byte region [{:#010x}, {:#010x}) of freed '{}'",
                f.address, r.buffer.size_per_unit, start, end, r.buffer.name
            )),
            Relation::PeerAddress => Some(format!(
                "'{}' occupies [{:#010x}, {:#010x}) on device {}",
                r.buffer.name,
                start,
                end,
                r.peer_device.map(|d| d.to_string()).unwrap_or_else(|| "?".into())
            )),
            Relation::Overlap | Relation::Declared => None,
        };
        if let Some(line) = line {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !f.pages.is_empty() {
        let shown: Vec<String> = f.pages.iter().take(16).map(u64::to_string).collect();
        let more = if f.pages.len() > 16 { format!(" and {} more", f.pages.len() - 16) } else { String::new() };
        let _ = writeln!(out, "  changed pages: {}{more}", shown.join(", "));
    }
    if !f.mechanism.is_empty() {
        let _ = writeln!(out, "  mechanism: {}", f.mechanism);
    }
    if f.confirmed_by_digest {
        let _ = writeln!(out, "  confirmed: the victim's guard digest changed across the same op");
    }
    if f.count > 1 {
        let devices: Vec<String> = f.devices.iter().map(u32::to_string).collect();
        let _ = writeln!(out, "  seen {} times (devices {})", f.count, devices.join(","));
    }
}

fn unit_word(f: &Finding) -> &'static str {
    if f.bank.is_some() {
        "bank"
    } else {
        "core"
    }
}

fn buffer_lines(out: &mut String, label: &str, b: &BufferRef) {
    let device = b.device.map(|d| format!("device {d}")).unwrap_or_else(|| "mesh".into());
    let _ = writeln!(
        out,
        "  {label}'{}' (id {}, {}, {} {} {}, {} bytes, {} per bank/core at {:#010x}{})",
        b.name,
        b.id,
        b.role,
        device,
        b.space,
        b.layout,
        b.size,
        b.size_per_unit,
        b.address,
        if b.freed { ", freed" } else { "" }
    );
    let pad = " ".repeat(label.len() + 2);
    match &b.allocated_by {
        Some(op) => {
            let _ = writeln!(out, "{pad}allocated by op {op}");
        }
        None => {
            let _ = writeln!(out, "{pad}allocated by the host (outside any op)");
        }
    }
    if let Some(stack) = &b.alloc_stack {
        stack_lines(out, &pad, stack);
    }
    match (&b.freed_by, b.freed) {
        (Some(op), _) => {
            let _ = writeln!(out, "{pad}freed by op {op}");
        }
        (None, true) => {
            let _ = writeln!(out, "{pad}freed by the host (outside any op)");
        }
        (None, false) => {}
    }
    if let Some(stack) = &b.free_stack {
        stack_lines(out, &pad, stack);
    }
}

fn stack_lines(out: &mut String, pad: &str, stack: &str) {
    for (i, frame) in stack.lines().take(16).enumerate() {
        let _ = writeln!(out, "{pad}  #{i} {frame}");
    }
}
