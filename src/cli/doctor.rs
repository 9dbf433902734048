//! `ttsan doctor`: the first thing to run on a new machine. It runs a small workload through the
//! real tt-metal library under the preload shim (`ttsan tt-metal doctor-workload`), then says,
//! line by line, what ttsan saw: the build, the graph processor, ops and their nesting,
//! allocations inside ops, circular buffers, guard reads on every chip. Each line is OK, FAILED
//! with the reason, or N/A where mock mode cannot do it (device reads); any FAILED exits 3.

use super::exit::{Failure, Outcome, CLEAN, INTERNAL};
use super::run_cmd::{collect_traces, locate_preload, preload_value, read_status, Scratch};
use anyhow::{anyhow, Context as _};
use clap::Args;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use ttsan_events::trace::read_all;
use ttsan_events::trace::ReadStats;
use ttsan_events::Event;
use ttsan_preload_protocol::StatusLine;
use ttsan_sanitizer::{AnalysisOptions, Analyzer, FindingKind};

/// Options of `ttsan doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Chips to open (8: a T3K in mock mode; 32: a Galaxy).
    #[arg(long, default_value_t = 8)]
    pub chips: u32,
    /// Open the real devices (default when /dev/tenstorrent exists) instead of mock ones.
    #[arg(long)]
    pub hardware: bool,
    /// Use mock devices even where hardware exists.
    #[arg(long, conflicts_with = "hardware")]
    pub mock: bool,
    /// The tt-metal runtime root (default: TTSAN_TTNN_ROOT or target/ttnn/root).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// One line of the verdict.
struct Line {
    state: &'static str,
    what: &'static str,
    text: String,
}

fn ok(what: &'static str, text: String) -> Line {
    Line { state: "OK", what, text }
}

fn failed(what: &'static str, text: String) -> Line {
    Line { state: "FAILED", what, text }
}

fn not_possible(what: &'static str, text: String) -> Line {
    Line { state: "N/A", what, text }
}

/// Runs the doctor.
pub fn run(args: &DoctorArgs) -> Outcome {
    let hardware = args.hardware || (!args.mock && std::path::Path::new("/dev/tenstorrent").exists());
    let root = tt_metal_sys::RuntimeRoot::locate(args.root.as_deref());
    root.check()
        .map_err(|e| Failure::usage(anyhow!("the tt-metal library is unusable: {e} (run scripts/fetch-ttnn)")))?;
    let lib = locate_preload()?;
    let scratch = Scratch::new()?;
    let trace = scratch.dir.join("doctor.ttsan");
    let status = scratch.dir.join("status");
    let exe = std::env::current_exe().context("locating ttsan").map_err(Failure::internal)?;
    let mut cmd = Command::new(exe);
    cmd.current_dir(&scratch.dir)
        .args(["tt-metal", "doctor-workload", "--chips", &args.chips.to_string(), "--root"])
        .arg(root.path())
        .env("LD_PRELOAD", preload_value(&lib, std::env::var("LD_PRELOAD").ok().as_deref())?)
        .env(ttsan_preload_protocol::ENV_TRACE, &trace)
        .env(ttsan_preload_protocol::ENV_STATUS, &status)
        .env_remove("TTSAN_OPTIONS");
    if hardware {
        cmd.arg("--hardware");
    } else {
        // Mock mode's hygiene: no shared-memory segments or tracking files left behind.
        for (k, v) in
            [("TT_METAL_SHM_TRACKING_DISABLED", "1"), ("OMPI_MCA_btl", "self"), ("TT_METAL_LOGGER_LEVEL", "error")]
        {
            if std::env::var_os(k).is_none() {
                cmd.env(k, v);
            }
        }
    }
    if std::env::var_os("TT_METAL_RUNTIME_ROOT").is_none() {
        cmd.env("TT_METAL_RUNTIME_ROOT", root.runtime_dir());
    }
    let out = cmd.output().context("running the doctor workload").map_err(Failure::internal)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mode = if hardware { "hardware" } else { "mock mode" };
    println!("ttsan doctor: {} chip(s), {mode}, tt-metal from {}", args.chips, root.path().display());
    let lines = verdict(&stdout, &read_status(&status), &collect_traces(&trace), hardware, out.status.success());
    let mut any_failed = false;
    for l in &lines {
        any_failed |= l.state == "FAILED";
        println!("{:<7} {:<22} {}", l.state, l.what, l.text);
    }
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr).trim_end());
    }
    if any_failed {
        return Err(Failure { code: INTERNAL, error: anyhow!("ttsan doctor: some checks FAILED (see above)") });
    }
    println!("ttsan doctor: every check {} allows passed", if hardware { "hardware" } else { "mock mode" });
    Ok(CLEAN)
}

