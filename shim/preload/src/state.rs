//! The recorder: live buffers, the op stack, guards, and the channel to the writer.
//!
//! One lock ([`crate::lock::SpinLock`]) orders everything: an event is sent while the state
//! change it describes is made, so the trace order is the order tt-metal's allocator saw (a
//! free is recorded before the real free releases the address; an allocation after the real
//! allocation returns).

use crate::lock::{SpinGuard, SpinLock};
use crate::reentry::{thread_id, Entered};
use crate::stack::AddrMap;
use crate::writer::{self, Alloc, Msg};
use crate::{config, digest, geometry, stack, status, tt};
use crossbeam_channel::Sender;
use std::ffi::c_void;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
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
    /// Chosen by the selection criteria (not named by `ttsan_guard`).
    selected: bool,
}

struct Live {
    id: u64,
    space: Space,
    address: u64,
    size: u64,
    page_size: u64,
    /// Boxed: few buffers are guarded, and every live buffer is moved into the map and out of
    /// it again (a `Guard` inline made each entry 104 bytes instead of 80).
    guard: Option<Box<Guard>>,
    /// The top-level op open when it was allocated.
    top_op: Option<u64>,
    /// The `MeshBuffer` whose backing buffer this is, once `MeshBuffer::create` returned it:
    /// what each chip's copy is read through.
    mesh: Option<usize>,
}

/// An op that has begun and not ended.
struct OpenOp {
    index: u64,
    name: OpLabel,
    /// The thread that announced it: nesting is per thread.
    thread: i64,
    parent: Option<u64>,
}

/// An open op's name: interned, or inline when the table of names is full.
enum OpLabel {
    Id(u32),
    Text(String),
}

/// Distinct notes per trace: each is one mark, and a run with many guards fails the same way
/// for each of them.
const MAX_NOTES: usize = 64;

/// Circular-buffer ids start here, far above tt-metal's buffer unique ids (which share the
/// trace's id space and count up from 0).
const FIRST_CB_ID: u64 = 1 << 48;

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
    /// What was sent and not yet handed to the writer's queue.
    producer: writer::Producer,
    live: AddrMap<Live>,
    ops: Vec<OpenOp>,
    /// Names of ops announced so far (see `names`).
    op_names: crate::names::OpNames,
    next_op: u64,
    /// Top-level ops ended so far (for `TTSAN_GUARD_EVERY`).
    top_ends: u64,
    /// Whether the first compute op has begun ([`ttsan_preload_protocol::COMPUTE_OP`]).
    preload_over: bool,
    /// The mesh trace being captured: its ops are recorded, not run, and reads are not allowed.
    capturing: Option<u32>,
    next_cb: u64,
    /// The mesh device of the first mesh buffer seen, which guard reads synchronise.
    mesh_device: Option<usize>,
    reads: digest::ReadStats,
    /// Events before the first buffer told us the geometry (ops and marks from the C ABI).
    early: Vec<Msg>,
    devices: Vec<u32>,
    dropped: u64,
    noted: Vec<String>,
    mesh_shape: (u32, u32),
}

