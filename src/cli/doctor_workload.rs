//! The program `ttsan doctor` runs under the preload shim: it drives the real tt-metal library
//! the way a ttnn model does and prints what it did, one `DOCTOR key value` line per fact, so
//! the doctor can compare that with what the shim recorded.
//!
//! Ops are announced exactly as ttnn's header template `GraphTracker::track_function_start`
//! does: through every processor in the calling thread's list, by the vtable slots of ttnn's own
//! `GraphProcessor` (exported overrides, named by `dladdr` on exact matches only, as the shim
//! names them: `ttsan_preload_protocol::loader`). Circular
//! buffers go through the library's `GraphTracker::track_allocate_cb` fan-out, as a program's
//! placement does.

use super::exit::{Failure, Outcome};
use anyhow::anyhow;
use clap::Args;
use std::ffi::{c_void, CStr, CString};
use std::path::PathBuf;
use tt_metal_sys::{Arch, BufferKind, MockMesh, OpenOptions, RuntimeRoot};
use ttsan_preload_protocol::loader::exact_symbol;

/// Options of the hidden workload subcommand.
#[derive(Debug, Args)]
pub struct WorkloadArgs {
    /// Chips to open.
    #[arg(long, default_value_t = 8)]
    pub chips: u32,
    /// Open the real devices instead of mock ones.
    #[arg(long)]
    pub hardware: bool,
    /// The tt-metal runtime root (default: TTSAN_TTNN_ROOT or target/ttnn/root).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

type Instance = unsafe extern "C" fn() -> *mut c_void;
type Processors = unsafe extern "C" fn(*mut c_void) -> *const [usize; 3];
type Start = unsafe extern "C" fn(*mut c_void, usize, *const u8, *const c_void, usize);
type End = unsafe extern "C" fn(*mut c_void);
type EndAny = unsafe extern "C" fn(*mut c_void, *const c_void);
type RangeSet = unsafe extern "C" fn(*mut c_void, *const [usize; 4]);
type AllocateCb = unsafe extern "C" fn(*mut c_void, *const c_void, u64, u64, bool, *const c_void);
type DeallocateCb = unsafe extern "C" fn(*mut c_void, *const c_void);
type Guard = unsafe extern "C" fn(i32, u64, *const std::ffi::c_char) -> i32;

struct Tracker {
    instance: Instance,
    processors: Processors,
    start: usize,
    end: usize,
    end_any: usize,
    range_set: RangeSet,
    allocate_cb: AllocateCb,
    deallocate_cb: DeallocateCb,
}

fn sym(handle: *mut c_void, name: &CStr) -> Result<*mut c_void, Failure> {
    // SAFETY: a NUL-terminated name on a handle dlopen returned.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() {
        return Err(Failure::internal(anyhow!("{} is not exported", name.to_string_lossy())));
    }
    Ok(p)
}

fn handle(path: &std::path::Path) -> Result<*mut c_void, Failure> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| Failure::internal(anyhow!(e)))?;
    // SAFETY: RTLD_NOLOAD only returns a handle of a library already in the process.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    if h.is_null() {
        return Err(Failure::internal(anyhow!("{} is not loaded", path.display())));
    }
    Ok(h)
}

/// The slots of the vtable whose symbol starts at `vt`: its size less the two header words.
fn slot_count(vt: *const usize) -> Result<usize, Failure> {
    let size = exact_symbol(vt as usize)
        .and_then(|s| s.size)
        .ok_or_else(|| Failure::internal(anyhow!("ttnn's GraphProcessor vtable has no symbol size")))?;
    Ok((size / std::mem::size_of::<usize>()).saturating_sub(2))
}