/// The lines, from what the workload printed and what the shim recorded.
fn verdict(stdout: &str, status: &[StatusLine], traces: &[PathBuf], hardware: bool, ran: bool) -> Vec<Line> {
    let said = |key: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix("DOCTOR ")?.strip_prefix(key)?.strip_prefix(' ').map(String::from))
            .collect()
    };
    let mut out = Vec::new();
    if !ran || !stdout.lines().any(|l| l == "DOCTOR done") {
        out.push(failed("workload", "the workload did not finish (its output follows)".into()));
    }
    if !status.iter().any(|l| matches!(l, StatusLine::Loaded { .. })) {
        out.push(failed("shim", "the preload shim never loaded".into()));
        return out;
    }
    for l in status {
        if let StatusLine::Unsupported { message, .. } = l {
            out.push(failed("graph processor", format!("not checked: unsupported tt-metal build: {message}")));
        }
    }
    let Some(trace) = traces.first() else {
        out.push(failed("trace", "the shim wrote no trace".into()));
        return out;
    };
    let (events, stats) = match read_all(trace) {
        Ok(read) => read,
        Err(e) => {
            out.push(failed("trace", format!("unreadable: {e}")));
            return out;
        }
    };
    match events.iter().find_map(|e| if let Event::Runtime(r) = e { Some(r) } else { None }) {
        Some(r) => {
            let tested = r.details.first().cloned().unwrap_or_default();
            out.push(ok("tt-metal build", format!("{} ({tested})", r.build)));
            match &r.unsupported {
                None => out.push(ok(
                    "graph processor",
                    format!(
                        "registered; {}",
                        r.details.iter().find(|d| d.starts_with("IGraphProcessor slots")).cloned().unwrap_or_default()
                    ),
                )),
                Some(why) if !out.iter().any(|l| l.what == "graph processor") => {
                    out.push(failed("graph processor", format!("not registered: {why}")))
                }
                Some(_) => {}
            }
        }
        None => out.push(failed("tt-metal build", "the trace has no runtime record".into())),
    }

    let announced = said("op");
    let traced: Vec<(u64, String, Option<u64>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::OpBegin(o) => Some((o.index, o.name.clone(), o.parent)),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = traced.iter().map(|(_, n, _)| n.as_str()).collect();
    let nested = traced.iter().any(|(_, n, p)| n == "doctor::MatmulDeviceOperation" && p.is_some());
    if !announced.is_empty() && announced.iter().all(|a| names.contains(&a.as_str())) && nested {
        out.push(ok(
            "ops named",
            format!("{} of {} announced ops, nesting kept ({})", announced.len(), announced.len(), names.join(", ")),
        ));
    } else {
        out.push(failed("ops named", format!("announced {announced:?}, recorded {names:?}")));
    }

    let in_op: BTreeSet<u64> = said("alloc-in-op").iter().filter_map(|s| s.parse().ok()).collect();
    let with_op =
        events.iter().filter(|e| matches!(e, Event::BufferAlloc(a) if in_op.contains(&a.id) && a.op.is_some())).count();
    if !in_op.is_empty() && with_op == in_op.len() {
        out.push(ok("allocations in ops", format!("{with_op} of {} carry the op they were made in", in_op.len())));
    } else {
        out.push(failed("allocations in ops", format!("{with_op} of {} carry their op", in_op.len())));
    }

    let cbs: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::CbAlloc(c) => Some(format!(
                "{:#x} {} B on {}",
                c.address,
                c.size,
                c.cores
                    .iter()
                    .map(|r| format!("({},{})-({},{})", r.start.x, r.start.y, r.end.x, r.end.y))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            _ => None,
        })
        .collect();
    if cbs.len() == said("cb").len() && !cbs.is_empty() {
        out.push(ok("circular buffers", format!("{} recorded with core ranges: {}", cbs.len(), cbs.join("; "))));
    } else {
        out.push(failed("circular buffers", format!("{} placed, {} recorded", said("cb").len(), cbs.len())));
    }

    let chips: u32 = said("chips").first().and_then(|s| s.parse().ok()).unwrap_or(0);
    let digests: Vec<&ttsan_events::GuardDigest> =
        events.iter().filter_map(|e| if let Event::GuardDigest(g) = e { Some(g) } else { None }).collect();
    let attempted: BTreeSet<u32> = digests.iter().map(|g| g.device).collect();
    let read: BTreeSet<u32> = digests.iter().filter(|g| g.readable).map(|g| g.device).collect();
    if said("guard").first().map(String::as_str) != Some("0") {
        out.push(failed("guard digests", "the doctor's buffer could not be guarded".into()));
    } else if attempted.len() as u32 != chips {
        out.push(failed("guard digests", format!("attempted on {} of {chips} chips", attempted.len())));
    } else if hardware && read.len() as u32 == chips {
        out.push(ok("guard digests", format!("read on {chips} of {chips} chips after every op")));
    } else if hardware {
        let why = events
            .iter()
            .find_map(|e| match e {
                Event::Mark { text } if text.contains("guarded buffer") => Some(text.clone()),
                _ => None,
            })
            .unwrap_or_default();
        out.push(failed("guard digests", format!("read on {} of {chips} chips: {why}", read.len())));
    } else {
        out.push(not_possible(
            "guard digests",
            format!(
                "not possible in mock mode: {} attempt(s) on {chips} of {chips} chips recorded as unreadable",
                digests.len()
            ),
        ));
    }
    out.push(planted(&said, &events, stats, chips, hardware));
    out
}