static STATE: SpinLock<State> = SpinLock::new(State {
    phase: Phase::Idle,
    tx: None,
    producer: writer::Producer::new(),
    live: AddrMap::with_hasher(std::hash::BuildHasherDefault::new()),
    ops: Vec::new(),
    op_names: crate::names::OpNames::new(),
    next_op: 0,
    top_ends: 0,
    preload_over: false,
    capturing: None,
    next_cb: FIRST_CB_ID,
    mesh_device: None,
    reads: digest::ReadStats::new(),
    early: Vec::new(),
    devices: Vec::new(),
    dropped: 0,
    noted: Vec::new(),
    mesh_shape: (1, 1),
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

fn lock() -> SpinGuard<'static, State> {
    STATE.lock()
}

/// [`writer::FlushStaged`]: the producers' staged entries are under the state lock, which is
/// only tried (the writer must not wait on tt-metal's threads; a signal may have interrupted
/// the thread that holds it).
fn flush_staged(retries: u32) -> bool {
    for attempt in 0..=retries {
        match STATE.try_lock() {
            Some(mut st) => return st.producer.try_flush(),
            None if attempt < retries => writer::nap(1),
            None => {}
        }
    }
    false
}

impl State {
    /// Inlined, as [`writer::Producer::send`] is (see there).
    #[inline(always)]
    fn send(&mut self, msg: Msg) {
        match (&self.tx, self.phase) {
            (Some(_), Phase::Started) => self.producer.send(msg),
            // Early messages are sent later, after other captures: no borrowed stack may wait.
            (_, Phase::Idle) => self.early.push(msg.without_stack()),
            _ => self.dropped += 1,
        }
    }

    fn event(&mut self, e: Event) {
        self.send(Msg::Event(Box::new(e)));
    }

    fn mark(&mut self, text: String) {
        self.event(Event::Mark { text });
    }

    /// A note, once per distinct text (digest failures repeat at every op); at most
    /// [`MAX_NOTES`] distinct ones.
    fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        if self.noted.len() < MAX_NOTES && !self.noted.contains(&text) {
            self.noted.push(text.clone());
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
        let tx = match writer::start(fd, &actual, flush_staged) {
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
        self.mesh_shape = (facts.mesh.rows, facts.mesh.cols);
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
        self.event(Event::Runtime(runtime(api.err())));
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

    /// Digests guarded buffers at a top-level op boundary. `after_op` is the op that just
    /// ended (`None` at an op's start). Buffers without a valid reference (newly guarded, or
    /// written by the host since) get a fresh baseline; the others are compared only when
    /// `check` is set (the op is sampled).
    fn top_level_digests(&mut self, after_op: Option<u64>, check: bool) {
        let Ok(api) = tt::api() else { return };
        if self.capturing.is_some() {
            // Inside a trace capture the ops are recorded, not run, and tt-metal refuses reads.
            return;
        }
        let devices = if self.devices.is_empty() { vec![0] } else { self.devices.clone() };
        let shape = self.mesh_shape;
        let mut out: Vec<Event> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        let mut todo: Vec<(digest::Guarded, Option<u64>)> = Vec::new();
        for (&ptr, live) in self.live.iter_mut() {
            let Some(g) = live.guard.as_mut() else { continue };
            let at = match (g.baseline, after_op) {
                (Baseline::Current, None) => continue,
                (Baseline::Current, Some(_)) if !check => continue,
                (Baseline::Reset, _) => {
                    out.push(Event::GuardUnregister { buffer: live.id });
                    out.push(Event::GuardRegister { buffer: live.id, reason: g.reason.clone() });
                    None
                }
                (Baseline::First, _) => None,
                (Baseline::Current, Some(op)) => Some(op),
            };
            g.baseline = Baseline::Current;
            let buffer = digest::Guarded {
                backing: ptr as *mut c_void,
                mesh: live.mesh,
                id: live.id,
                size: live.size,
                page_size: live.page_size,
            };
            todo.push((buffer, at));
        }
        if todo.is_empty() {
            // Nothing to read, so nothing was re-registered either.
            return;
        }
        // Every thread's latest mesh-buffer link, so that a buffer guarded now is read through
        // its mesh buffer even when the thread that created it has not taken the lock since
        // (only here: a program without guards never pays for it).
        for slot in LINKS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            self.apply_link(slot);
        }
        for (buffer, _) in &mut todo {
            buffer.mesh = self.live.get(&(buffer.backing as usize)).and_then(|l| l.mesh);
        }
        let target = digest::Target { mesh_device: self.mesh_device, devices: &devices, shape };
        let synced = digest::synchronize(api, &target, &mut self.reads);
        notes.extend(synced.err());
        for (buffer, at) in todo {
            let (digests, note) = digest::take(api, &target, &buffer, at, &mut self.reads);
            out.extend(digests.into_iter().map(Event::GuardDigest));
            notes.extend(note);
        }
        for e in out {
            self.event(e);
        }
        for n in notes {
            self.note(n);
        }
    }

    /// Links a live buffer to the mesh buffer `slot` names, if it is still the buffer the link
    /// was made for (a freed buffer's address may hold another buffer since; ids are unique).
    fn apply_link(&mut self, slot: &LinkSlot) {
        let Some((backing, id, mesh)) = slot.read() else { return };
        if let Some(live) = self.live.get_mut(&backing).filter(|l| l.id == id) {
            live.mesh = Some(mesh);
        }
    }

    /// The chips a circular buffer or program of tt-metal's `IDevice*` is recorded on: always
    /// every chip (`None`). That is exact for the mesh device; a single device's chip id is not
    /// read, which is noted once.
    fn device_of(&mut self, device: *const c_void) -> Option<u32> {
        let mesh = tt::api().map(|api| geometry::is_mesh(api, device)).unwrap_or(false);
        if !mesh && !device.is_null() {
            self.note("circular buffers of a single (non-mesh) device are recorded for every chip");
        }
        None
    }

    /// The innermost open op of this thread, else the latest open op of any thread (a worker
    /// thread allocating on behalf of an op announced elsewhere).
    fn current_op(&self) -> Option<u64> {
        if self.ops.is_empty() {
            // Without open ops the thread's id (a thread-local read) is not needed.
            return None;
        }
        let tid = thread_id();
        self.ops.iter().rev().find(|o| o.thread == tid).or(self.ops.last()).map(|o| o.index)
    }

    /// The top-level op that [`Self::current_op`] is nested in (or is).
    fn current_top_op(&self) -> Option<u64> {
        let mut op = self.current_op()?;
        while let Some(parent) = self.ops.iter().find(|o| o.index == op).and_then(|o| o.parent) {
            op = parent;
        }
        Some(op)
    }

    /// The first compute op began. When that is `top`, an op the graph tracker announced whose
    /// program just ran, what it allocated before the program (its outputs, which it writes)
    /// was chosen as preloaded and is not: those guards are withdrawn.
    fn end_preload(&mut self, top: Option<u64>) {
        if self.preload_over {
            return;
        }
        self.preload_over = true;
        let Some(top) = top.filter(|_| config::get().guards.preloaded) else { return };
        let mut withdrawn = Vec::new();
        for live in self.live.values_mut() {
            if live.top_op == Some(top) && live.guard.as_ref().is_some_and(|g| g.selected) {
                live.guard = None;
                withdrawn.push(live.id);
            }
        }
        withdrawn.sort_unstable();
        for buffer in withdrawn {
            self.event(Event::GuardUnregister { buffer });
        }
    }
}

/// The `Runtime` record: which build, where ops come from, and whether it can be checked.
fn runtime(missing: Option<&str>) -> ttsan_events::Runtime {
    let (build, version) = tt::build();
    let mut details = Vec::new();
    match &version {
        Some(v) if ttnn_wheel::TESTED_RELEASES.contains(&v.as_str()) => {
            details.push(format!("ttnn {v} is in ttsan's tested set"))
        }
        Some(v) => {
            details.push(format!("ttnn {v} is not in ttsan's tested set ({})", ttnn_wheel::TESTED_RELEASES.join(", ")))
        }
        None => details.push("not a ttnn wheel: the layout below was checked against this library alone".into()),
    }
    if let Some(m) = missing {
        details.push(format!("missing symbols: {m}"));
    }
    let (ops_from, unsupported) = match crate::processor::registration() {
        Ok(r) => {
            details.push(format!("IGraphProcessor slots: {}", r.layout.slots.describe()));
            let by = if r.layout.confirmed_by_ttnn {
                "named by the symbol tables and confirmed by ttnn's GraphProcessor"
            } else {
                "named by the symbol tables"
            };
            (format!("tt-metal's graph tracker (a registered IGraphProcessor; slots {by})"), None)
        }
        Err(why) => ("nothing: the graph processor could not be registered".to_string(), Some(why.clone())),
    };
    ttsan_events::Runtime { build, ops_from, unsupported, details }
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
pub(crate) fn on_allocated(buffer: *const c_void, entered: &Entered) {
    let cfg = config::get();
    let api = tt::api().ok();
    let facts = api.map(|a| read(a, buffer));
    let ips = stack::capture(cfg.stack_depth);
    let mut st = lock();
    if let Some(slot) = entered.thread().link_if_any() {
        // The link this thread published last, before it may publish the next one.
        if slot.take_pending() {
            st.apply_link(slot);
        }
    }
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
        st.note("SYSTEM_MEMORY buffers are host memory and are not recorded");
        return;
    };
    if f.sharded {
        st.note("sharded buffers are recorded with an interleaved footprint (shard placement is not read)");
    }
    if !f.mesh {
        st.note("device-local buffers are recorded for every chip (their chip id is not read)");
    }
    let op = st.current_op();
    let top_op = st.current_top_op();
    let preloading = !st.preload_over;
    // Checked here first: without selection criteria (the usual case) not even a call.
    let reason = cfg
        .guards
        .is_active()
        .then(|| {
            cfg.guards.reason(f.size, space, preloading, || {
                // SAFETY: on this thread, in the call that captured it.
                ips.map(|c| stack::frames(unsafe { c.ips() }, cfg.stack_depth)).unwrap_or_default()
            })
        })
        .flatten();
    let alloc = Alloc { id: f.id, space, address: f.address, size: f.size, page_size: f.page_size, op };
    st.send(Msg::Alloc(alloc, ips));
    let guard = reason.map(|reason| {
        st.event(Event::GuardRegister { buffer: f.id, reason: reason.clone() });
        Box::new(Guard { reason, baseline: Baseline::First, selected: true })
    });
    let live =
        Live { id: f.id, space, address: f.address, size: f.size, page_size: f.page_size, guard, top_op, mesh: None };
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
    let op = st.current_op();
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

/// Who announced an op: it decides whether the op ends the preload phase
/// ([`ttsan_preload_protocol::COMPUTE_OP`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpSource {
    /// `ttsan_op_begin`: the program marks its own ops.
    Marked,
    /// tt-metal's graph tracker (`track_function_start`): a compute op once it runs a program.
    Tracker,
    /// A mesh-trace replay (it runs the captured programs).
    Replay,
}

/// An op begins on this thread (`track_function_start`, `ttsan_op_begin`, a trace replay).
pub(crate) fn op_begin(name: &str, source: OpSource) {
    let mut st = lock();
    if matches!(st.phase, Phase::Failed | Phase::Closed) {
        return;
    }
    let thread = thread_id();
    let parent = st.ops.iter().rev().find(|o| o.thread == thread).map(|o| o.index);
    if parent.is_none() {
        st.top_level_digests(None, false);
        if source != OpSource::Tracker {
            st.end_preload(None);
        }
    }
    let index = st.next_op;
    st.next_op += 1;
    let label = match st.op_names.intern(name) {
        Some((id, new)) => {
            if new {
                st.send(Msg::OpName(id, name.to_owned()));
            }
            st.send(Msg::OpBegin { index, parent, name: id });
            OpLabel::Id(id)
        }
        None => {
            st.event(Event::OpBegin(OpBegin {
                index,
                name: name.to_owned(),
                devices: Vec::new(),
                args: String::new(),
                inputs: Vec::new(),
                outputs: Vec::new(),
                scratch: Vec::new(),
                parent,
            }));
            OpLabel::Text(name.to_owned())
        }
    };
    st.ops.push(OpenOp { index, name: label, thread, parent });
}

/// The innermost op of this thread ends.
pub(crate) fn op_end() {
    let mut st = lock();
    if matches!(st.phase, Phase::Failed | Phase::Closed) {
        return;
    }
    let thread = thread_id();
    let Some(pos) = st.ops.iter().rposition(|o| o.thread == thread) else {
        st.note("an op ended on a thread with no open op (ignored)");
        return;
    };
    let op = st.ops.remove(pos);
    st.send(Msg::OpEnd { index: op.index });
    if op.parent.is_none() {
        st.top_ends += 1;
        let name = match &op.name {
            OpLabel::Id(id) => st.op_names.get(*id),
            OpLabel::Text(t) => t,
        };
        let check = config::get().sample.selects(st.top_ends, name);
        st.top_level_digests(Some(op.index), check);
    }
}

/// A program placed circular buffers (`track_allocate_cb`).
pub(crate) fn on_cb_allocated(
    cores: Result<Vec<[usize; 4]>, String>,
    address: u64,
    size: u64,
    globally_allocated: bool,
    device: *const c_void,
) {
    let mut st = lock();
    // Before the first buffer (Idle) the event waits with the early ones, as an op would.
    if matches!(st.phase, Phase::Failed | Phase::Closed) {
        return;
    }
    let cores = match cores {
        Ok(c) => c,
        Err(why) => {
            st.note(format!("a circular buffer at {address:#x} was not recorded: {why}"));
            return;
        }
    };
    let device = st.device_of(device);
    let id = st.next_cb;
    st.next_cb += 1;
    let op = st.current_op();
    let cores = cores
        .into_iter()
        .map(|[x0, y0, x1, y1]| {
            ttsan_events::CoreRange::new(
                ttsan_events::CoreCoord::new(x0 as u16, y0 as u16),
                ttsan_events::CoreCoord::new(x1 as u16, y1 as u16),
            )
        })
        .collect();
    st.event(Event::CbAlloc(ttsan_events::CbAlloc {
        id,
        device,
        cores,
        address,
        size,
        globally_allocated,
        name: String::new(),
        op,
    }));
}

/// A program released its circular buffers (`track_deallocate_cb`).
pub(crate) fn on_cbs_released(device: *const c_void) {
    let mut st = lock();
    // Before the first buffer (Idle) the event waits with the early ones, as an op would.
    if matches!(st.phase, Phase::Failed | Phase::Closed) {
        return;
    }
    let device = st.device_of(device);
    st.event(Event::CbDeallocAll { device });
}

/// A program was dispatched (`track_program`).
pub(crate) fn on_program(id: u64, device: *const c_void) {
    let mut st = lock();
    // Before the first buffer (Idle) the event waits with the early ones, as an op would.
    if matches!(st.phase, Phase::Failed | Phase::Closed) {
        return;
    }
    let device = st.device_of(device);
    let op = st.current_op();
    st.event(Event::Program(ttsan_events::ProgramRun { id, device, op }));
    if !st.preload_over {
        let top = st.current_top_op();
        st.end_preload(top);
    }
}

/// A mesh trace capture began or ended, or a trace was replayed or released.
pub(crate) fn on_mesh_trace(action: ttsan_events::TraceAction, trace: u32) {
    use ttsan_events::TraceAction;
    let mut st = lock();
    if matches!(st.phase, Phase::Failed | Phase::Closed) {
        return;
    }
    let op = st.current_op();
    st.event(Event::MeshTrace(ttsan_events::MeshTrace { trace, action, op }));
    match action {
        TraceAction::BeginCapture => st.capturing = Some(trace),
        TraceAction::EndCapture => st.capturing = None,
        TraceAction::Replay | TraceAction::Release => {}
    }
}

/// The graph processor cannot be registered with this build: the wrapper must say the run was
/// not checked (the trace's `Runtime` record says why).
pub(crate) fn on_unsupported(why: &str) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::AcqRel) {
        status::append(status::STATUS_UNSUPPORTED, why);
    }
}