/// The slot of each announcing method in ttnn's GraphProcessor vtable.
fn slots(ttnn: *mut c_void) -> Result<(usize, usize, usize), Failure> {
    let vt = sym(ttnn, c"_ZTVN4ttnn5graph14GraphProcessorE")? as *const usize;
    let (mut start, mut end, mut end_any) = (None, None, None);
    for i in 0..slot_count(vt)? {
        // SAFETY: `i` is below the slot count the vtable symbol's size gives.
        let entry = unsafe { *vt.add(2 + i) };
        let Some(name) = exact_symbol(entry).and_then(|s| s.name) else { continue };
        if name.contains("GraphProcessor20track_function_start") {
            start = Some(i);
        } else if name.ends_with("GraphProcessor18track_function_endEv") {
            end = Some(i);
        } else if name.ends_with("GraphProcessor18track_function_endERKSt3any") {
            end_any = Some(i);
        }
    }
    match (start, end, end_any) {
        (Some(s), Some(e), Some(a)) => Ok((s, e, a)),
        _ => Err(Failure::internal(anyhow!("ttnn's GraphProcessor vtable does not name its function slots"))),
    }
}

impl Tracker {
    fn new(root: &RuntimeRoot) -> Result<Tracker, Failure> {
        let metal = handle(&root.metal_lib())?;
        let ttnn = handle(&root.ttnn_lib())?;
        let (start, end, end_any) = slots(ttnn)?;
        // SAFETY: each symbol is the function with the signature its type alias declares.
        unsafe {
            Ok(Tracker {
                instance: std::mem::transmute::<*mut c_void, Instance>(sym(
                    metal,
                    c"_ZN2tt8tt_metal12GraphTracker8instanceEv",
                )?),
                processors: std::mem::transmute::<*mut c_void, Processors>(sym(
                    metal,
                    c"_ZNK2tt8tt_metal12GraphTracker14get_processorsEv",
                )?),
                start,
                end,
                end_any,
                range_set: std::mem::transmute::<*mut c_void, RangeSet>(sym(
                    metal,
                    c"_ZN2tt8tt_metal12CoreRangeSetC1ERKNS0_9CoreRangeE",
                )?),
                allocate_cb: std::mem::transmute::<*mut c_void, AllocateCb>(sym(
                    metal,
                    c"_ZN2tt8tt_metal12GraphTracker17track_allocate_cbERKNS0_12CoreRangeSetEmmbPKNS0_7IDeviceE",
                )?),
                deallocate_cb: std::mem::transmute::<*mut c_void, DeallocateCb>(sym(
                    metal,
                    c"_ZN2tt8tt_metal12GraphTracker19track_deallocate_cbEPKNS0_7IDeviceE",
                )?),
            })
        }
    }

    /// The processor objects in this thread's list (`std::vector<std::shared_ptr<...>>`: each
    /// element two words, the object pointer first).
    fn each(&self, f: impl Fn(*mut c_void, *const usize)) {
        // SAFETY: instance() returns the tracker; get_processors() a reference to its vector.
        unsafe {
            let v = &*(self.processors)((self.instance)());
            let (begin, end) = (v[0] as *const [usize; 2], v[1] as *const [usize; 2]);
            let n = (end as usize - begin as usize) / std::mem::size_of::<[usize; 2]>();
            for i in 0..n {
                let object = (*begin.add(i))[0] as *mut c_void;
                let vptr = *(object as *const *const usize);
                f(object, vptr);
            }
        }
    }

    fn start(&self, name: &str) {
        println!("DOCTOR op {name}");
        self.each(|object, vptr| {
            // SAFETY: the slot holds track_function_start(string_view, span) of this object.
            unsafe {
                let f = std::mem::transmute::<usize, Start>(*vptr.add(self.start));
                f(object, name.len(), name.as_ptr(), std::ptr::null(), 0);
            }
        });
    }

    fn end(&self, with_output: bool) {
        let output: [usize; 2] = [0, 0];
        self.each(|object, vptr| {
            // SAFETY: the slots hold track_function_end() and track_function_end(std::any const&);
            // an all-zero std::any is an empty one.
            unsafe {
                if with_output {
                    std::mem::transmute::<usize, EndAny>(*vptr.add(self.end_any))(object, output.as_ptr().cast());
                } else {
                    std::mem::transmute::<usize, End>(*vptr.add(self.end))(object);
                }
            }
        });
    }
}