/// The planted write through a freed buffer's address: on hardware, the analysis of the trace's
/// `events` must name the op that made it and the chip it landed on; in mock mode only the
/// write itself can be checked.
fn planted(said: &dyn Fn(&str) -> Vec<String>, events: &[Event], stats: ReadStats, chips: u32, hardware: bool) -> Line {
    const WHAT: &str = "planted corruption";
    const OP: &str = "doctor::stale_write";
    let reused = said("stale").first().is_some_and(|s| s.ends_with(" reused"));
    if let Some(e) = said("plant-failed").first() {
        return failed(WHAT, format!("the write through a freed buffer's address failed: {e}"));
    }
    let Some(chip) = said("planted").first().and_then(|s| s.parse::<u32>().ok()) else {
        return failed(WHAT, "the workload did not plant its write".into());
    };
    if !reused {
        return failed(WHAT, "the guard did not take the freed buffer's place, so the write missed it".into());
    }
    if !hardware {
        return not_possible(
            WHAT,
            format!(
                "written through a freed buffer's address into the guard on chip {chip} inside {OP}; \
                 seeing it needs device memory, not possible in mock mode (mock chips have no memory)"
            ),
        );
    }
    // The events the other lines were read from: the trace is not read a second time.
    let mut analyzer = Analyzer::new(AnalysisOptions::default());
    for e in events {
        analyzer.feed(e);
    }
    let analysis = analyzer.finish(Some(stats));
    let found = analysis.findings.iter().find(|f| {
        f.kind == FindingKind::GuardCorruption
            && f.culprit.as_ref().is_some_and(|c| c.op == OP)
            && (f.device == Some(chip) || f.devices.contains(&chip))
    });
    match found {
        Some(f) => {
            let victim = f.victim.as_ref().map(|v| v.name.clone()).unwrap_or_else(|| "the guard".into());
            let others = f.devices.iter().filter(|&&d| d != chip).count();
            ok(WHAT, format!("found: {victim} changed on chip {chip} of {chips} in {OP} (other chips named: {others})"))
        }
        None => failed(
            WHAT,
            format!(
                "not found: no guard corruption on chip {chip} blamed on {OP}; findings: {}",
                analysis.findings.iter().map(|f| format!("{:?}", f.kind)).collect::<Vec<_>>().join(", ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttsan_events::{Role, Space};
    use ttsan_test_support::fixtures::{TraceBuilder, DRAM_BASE};

    /// What the doctor's workload leaves on a 1x8 mesh with readable chips: the guard read on
    /// every chip at registration and after each op, and `landed` chip's first page changed by
    /// the stale write.
    fn hardware_like_trace(landed: u32) -> Vec<Event> {
        let mut b = TraceBuilder::wormhole(1, 8);
        b.alloc(2, "doctor.guard", Role::Other, Space::Dram, DRAM_BASE, 64 << 10, 2048, None);
        b.guard(2);
        let pages = [1u8; 32];
        for chip in 0..8 {
            b.digest(2, chip, None, &pages);
        }
        let matmul = b.op("doctor::matmul", &[], &[], &[]);
        b.end(matmul);
        for chip in 0..8 {
            b.digest(2, chip, Some(matmul), &pages);
        }
        let stale = b.op("doctor::stale_write", &[], &[], &[]);
        b.end(stale);
        for chip in 0..8 {
            let mut now = pages;
            if chip == landed {
                now[0] = 0xa5;
            }
            b.digest(2, chip, Some(stale), &now);
        }
        b.finish()
    }

    fn said(lines: &'static [&'static str]) -> impl Fn(&str) -> Vec<String> {
        move |key: &str| lines.iter().filter_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(String::from)).collect()
    }

    #[test]
    fn on_hardware_the_planted_write_must_be_found_on_its_chip_and_op() {
        let workload = said(&["stale 1048640 reused", "planted 7"]);
        let clean = ReadStats::default();
        let line = planted(&workload, &hardware_like_trace(7), clean, 8, true);
        assert_eq!(line.state, "OK", "{}", line.text);
        assert!(line.text.contains("changed on chip 7 of 8 in doctor::stale_write"), "{}", line.text);

        // The analysis blames the right op but the bytes changed on another chip: not what was
        // planted, so not OK.
        let line = planted(&workload, &hardware_like_trace(3), clean, 8, true);
        assert_eq!(line.state, "FAILED", "{}", line.text);
        assert!(line.text.contains("not found: no guard corruption on chip 7"), "{}", line.text);
    }

    #[test]
    fn a_plant_that_did_not_happen_is_never_ok() {
        let trace = hardware_like_trace(7);
        for (lines, why) in [
            (&["stale 1048640 reused", "plant-failed boom"][..], "failed: boom"),
            (&["stale 1048640 moved", "planted 7"][..], "did not take the freed buffer's place"),
            (&["stale 1048640 reused"][..], "did not plant"),
        ] {
            let lines: &'static [&'static str] = Box::leak(lines.to_vec().into_boxed_slice());
            for hardware in [true, false] {
                let line = planted(&said(lines), &trace, ReadStats::default(), 8, hardware);
                assert_eq!(line.state, "FAILED", "{lines:?}: {}", line.text);
                assert!(line.text.contains(why), "{}", line.text);
            }
        }
    }
}
