//! `ttsan diff A B`: the first op after which two runs of the same workload left different
//! bytes (see `ttsan_sanitizer::diff`).

use super::exit::{Failure, Outcome, CLEAN, FINDINGS};
use anyhow::{anyhow, Context as _};
use clap::Args;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use ttsan_events::trace::read_all;
use ttsan_events::Event;
use ttsan_sanitizer::diff::{diff, DiffItem, DiffOutcome, DigestKind, Divergence, Wrote};

/// Arguments of `ttsan diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first run's trace.
    pub a: PathBuf,
    /// The second run's trace (the same workload).
    pub b: PathBuf,
}

/// Compares the two traces; exit 0 when every op left the same digests, 1 when one did not (or
/// the runs ran different ops), 2 when a trace is unreadable or has nothing to compare.
pub fn run(args: &DiffArgs) -> Outcome {
    let a = read(&args.a)?;
    let b = read(&args.b)?;
    let outcome = diff(&a, &b).map_err(|e| Failure::usage(anyhow!(e)))?;
    print!("{}", render(&outcome, &args.a, &args.b));
    Ok(match outcome {
        DiffOutcome::Same { .. } => CLEAN,
        DiffOutcome::Differs(_) | DiffOutcome::OpsDiverge { .. } => FINDINGS,
    })
}

fn read(path: &Path) -> Result<Vec<Event>, Failure> {
    let (events, stats) = read_all(path).with_context(|| path.display().to_string()).map_err(Failure::usage)?;
    if stats.is_damaged() {
        eprintln!("ttsan: warning: {}: damaged records skipped: {stats:?}", path.display());
    }
    Ok(events)
}

/// The report, one finding per line group, ASan style.
fn render(outcome: &DiffOutcome, a: &Path, b: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "==ttsan diff== A: {}  B: {}", a.display(), b.display());
    match outcome {
        DiffOutcome::Same { ops, compared } => {
            let _ = writeln!(s, "no difference: {ops} ops, {compared} digest comparisons, every one equal");
        }
        DiffOutcome::OpsDiverge { op, a, b } => {
            let _ = writeln!(s, "the runs ran different ops: top-level op {} is `{a}` in A and `{b}` in B", op + 1);
        }
        DiffOutcome::Differs(d) => render_divergence(&mut s, d),
    }
    s
}

fn render_divergence(s: &mut String, d: &Divergence) {
    if d.call == 0 {
        let _ = writeln!(s, "the runs differ before the first op (their guarded buffers' first digests)");
    } else {
        let _ = writeln!(s, "first difference after op #{} `{}` (call {} of that name):", d.op, d.name, d.call);
    }
    for item in &d.items {
        let _ = writeln!(s, "  {}", describe(item));
    }
    for (run, ops) in [("A", &d.only_a), ("B", &d.only_b)] {
        for (name, chips) in ops {
            let on = if chips.is_empty() {
                String::new()
            } else {
                format!(" on chip {}", chips.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
            };
            let _ = writeln!(s, "  inside it, only in run {run}: op record `{name}`{on}");
        }
    }
    if d.wrote_a.is_empty() && d.wrote_b.is_empty() {
        let _ =
            writeln!(s, "  (no write records on those chips: run with --detect writes or both to see what it wrote)");
        return;
    }
    // What the op wrote in one run and not the other is where to look first.
    let only = |x: &[Wrote], y: &[Wrote]| -> Vec<Wrote> { x.iter().filter(|w| !y.contains(w)).cloned().collect() };
    let (only_a, only_b) = (only(&d.wrote_a, &d.wrote_b), only(&d.wrote_b, &d.wrote_a));
    if only_a.is_empty() && only_b.is_empty() {
        let _ = writeln!(
            s,
            "  the op's own writes on those chips were the same in both runs ({} range(s)): the bytes changed \
             otherwise (a write from another chip or op that landed during it)",
            d.wrote_a.len()
        );
    }
    for (run, wrote) in [("A", &only_a), ("B", &only_b)] {
        if wrote.is_empty() {
            continue;
        }
        let _ = writeln!(s, "  written only in run {run}:");
        for w in wrote.iter().take(16) {
            let _ = writeln!(s, "    {}", describe_write(w));
        }
        if wrote.len() > 16 {
            let _ = writeln!(s, "    ... and {} more", wrote.len() - 16);
        }
    }
}

fn describe(item: &DiffItem) -> String {
    let what = match item.kind {
        DigestKind::Output => "output",
        DigestKind::Guard => "guarded buffer",
    };
    match item.only_in {
        Some(run) => format!("{what} `{}` on chip {}: digested only in run {run}", item.buffer, item.device),
        None => format!(
            "{what} `{}` on chip {}: {} of {} page(s) differ ({})",
            item.buffer,
            item.device,
            item.pages.len(),
            item.total_pages,
            pages(&item.pages)
        ),
    }
}

/// `3, 15, 20-31`.
fn pages(list: &[u64]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &p in list {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == p => *end = p,
            _ => runs.push((p, p)),
        }
    }
    let text: Vec<String> =
        runs.iter().map(|&(a, b)| if a == b { format!("page {a}") } else { format!("pages {a}-{b}") }).collect();
    if text.len() > 12 {
        format!("{}, ... ({} runs)", text[..12].join(", "), text.len())
    } else {
        text.join(", ")
    }
}

fn describe_write(w: &Wrote) -> String {
    format!("chip {} {} {} [{:#x}, {:#x}) ({} B)", w.device, w.space, w.unit, w.address, w.address + w.len, w.len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_lists_are_written_as_runs() {
        assert_eq!(pages(&[3, 15, 16, 17, 20]), "page 3, pages 15-17, page 20");
        assert_eq!(pages(&[]), "");
    }
}