/// Drives the library; any failure is reported by the doctor as the line it breaks.
pub fn run(args: &WorkloadArgs) -> Outcome {
    let root = RuntimeRoot::locate(args.root.as_deref());
    root.check().map_err(|e| Failure::usage(anyhow!("the tt-metal library is unusable: {e}")))?;
    let opts = OpenOptions { hardware: args.hardware, ..OpenOptions::default() };
    let mut mesh =
        MockMesh::open_with(&root, Arch::WormholeB0, args.chips, opts).map_err(|e| Failure::internal(anyhow!(e)))?;
    println!("DOCTOR chips {}", mesh.info().num_devices);
    let tracker = Tracker::new(&root)?;
    let alloc =
        |mesh: &mut MockMesh, kind, size| mesh.allocate(kind, size, 2048).map_err(|e| Failure::internal(anyhow!(e)));

    // A buffer freed just before the guard is allocated: the allocator gives the guard its place
    // (the doctor checks), so the guard's address is a freed buffer's, which the planted write
    // below uses.
    let freed = alloc(&mut mesh, BufferKind::Dram, 64 << 10)?;
    let stale = freed.address();
    mesh.free(freed).map_err(|e| Failure::internal(anyhow!(e)))?;
    let guarded = alloc(&mut mesh, BufferKind::Dram, 64 << 10)?;
    println!("DOCTOR stale {stale} {}", if guarded.address() == stale { "reused" } else { "moved" });
    // SAFETY: the shim's C ABI when preloaded; absent otherwise.
    let guard = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"ttsan_guard_address".as_ptr()) };
    if !guard.is_null() {
        // SAFETY: ttsan_guard_address(int buffer_type, uint64_t address, const char* name).
        let rc =
            unsafe { std::mem::transmute::<*mut c_void, Guard>(guard)(0, guarded.address(), c"doctor.guard".as_ptr()) };
        println!("DOCTOR guard {rc}");
    }

    tracker.start("doctor::matmul");
    tracker.start("doctor::MatmulDeviceOperation");
    let out = alloc(&mut mesh, BufferKind::Dram, 32 << 10)?;
    println!("DOCTOR alloc-in-op {}", out.info().unique_id);
    tracker.end(true);
    tracker.end(true);

    tracker.start("doctor::add");
    let mut cores = [0u8; 256];
    // SAFETY: CoreRangeSet(CoreRange const&) constructed in storage larger than the class; a
    // CoreRange is two CoreCoords of two size_t each.
    unsafe { (tracker.range_set)(cores.as_mut_ptr().cast(), &[0, 0, 3, 1]) };
    // SAFETY: track_allocate_cb(CoreRangeSet const&, addr, size, globally_allocated, IDevice*)
    // with the mesh device, as a mesh workload's placement reports it.
    unsafe {
        (tracker.allocate_cb)((tracker.instance)(), cores.as_ptr().cast(), 0x20000, 4096, false, mesh.raw_device())
    };
    println!("DOCTOR cb 131072 4096 0,0-3,1");
    let tmp = alloc(&mut mesh, BufferKind::L1, 16 << 10)?;
    println!("DOCTOR alloc-in-op {}", tmp.info().unique_id);
    mesh.free(tmp).map_err(|e| Failure::internal(anyhow!(e)))?;
    // SAFETY: as above.
    unsafe { (tracker.deallocate_cb)((tracker.instance)(), mesh.raw_device()) };
    tracker.end(false);
    mesh.free(out).map_err(|e| Failure::internal(anyhow!(e)))?;

    // The planted corruption: inside an op that declares no write, 64 bytes go to the last chip's
    // DRAM bank 0 at the freed buffer's address, which is now the guard's first page there.
    let info = mesh.info().clone();
    let last = (info.rows.saturating_sub(1), info.cols.saturating_sub(1));
    let chip = info.device_ids.last().copied().unwrap_or(0);
    tracker.start("doctor::stale_write");
    match mesh.write_dram_raw(&guarded, last, 0, stale, &[0xa5; 64]) {
        Ok(()) => println!("DOCTOR planted {chip}"),
        Err(e) => println!("DOCTOR plant-failed {e}"),
    }
    tracker.end(false);
    mesh.free(guarded).map_err(|e| Failure::internal(anyhow!(e)))?;
    mesh.close().map_err(|e| Failure::internal(anyhow!(e)))?;
    println!("DOCTOR done");
    Ok(0)
}
