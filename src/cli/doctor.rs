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
use ttsan_events::Event;
use ttsan_preload::StatusLine;

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
        .env(ttsan_preload::ENV_TRACE, &trace)
        .env(ttsan_preload::ENV_STATUS, &status)
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
    let events = match read_all(trace) {
        Ok((events, _)) => events,
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
    if hardware {
        out.push(failed(
            "planted corruption",
            "not implemented in this build: planting a write through a freed buffer on hardware is unverified".into(),
        ));
    } else {
        out.push(not_possible("planted corruption", "not possible in mock mode (mock chips have no memory)".into()));
    }
    out
}
