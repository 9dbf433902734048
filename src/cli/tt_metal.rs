//! `ttsan tt-metal ...`: drive the real tt-metal allocator in mock mode.
//!
//! `replay` runs an allocation script (see `ttsan_inference::alloc::script`) through the real
//! library and prints one line per request, optionally recording a ttsan trace and a ttnn
//! graph capture of the same run. `--model` runs the same script through our allocator model
//! instead, so the two outputs can be diffed.

use super::exit::{Failure, Outcome, CLEAN};
use anyhow::{anyhow, Context};
use clap::{Args, ValueEnum};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use tt_metal_sys::{AllocatorFacts, BufferKind, MeshInfo, MockMesh, RunMode, RuntimeRoot, TtError};
use ttsan_events::trace::TraceWriter;
use ttsan_events::{BufferAlloc, BufferFree, CaptureStart, CoreCoord, Event, Geometry, Layout, MeshDesc, Role, Space};
use ttsan_inference::alloc::replay::run_model;
use ttsan_inference::alloc::script::{self, Request, Response};

/// Chip architecture on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchArg {
    /// Wormhole B0.
    #[value(alias = "wormhole_b0")]
    Wormhole,
    /// Blackhole.
    Blackhole,
}

impl ArchArg {
    pub(crate) fn events(self) -> ttsan_events::Arch {
        match self {
            ArchArg::Wormhole => ttsan_events::Arch::WormholeB0,
            ArchArg::Blackhole => ttsan_events::Arch::Blackhole,
        }
    }

    fn sys(self) -> tt_metal_sys::Arch {
        match self {
            ArchArg::Wormhole => tt_metal_sys::Arch::WormholeB0,
            ArchArg::Blackhole => tt_metal_sys::Arch::Blackhole,
        }
    }
}

/// Arguments of `ttsan tt-metal replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The request script: `a ID dram|l1|l1_small SIZE PAGE` and `f ID`, one a line.
    pub script: PathBuf,
    /// Run the script through ttsan's allocator model instead of the real library.
    #[arg(long)]
    pub model: bool,
    /// Chip architecture.
    #[arg(long, value_enum, default_value = "wormhole")]
    pub arch: ArchArg,
    /// Chips in the mesh (mock mode picks the cluster descriptor: WH 1, 2, 4, 8, 32; BH 1, 2, 4, 8).
    #[arg(long, default_value_t = 1)]
    pub chips: u32,
    /// Also write a ttsan trace of the run (real library only).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Also write ttnn's graph capture (NORMAL mode) of the run (real library only).
    #[arg(long, value_name = "FILE.json")]
    pub graph_capture: Option<PathBuf>,
    /// The unpacked ttnn wheel (holds `ttnn/` and `ttnn.libs/`); default $TTSAN_TTNN_ROOT, else
    /// <repo>/target/ttnn/root as scripts/fetch-ttnn lays it out.
    #[arg(long, value_name = "DIR")]
    pub ttnn_root: Option<PathBuf>,
}

/// Runs `ttsan tt-metal replay`.
pub fn replay(args: &ReplayArgs) -> Outcome {
    if args.chips == 0 {
        return Err(Failure::usage(anyhow!("--chips must be at least 1")));
    }
    let text = std::fs::read_to_string(&args.script)
        .with_context(|| format!("cannot read script {}", args.script.display()))
        .map_err(Failure::usage)?;
    let requests = script::parse(&text)
        .with_context(|| format!("bad script {}", args.script.display()))
        .map_err(Failure::usage)?;
    check_ids(&requests).map_err(Failure::usage)?;
    if args.model {
        if args.trace.is_some() || args.graph_capture.is_some() {
            return Err(Failure::usage(anyhow!("--trace and --graph-capture need the real library (drop --model)")));
        }
        return replay_model(&requests, args);
    }
    replay_real(&requests, args)
}

/// Rejects scripts whose ids do not make sense regardless of what the allocator answers: a
/// live id allocated again, a free of an id never allocated, or a second free.
fn check_ids(requests: &[Request]) -> anyhow::Result<()> {
    let mut live: HashMap<&str, bool> = HashMap::new();
    for (n, req) in requests.iter().enumerate() {
        match req {
            Request::Alloc { id, .. } => {
                if live.get(id.as_str()) == Some(&true) {
                    return Err(anyhow!("request {}: `{id}` is allocated again while still live", n + 1));
                }
                live.insert(id, true);
            }
            Request::Free { id } => match live.get(id.as_str()) {
                None => return Err(anyhow!("request {}: free of `{id}`, which was never allocated", n + 1)),
                Some(false) => return Err(anyhow!("request {}: `{id}` is freed twice", n + 1)),
                Some(true) => {
                    live.insert(id, false);
                }
            },
        }
    }
    Ok(())
}