/// `mesh_buffer` has its backing buffer (allocated just before, on this thread) and its device.
///
/// The link is published in the thread's [`LinkSlot`] without taking the state lock (one lock
/// and unlock, two atomic read-modify-writes that wait for tt-metal's pending stores, per mesh
/// buffer otherwise); it is applied at the thread's next allocation, or by whoever reads links
/// first (guard digests). Only while a link is still pending, or while the mesh device is not
/// known yet, does this take the lock.
pub(crate) fn on_mesh_buffer(mesh_buffer: *const c_void, entered: &Entered) {
    let Ok(api) = tt::api() else { return };
    let (Some(backing_of), Some(device_of)) = (api.mesh_backing_buffer, api.mesh_buffer_device) else { return };
    // SAFETY: a live MeshBuffer; a const getter.
    let backing = unsafe { backing_of(mesh_buffer) };
    // SAFETY: the mesh buffer's live backing buffer; a const getter.
    let id = if backing.is_null() { u64::MAX } else { (unsafe { (api.unique_id)(backing) }) as u64 };
    let slot = entered.thread().link();
    if !backing.is_null() && MESH_DEVICE_KNOWN.load(Ordering::Relaxed) && !slot.pending.load(Ordering::Relaxed) {
        slot.publish(backing as usize, id, mesh_buffer as usize);
        slot.pending.store(true, Ordering::Relaxed);
        return;
    }
    // Only until the mesh device is known: `MeshBuffer::device()` locks a weak_ptr (two atomic
    // read-modify-writes), per buffer.
    let device = if MESH_DEVICE_KNOWN.load(Ordering::Relaxed) {
        std::ptr::null()
    } else {
        // SAFETY: as above.
        unsafe { device_of(mesh_buffer) }
    };
    let mut st = lock();
    if slot.take_pending() {
        st.apply_link(slot);
    }
    if let Some(live) = st.live.get_mut(&(backing as usize)).filter(|l| l.id == id) {
        live.mesh = Some(mesh_buffer as usize);
    }
    if st.mesh_device.is_none() && !device.is_null() {
        st.mesh_device = Some(device as usize);
        MESH_DEVICE_KNOWN.store(true, Ordering::Relaxed);
    }
}

