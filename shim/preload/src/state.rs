//! The recorder: live buffers, the op stack, guards, and the channel to the writer.
//!
//! One mutex orders everything: an event is sent while the state change it describes is made,
//! so the trace order is the order tt-metal's allocator saw (a free is recorded before the real
//! free releases the address; an allocation after the real allocation returns).

use crate::stack::AddrMap;
use crate::writer::{self, Alloc, Msg};
use crate::{config, digest, geometry, stack, status, tt};
use crossbeam_channel::Sender;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use ttsan_events::{CaptureStart, Declared, Event, OpBegin, Space};

/// When a guarded buffer next needs a reference digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Baseline {
    /// Its last digest is a valid reference.
    Current,
    /// Newly guarded: the next digest is its first.
    First,
    /// The host wrote it: forget the old reference (re-register) before the next digest.
    Reset,
}

struct Guard {
    reason: String,
    baseline: Baseline,
}

struct Live {
    id: u64,
    space: Space,
    address: u64,
    size: u64,
    page_size: u64,
    guard: Option<Guard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing recorded yet (no trace file).
    Idle,
    /// Recording.
    Started,
    /// The trace could not be created; pass through.
    Failed,
    /// Exit has written CaptureEnd.
    Closed,
}

struct State {
    phase: Phase,
    tx: Option<Sender<Msg>>,
    live: AddrMap<Live>,
    ops: Vec<u64>,
    next_op: u64,
    /// Events before the first buffer told us the geometry (ops and marks from the C ABI).
    early: Vec<Msg>,
    devices: Vec<u32>,
    dropped: u64,
    noted: Vec<&'static str>,
}

static STATE: Mutex<State> = Mutex::new(State {
    phase: Phase::Idle,
    tx: None,
    live: AddrMap::with_hasher(std::hash::BuildHasherDefault::new()),
    ops: Vec::new(),
    next_op: 0,
    early: Vec::new(),
    devices: Vec::new(),
    dropped: 0,
    noted: Vec::new(),
});

static FORKED: AtomicBool = AtomicBool::new(false);
static STARTED: AtomicBool = AtomicBool::new(false);

/// Whether this process is a fork of the recording one (which stops recording).
pub(crate) fn forked() -> bool {
    FORKED.load(Ordering::Acquire)
}

/// Called in the child after fork(): the child records nothing, its parent's trace stays
/// consistent (the child's copies of the parent's buffers are not the parent's to free).
pub(crate) fn on_fork_child() {
    FORKED.store(true, Ordering::Release);
}

/// Whether interposed calls should be recorded at all.
pub(crate) fn enabled() -> bool {
    !forked() && config::get().trace.is_some()
}

fn lock() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn send(&mut self, msg: Msg) {
        match (&self.tx, self.phase) {
            (Some(tx), Phase::Started) => writer::send(tx, msg),
            (_, Phase::Idle) => self.early.push(msg),
            _ => self.dropped += 1,
        }
    }

    fn event(&mut self, e: Event) {
        self.send(Msg::Event(Box::new(e)));
    }

    fn mark(&mut self, text: String) {
        self.event(Event::Mark { text });
    }

    /// A one-time note per kind.
    fn note(&mut self, key: &'static str, text: &str) {
        if !self.noted.contains(&key) {
            self.noted.push(key);
            self.mark(format!("ttsan-preload: {text}"));
        }
    }

    /// Opens the trace and writes the header records; the geometry comes from `buffer`.
    fn start(&mut self, buffer: Option<*const c_void>) {
        if self.phase != Phase::Idle {
            return;
        }
        let cfg = config::get();
        let Some(path) = &cfg.trace else {
            self.phase = Phase::Failed;
            return;
        };
        let api = tt::api();
        let facts = match (api, buffer) {
            (Ok(api), Some(b)) => geometry::read(api, b),
            (Ok(_), None) => geometry::fallback(
                ttsan_events::MeshDesc::grid(1, 1),
                "the measured mock-mode facts (no buffer was allocated)",
            ),
            (Err(_), _) => geometry::fallback(
                ttsan_events::MeshDesc::grid(1, 1),
                "the measured mock-mode facts (tt-metal's accessors are missing)",
            ),
        };
        let (fd, actual) = match writer::claim(path) {
            Ok(x) => x,
            Err(e) => return self.fail(e.to_string()),
        };
        let tx = match writer::start(fd, &actual) {
            Ok(tx) => tx,
            Err(e) => {
                // SAFETY: fd is ours and unused.
                unsafe { libc::close(fd) };
                return self.fail(e.to_string());
            }
        };
        status::append(status::STATUS_TT_METAL, &actual.to_string_lossy());
        self.tx = Some(tx);
        self.phase = Phase::Started;
        STARTED.store(true, Ordering::Release);
        self.devices = facts.mesh.device_ids.clone();
        self.event(Event::CaptureStart(CaptureStart {
            producer: format!(
                "ttsan-preload {} (LD_PRELOAD shim over libtt_metal.so; geometry {})",
                env!("CARGO_PKG_VERSION"),
                facts.source
            ),
            geometry: facts.geometry,
            mesh: facts.mesh,
            command: cfg.command.clone(),
        }));
        if let Err(missing) = api {
            self.mark(format!("ttsan-preload: tt-metal symbols missing, buffers cannot be read: {missing}"));
        }
        for p in &cfg.problems {
            self.mark(format!("ttsan-preload: {p}"));
        }
        for msg in std::mem::take(&mut self.early) {
            self.send(msg);
        }
        crate::signals::install();
        stack::warm_up();
    }

    fn fail(&mut self, why: String) {
        self.phase = Phase::Failed;
        self.early.clear();
        status::append(status::STATUS_ERROR, &why);
        eprintln!("ttsan-preload: not recording: {why}");
    }

    fn top_level_digests(&mut self, after_op: Option<u64>) {
        let Ok(api) = tt::api() else { return };
        let devices = if self.devices.is_empty() { vec![0] } else { self.devices.clone() };
        let mut out: Vec<Event> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        for (&ptr, live) in self.live.iter_mut() {
            let Some(g) = live.guard.as_mut() else { continue };
            let at = match (g.baseline, after_op) {
                // At op begin only buffers without a reference digest are read.
                (Baseline::Current, None) => continue,
                (Baseline::Reset, _) => {
                    out.push(Event::GuardUnregister { buffer: live.id });
                    out.push(Event::GuardRegister { buffer: live.id, reason: g.reason.clone() });
                    None
                }
                (Baseline::First, _) => None,
                (Baseline::Current, Some(op)) => Some(op),
            };
            g.baseline = Baseline::Current;
            let (digests, note) =
                digest::take(api, ptr as *mut c_void, live.id, live.size, live.page_size, &devices, at);
            out.extend(digests.into_iter().map(Event::GuardDigest));
            notes.extend(note);
        }
        for e in out {
            self.event(e);
        }
        for n in notes {
            self.mark(format!("ttsan-preload: {n}"));
        }
    }
}