fn replay_model(requests: &[Request], args: &ReplayArgs) -> Outcome {
    let responses = run_model(requests, args.arch.events(), args.chips).map_err(Failure::usage)?;
    let mut out = std::io::stdout().lock();
    for r in &responses {
        print_response(&mut out, r)?;
    }
    Ok(CLEAN)
}

fn print_response(out: &mut impl Write, r: &Response) -> Result<(), Failure> {
    writeln!(out, "{r}").and_then(|()| out.flush()).context("cannot write to stdout").map_err(Failure::internal)
}

fn tt_failure(e: TtError) -> Failure {
    match e {
        TtError::NotFound(_) | TtError::UnknownVersion(_) | TtError::WrongVersion { .. } => Failure::usage(e),
        other => Failure::internal(other),
    }
}

fn absolute(p: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display())).map_err(Failure::usage)
}

fn replay_real(requests: &[Request], args: &ReplayArgs) -> Outcome {
    let root = RuntimeRoot::locate(args.ttnn_root.as_deref());
    root.check().map_err(tt_failure)?;
    // Resolved now: the mesh runs in a private working directory.
    let graph_path = args.graph_capture.as_deref().map(absolute).transpose()?;
    let mut trace = match &args.trace {
        Some(p) => {
            let file =
                File::create(p).with_context(|| format!("cannot create {}", p.display())).map_err(Failure::usage)?;
            Some(TraceWriter::new(BufWriter::new(file)).context("cannot write trace header").map_err(Failure::usage)?)
        }
        None => None,
    };

    // tt-metal logs to fd 1 (e.g. a `TT_FATAL` line before every allocation failure); results
    // go to the real stdout, the library's chatter to stderr.
    let mut out = BufWriter::new(tt_metal_sys::divert_library_stdout().map_err(tt_failure)?);
    let mut mesh = MockMesh::open(&root, args.arch.sys(), args.chips).map_err(tt_failure)?;
    if let Some(w) = trace.as_mut() {
        let start = CaptureStart {
            producer: format!(
                "ttsan-tt-metal-replay {} (ttnn {} mock)",
                env!("CARGO_PKG_VERSION"),
                tt_metal_sys::SUPPORTED_VERSION
            ),
            geometry: geometry_from_facts(args.arch.events(), args.chips, mesh.facts()),
            mesh: mesh_desc(mesh.info()),
            command: format!("tt-metal replay {}", args.script.display()),
        };
        write_event(w, &Event::CaptureStart(start))?;
    }
    if graph_path.is_some() {
        mesh.begin_graph_capture(RunMode::Normal).map_err(tt_failure)?;
    }

    let mut live = HashMap::new();
    for (n, req) in requests.iter().enumerate() {
        let response = match req {
            Request::Alloc { id, space, size, page_size } => match mesh.allocate(kind_of(*space), *size, *page_size) {
                Ok(handle) => {
                    let info = *handle.info();
                    if let Some(w) = trace.as_mut() {
                        write_event(w, &alloc_event(id, *space, &info))?;
                    }
                    live.insert(id.clone(), handle);
                    Response::Address(id.clone(), info.address)
                }
                Err(e) => {
                    if let Some(w) = trace.as_mut() {
                        write_event(w, &Event::Mark { text: format!("{id} OOM: {}", e.summary()) })?;
                    }
                    Response::Oom(id.clone())
                }
            },
            Request::Free { id } => {
                // The model refuses the same way: a refused allocation holds nothing to free.
                let Some(handle) = live.remove(id) else {
                    return Err(Failure::usage(anyhow!(
                        "request {}: free of `{id}`, which holds no buffer (its allocation was refused)",
                        n + 1
                    )));
                };
                let uid = handle.info().unique_id;
                mesh.free(handle).map_err(tt_failure)?;
                if let Some(w) = trace.as_mut() {
                    write_event(w, &Event::BufferFree(BufferFree { id: uid, op: None, stack: None, stack_id: None }))?;
                }
                Response::Freed(id.clone())
            }
        };
        print_response(&mut out, &response)?;
    }

    if let Some(path) = &graph_path {
        mesh.end_graph_capture_to_file(path).map_err(tt_failure)?;
    }
    if let Some(mut w) = trace {
        write_event(&mut w, &Event::CaptureEnd { dropped: 0 })?;
        w.into_inner().context("cannot finish trace").map_err(Failure::internal)?;
    }
    mesh.close().map_err(tt_failure)?;
    Ok(CLEAN)
}

fn write_event(w: &mut TraceWriter<BufWriter<File>>, e: &Event) -> Result<(), Failure> {
    w.write(e).context("cannot write trace").map_err(Failure::internal)
}