/// Whether the state's `mesh_device` is set (it never changes after), read without the lock.
static MESH_DEVICE_KNOWN: AtomicBool = AtomicBool::new(false);

/// One thread's latest link of a backing buffer to its mesh buffer, written by that thread
/// without the state lock and read under it by any thread: a sequence lock over plain fields
/// (stores and loads only, no read-modify-write on the owner's side).
///
/// A slot is made per thread that creates a mesh buffer and kept for the life of the process
/// (a few dozen bytes per such thread): a link of a thread that exited may still be pending.
/// The default is a slot with nothing published.
#[derive(Default)]
pub(crate) struct LinkSlot {
    /// Odd while the owner writes.
    seq: AtomicU64,
    backing: AtomicUsize,
    id: AtomicU64,
    mesh: AtomicUsize,
    /// Published and not yet applied by the owner (only the owning thread touches it).
    pending: AtomicBool,
}

/// Every thread's slot (see [`LinkSlot`]). Taken with the state lock held or with no lock;
/// never the other way round.
static LINKS: Mutex<Vec<&'static LinkSlot>> = Mutex::new(Vec::new());

impl LinkSlot {
    /// A new slot for the calling thread, registered for readers.
    pub(crate) fn register() -> &'static LinkSlot {
        let slot: &'static LinkSlot = Box::leak(Box::default());
        LINKS.lock().unwrap_or_else(|e| e.into_inner()).push(slot);
        slot
    }

    /// Whether the owner's last link is still to be applied by the owner, which it now will.
    /// Only the owning thread calls this: a load and a store, not a swap (an atomic
    /// read-modify-write costs as much as the lock this saves).
    fn take_pending(&self) -> bool {
        let pending = self.pending.load(Ordering::Relaxed);
        if pending {
            self.pending.store(false, Ordering::Relaxed);
        }
        pending
    }

    /// The owner publishes a link (the writer's side of the sequence lock).
    fn publish(&self, backing: usize, id: u64, mesh: usize) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.backing.store(backing, Ordering::Relaxed);
        self.id.store(id, Ordering::Relaxed);
        self.mesh.store(mesh, Ordering::Relaxed);
        self.seq.store(s + 2, Ordering::Release);
    }

    /// The link last published, or `None` when there is none or the owner is writing one now
    /// (then it is a newer link, published as the owner's mesh buffer is being created: no
    /// reader under the lock could have been told of that buffer yet either way).
    fn read(&self) -> Option<(usize, u64, usize)> {
        let s = self.seq.load(Ordering::Acquire);
        if s == 0 || s % 2 == 1 {
            return None;
        }
        let link =
            (self.backing.load(Ordering::Relaxed), self.id.load(Ordering::Relaxed), self.mesh.load(Ordering::Relaxed));
        fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == s).then_some(link)
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
    live.guard = Some(Box::new(Guard { reason: reason.clone(), baseline: Baseline::First, selected: false }));
    let id = live.id;
    st.event(Event::GuardRegister { buffer: id, reason });
    true
}