/// What the accessors say about one buffer.
struct Facts {
    id: u64,
    space: Option<Space>,
    address: u64,
    size: u64,
    page_size: u64,
    sharded: bool,
    mesh: bool,
}

fn read(api: &tt::Api, b: *const c_void) -> Facts {
    // SAFETY: b is a live Buffer handed to an interposed function; these are const getters.
    unsafe {
        let space = match (api.buffer_type)(b) {
            tt::buffer_type::DRAM => Some(Space::Dram),
            tt::buffer_type::L1 => Some(Space::L1),
            tt::buffer_type::L1_SMALL => Some(Space::L1Small),
            tt::buffer_type::TRACE => Some(Space::Trace),
            _ => None,
        };
        Facts {
            id: (api.unique_id)(b) as u64,
            space,
            address: u64::from((api.address)(b)),
            size: (api.size)(b),
            page_size: (api.page_size)(b),
            sharded: (api.layout)(b) != 0,
            mesh: geometry::is_mesh(api, (api.device)(b)),
        }
    }
}

/// After the real allocation returned: records it (and guards it if selected).
pub(crate) fn on_allocated(buffer: *const c_void) {
    let cfg = config::get();
    let api = tt::api().ok();
    let facts = api.map(|a| read(a, buffer));
    let ips = stack::capture(cfg.stack_depth);
    let mut st = lock();
    if st.phase == Phase::Idle {
        st.start(Some(buffer));
    }
    if st.phase != Phase::Started {
        return;
    }
    let Some(f) = facts else {
        st.dropped += 1;
        return;
    };
    let Some(space) = f.space else {
        st.note("system-memory", "SYSTEM_MEMORY buffers are host memory and are not recorded");
        return;
    };
    if f.sharded {
        st.note("sharded", "sharded buffers are recorded with an interleaved footprint (shard placement is not read)");
    }
    if !f.mesh {
        st.note("device-local", "device-local buffers are recorded for every chip (their chip id is not read)");
    }
    let op = st.ops.last().copied();
    let before_first_op = st.next_op == 0;
    let reason = cfg.guards.reason(f.size, space, before_first_op, || {
        ips.as_deref().map(|c| stack::frames(c, cfg.stack_depth)).unwrap_or_default()
    });
    let alloc = Alloc { id: f.id, space, address: f.address, size: f.size, page_size: f.page_size, op };
    st.send(Msg::Alloc(alloc, ips));
    let guard = reason.map(|reason| {
        st.event(Event::GuardRegister { buffer: f.id, reason: reason.clone() });
        Guard { reason, baseline: Baseline::First }
    });
    let live = Live { id: f.id, space, address: f.address, size: f.size, page_size: f.page_size, guard };
    st.live.insert(buffer as usize, live);
}