fn kind_of(space: Space) -> BufferKind {
    match space {
        Space::Dram => BufferKind::Dram,
        Space::L1 => BufferKind::L1,
        Space::L1Small => BufferKind::L1Small,
        Space::Trace => BufferKind::Trace,
    }
}

fn alloc_event(id: &str, space: Space, info: &tt_metal_sys::BufferInfo) -> Event {
    Event::BufferAlloc(BufferAlloc {
        // tt-metal's unique id: the same identity its own logs and hooks use.
        id: info.unique_id,
        device: None,
        space,
        address: info.address,
        size: info.size,
        page_size: info.page_size,
        layout: Layout::Interleaved,
        name: id.to_string(),
        role: Role::Other,
        op: None,
        stack: None,
        stack_id: None,
    })
}

fn mesh_desc(info: &MeshInfo) -> MeshDesc {
    if info.device_ids.len() == (info.rows * info.cols) as usize && !info.device_ids.is_empty() {
        MeshDesc { rows: info.rows, cols: info.cols, device_ids: info.device_ids.clone() }
    } else {
        MeshDesc::grid(info.rows.max(1), info.cols.max(1))
    }
}

/// The trace geometry: what the library reports, over the measured constants for what it
/// does not (the DRAM view size; the L1 bank managers' alignment, which is the DRAM one).
fn geometry_from_facts(arch: ttsan_events::Arch, chips: u32, f: &AllocatorFacts) -> Geometry {
    let base = Geometry::mock(arch, chips).unwrap_or_else(|_| match arch {
        ttsan_events::Arch::WormholeB0 => Geometry::wormhole_b0(),
        ttsan_events::Arch::Blackhole => Geometry::blackhole(),
    });
    let cores: Vec<CoreCoord> = f.l1_bank_cores.iter().map(|&(x, y)| CoreCoord::new(x as u16, y as u16)).collect();
    let grid = CoreCoord::new(
        cores.iter().map(|c| c.x + 1).max().unwrap_or(base.worker_grid.x),
        cores.iter().map(|c| c.y + 1).max().unwrap_or(base.worker_grid.y),
    );
    Geometry {
        arch,
        dram_banks: f.dram.num_banks,
        dram_bank_size: base.dram_bank_size,
        dram_alignment: u64::from(f.dram.alignment),
        dram_unreserved_base: f.dram_base,
        trace_region_size: f.trace.bank_size,
        l1_size: f.worker_l1_size,
        l1_alignment: u64::from(f.l1.alignment),
        l1_allocator_alignment: u64::from(f.dram.alignment),
        l1_unreserved_base: f.l1_base,
        l1_small_size: f.l1_small.bank_size,
        worker_grid: grid,
        l1_bank_cores: cores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reqs(text: &str) -> Vec<Request> {
        script::parse(text).unwrap()
    }

    #[test]
    fn id_checks_catch_script_mistakes() {
        assert!(check_ids(&reqs("a x dram 64 32\nf x\na x l1 64 32\nf x\n")).is_ok());
        let e = check_ids(&reqs("a x dram 64 32\na x dram 64 32\n")).unwrap_err().to_string();
        assert!(e.contains("request 2") && e.contains("still live"), "{e}");
        let e = check_ids(&reqs("f y\n")).unwrap_err().to_string();
        assert!(e.contains("never allocated"), "{e}");
        let e = check_ids(&reqs("a x dram 64 32\nf x\nf x\n")).unwrap_err().to_string();
        assert!(e.contains("request 3") && e.contains("twice"), "{e}");
    }

    #[test]
    fn geometry_takes_reported_values() {
        let f = AllocatorFacts {
            dram: tt_metal_sys::SpaceFacts { num_banks: 12, alignment: 32, bank_size: 1 << 29 },
            l1: tt_metal_sys::SpaceFacts { num_banks: 2, alignment: 16, bank_size: 4096 },
            dram_base: 0x100040,
            l1_base: 0x19d60,
            worker_l1_size: 0x16e000,
            l1_bank_cores: vec![(1, 0), (0, 2)],
            ..AllocatorFacts::default()
        };
        let g = geometry_from_facts(ttsan_events::Arch::WormholeB0, 1, &f);
        assert_eq!(g.l1_bank_cores, vec![CoreCoord::new(1, 0), CoreCoord::new(0, 2)]);
        assert_eq!(g.worker_grid, CoreCoord::new(2, 3));
        assert_eq!((g.dram_unreserved_base, g.l1_unreserved_base, g.l1_size), (0x100040, 0x19d60, 0x16e000));
        assert_eq!((g.l1_alignment, g.l1_allocator_alignment), (16, 32));
        assert_eq!(g.dram_bank_size, 1 << 30);
    }
}