/// `ttsan_op_writes`: the innermost open op writes `buffer` (so a guard change is expected).
pub(crate) fn op_writes(buffer: *const c_void) -> bool {
    let mut st = lock();
    let (Some(index), Some(id)) = (st.current_op(), st.live.get(&(buffer as usize)).map(|l| l.id)) else {
        return false;
    };
    st.event(Event::OpDeclare { index, buffers: vec![id], relation: Declared::Output });
    true
}

/// `ttsan_next_op`: the index the next op will get (ops are numbered in one sequence for the
/// whole process, across threads).
pub(crate) fn next_op_index() -> u64 {
    lock().next_op
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
    if st.reads.attempts > 0 {
        let read = st.reads.describe();
        st.mark(format!("ttsan-preload: {read}"));
    }
    if !st.ops.is_empty() {
        let open = st.ops.len();
        st.mark(format!("ttsan-preload: {open} op(s) still open at exit"));
    }
    let dropped = st.dropped;
    st.event(Event::CaptureEnd { dropped });
    st.phase = Phase::Closed;
    // Everything staged reaches the queue before the writer is told to finish.
    st.producer.flush();
    st.tx = None;
    drop(st);
    writer::wait_done(std::time::Duration::from_secs(5));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> &'static LinkSlot {
        Box::leak(Box::default())
    }

    #[test]
    fn a_link_slot_reads_back_the_last_link_published() {
        let s = slot();
        assert_eq!(s.read(), None, "nothing published yet");
        s.publish(0x1000, 7, 0x2000);
        assert_eq!(s.read(), Some((0x1000, 7, 0x2000)));
        s.publish(0x3000, 8, 0x4000);
        assert_eq!(s.read(), Some((0x3000, 8, 0x4000)));
        s.pending.store(true, Ordering::Relaxed);
        assert!(s.take_pending());
        assert!(!s.take_pending());
    }

    #[test]
    fn a_link_is_never_read_torn_while_its_owner_writes() {
        // The owner publishes links whose three fields agree; a reader on another thread sees
        // either a whole link or none.
        let s = slot();
        let stop = &*Box::leak(Box::new(AtomicBool::new(false)));
        let owner = std::thread::spawn(move || {
            for i in 1..200_000usize {
                s.publish(i, i as u64, i);
            }
            stop.store(true, Ordering::Release);
        });
        let mut whole = 0u64;
        while !stop.load(Ordering::Acquire) {
            if let Some((b, id, m)) = s.read() {
                assert!(b == m && id == b as u64, "torn: {b} {id} {m}");
                whole += 1;
            }
        }
        owner.join().unwrap();
        assert!(whole > 0 || s.read().is_some());
    }

    #[test]
    fn a_live_entry_stays_small() {
        // Every allocation moves one into the live map and every free moves it out again.
        assert!(std::mem::size_of::<Live>() <= 80, "{} bytes", std::mem::size_of::<Live>());
    }
}