/// Before the real free: records it while the address is still the buffer's.
pub(crate) fn on_deallocating(buffer: *const c_void) {
    if !STARTED.load(Ordering::Acquire) {
        return;
    }
    let ips = stack::capture(config::get().stack_depth);
    let mut st = lock();
    let Some(live) = st.live.remove(&(buffer as usize)) else { return };
    if live.guard.is_some() {
        st.event(Event::GuardUnregister { buffer: live.id });
    }
    let op = st.ops.last().copied();
    st.send(Msg::Free { id: live.id, op, chain: ips });
}

/// The host is about to write `buffer`: a guarded one needs a fresh reference digest.
pub(crate) fn on_host_write(buffer: *const c_void) {
    if !STARTED.load(Ordering::Acquire) {
        return;
    }
    let mut st = lock();
    if let Some(g) = st.live.get_mut(&(buffer as usize)).and_then(|l| l.guard.as_mut()) {
        g.baseline = Baseline::Reset;
    }
}

/// `ttsan_op_begin`.
pub(crate) fn op_begin(name: String) {
    let mut st = lock();
    if matches!(st.phase, Phase::Failed | Phase::Closed) {
        return;
    }
    if st.ops.is_empty() {
        st.top_level_digests(None);
    }
    let index = st.next_op;
    st.next_op += 1;
    let parent = st.ops.last().copied();
    st.ops.push(index);
    st.event(Event::OpBegin(OpBegin {
        index,
        name,
        devices: Vec::new(),
        args: String::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        scratch: Vec::new(),
        parent,
    }));
}

/// `ttsan_op_end`.
pub(crate) fn op_end() {
    let mut st = lock();
    if matches!(st.phase, Phase::Failed | Phase::Closed) {
        return;
    }
    let Some(index) = st.ops.pop() else {
        st.note("unbalanced", "ttsan_op_end without a matching ttsan_op_begin (ignored)");
        return;
    };
    st.event(Event::OpEnd { index });
    if st.ops.is_empty() {
        st.top_level_digests(Some(index));
    }
}

/// `ttsan_guard`: false when the buffer is not a live one the shim recorded.
pub(crate) fn guard(buffer: *const c_void, name: String) -> bool {
    guard_where(|&ptr, _| ptr == buffer as usize, name)
}

/// `ttsan_guard_address`: the live buffer of that type at that (bank-local) address.
pub(crate) fn guard_address(space: Space, address: u64, name: String) -> bool {
    guard_where(|_, l| l.space == space && l.address == address, name)
}

fn guard_where(pick: impl Fn(&usize, &Live) -> bool, name: String) -> bool {
    let mut st = lock();
    let reason = if name.is_empty() { "ttsan_guard".to_string() } else { format!("ttsan_guard: {name}") };
    let Some(live) = st.live.iter_mut().find(|(p, l)| pick(p, l)).map(|(_, l)| l) else { return false };
    if live.guard.is_some() {
        return true;
    }
    live.guard = Some(Guard { reason: reason.clone(), baseline: Baseline::First });
    let id = live.id;
    st.event(Event::GuardRegister { buffer: id, reason });
    true
}

/// `ttsan_op_writes`: the innermost open op writes `buffer` (so a guard change is expected).
pub(crate) fn op_writes(buffer: *const c_void) -> bool {
    let mut st = lock();
    let (Some(&index), Some(id)) = (st.ops.last(), st.live.get(&(buffer as usize)).map(|l| l.id)) else {
        return false;
    };
    st.event(Event::OpDeclare { index, buffers: vec![id], relation: Declared::Output });
    true
}

/// Resolves a `MeshBuffer*` to its backing `Buffer*` for the host-write hook.
pub(crate) fn backing_of(mesh_buffer: *const c_void) -> Option<*const c_void> {
    let f = tt::api().ok()?.mesh_backing_buffer?;
    // SAFETY: mesh_buffer is the live MeshBuffer the write hook was called with.
    let b = unsafe { f(mesh_buffer) };
    (!b.is_null()).then_some(b)
}

/// At exit: notes, CaptureEnd, and the writer drained. A process that loaded tt-metal but
/// never allocated still gets a trace, so the wrapper can say "no allocations" rather than
/// "never loaded".
pub(crate) fn finish() {
    let mut st = lock();
    let loaded = tt::library_loaded();
    if st.phase == Phase::Idle && (loaded || !st.early.is_empty()) {
        st.start(None);
        st.mark(if loaded {
            "ttsan-preload: tt-metal was loaded but allocated no buffer".into()
        } else {
            "ttsan-preload: ops were marked but tt-metal was never loaded".into()
        });
    }
    if st.phase != Phase::Started {
        return;
    }
    if !st.ops.is_empty() {
        let open = st.ops.len();
        st.mark(format!("ttsan-preload: {open} op(s) still open at exit"));
    }
    let dropped = st.dropped;
    st.event(Event::CaptureEnd { dropped });
    st.phase = Phase::Closed;
    st.tx = None;
    drop(st);
    writer::wait_done(std::time::Duration::from_secs(5));
}
