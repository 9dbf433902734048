//! The one writer thread, and the file it appends to.
//!
//! Producers hand complete events to the writer over a channel, in the order tt-metal's
//! allocator saw them; the writer names each distinct stack once (a `StackDef` record, then
//! only its id), encodes records and appends them with write(2). A signal handler can push out
//! whatever the writer has not written yet without allocating: it waits (bounded) for the
//! writer to drain, then writes the preallocated pending buffer itself.

use crate::stack::{AddrMap, Chain};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::cell::{Cell, UnsafeCell};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::Duration;
use ttsan_events::trace::{encode_record, Header};
use ttsan_events::{BufferAlloc, BufferFree, Event, Layout, Role, Space};

/// What producers send. Allocations and frees, the hot path, travel as small plain values and
/// become events here; everything else is boxed. The channel's slots are as large as the
/// largest message, and every send and receive copies one: an `Event` inline (192 bytes)
/// made each slot span four cache lines instead of two.
pub(crate) enum Msg {
    /// An event ready to encode.
    Event(Box<Event>),
    /// A buffer allocation, with the stack (raw return addresses) the writer names.
    Alloc(Alloc, Option<Chain>),
    /// A buffer free, with its stack.
    Free {
        /// The id given at allocation.
        id: u64,
        /// The innermost open op.
        op: Option<u64>,
        /// The stack.
        chain: Option<Chain>,
    },
}

/// What the shim knows of an allocation (the rest of a `BufferAlloc` is the same for all).
pub(crate) struct Alloc {
    /// tt-metal's unique id of the buffer.
    pub id: u64,
    /// Memory space.
    pub space: Space,
    /// Bank-local address.
    pub address: u64,
    /// Bytes over all banks.
    pub size: u64,
    /// Page size.
    pub page_size: u64,
    /// The innermost open op.
    pub op: Option<u64>,
}

/// Messages drained per write(2): bounds the latency of a burst reaching the file. A busy
/// program sends about one message per microsecond, so one write covers a nap's worth.
const BATCH: usize = 1024;
/// Messages in flight between producers and the writer.
const CHANNEL_CAPACITY: usize = 1 << 14;
/// Preallocated so that the signal path never allocates.
const PENDING_CAPACITY: usize = 1 << 20;
/// Longest the writer sleeps when idle; the worst-case delay before an event reaches the disk.
const MAX_IDLE: Duration = Duration::from_millis(8);
/// The first nap after work. Each wake-up is a context switch (a tenth of the writer's time at
/// 0.25 ms); a millisecond's backlog is still far below the channel's capacity.
const MIN_IDLE: Duration = Duration::from_millis(1);

struct Sink {
    lock: AtomicBool,
    fd: AtomicI32,
    pending: UnsafeCell<Vec<u8>>,
    sent: AtomicU64,
    written: AtomicU64,
    done: AtomicBool,
}

// SAFETY: `pending` is only touched while `lock` is held.
unsafe impl Sync for Sink {}

static SINK: Sink = Sink {
    lock: AtomicBool::new(false),
    fd: AtomicI32::new(-1),
    pending: UnsafeCell::new(Vec::new()),
    sent: AtomicU64::new(0),
    written: AtomicU64::new(0),
    done: AtomicBool::new(false),
};

thread_local! {
    static IS_WRITER: Cell<bool> = const { Cell::new(false) };
}

/// A trace file that could not be created.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriterError {
    /// open(2) or the header write failed.
    #[error("cannot create trace {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the trace writer thread: {0}")]
    Spawn(std::io::Error),
}

fn open_flags(path: &Path, flags: i32) -> Result<RawFd, std::io::Error> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: c is NUL-terminated.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_WRONLY | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

/// Creates this process's trace: `path` if nobody has it yet, else `path.<pid>` (another
/// process of the same run, e.g. an exec'd child, already writes `path`).
pub(crate) fn claim(path: &Path) -> Result<(RawFd, PathBuf), WriterError> {
    match open_flags(path, libc::O_CREAT | libc::O_EXCL) {
        Ok(fd) => Ok((fd, path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mut own = path.as_os_str().to_owned();
            own.push(format!(".{}", std::process::id()));
            let own = PathBuf::from(own);
            let fd = open_flags(&own, libc::O_CREAT | libc::O_TRUNC)
                .map_err(|source| WriterError::Create { path: own.clone(), source })?;
            Ok((fd, own))
        }
        Err(source) => Err(WriterError::Create { path: path.to_path_buf(), source }),
    }
}

/// write(2) until everything is out; async-signal-safe.
fn write_all(fd: RawFd, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: bytes is a valid slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        bytes = &bytes[n as usize..];
    }
    true
}

fn try_lock() -> bool {
    SINK.lock.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
}

fn unlock() {
    SINK.lock.store(false, Ordering::Release);
}

/// Writes the header and starts the writer thread on `fd`.
pub(crate) fn start(fd: RawFd, path: &Path) -> Result<Sender<Msg>, WriterError> {
    let mut header = Vec::new();
    let _ = Header::current().write_to(&mut header);
    if !write_all(fd, &header) {
        return Err(WriterError::Create { path: path.to_path_buf(), source: std::io::Error::last_os_error() });
    }
    while !try_lock() {
        std::hint::spin_loop();
    }
    // SAFETY: the lock is held.
    unsafe { (*SINK.pending.get()).reserve(PENDING_CAPACITY) };
    SINK.fd.store(fd, Ordering::Release);
    unlock();
    // Bounded: a writer that falls behind slows producers down instead of growing memory
    // without limit (and the array flavour sends without allocating).
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
    std::thread::Builder::new().name("ttsan-writer".into()).spawn(move || run(rx)).map_err(WriterError::Spawn)?;
    Ok(tx)
}

/// Sends one message, counted so that a signal handler knows when the writer has caught up.
pub(crate) fn send(tx: &Sender<Msg>, msg: Msg) {
    SINK.sent.fetch_add(1, Ordering::AcqRel);
    if tx.send(msg).is_err() {
        // The writer is gone (exit in progress); count it as handled so nobody waits for it.
        SINK.written.fetch_add(1, Ordering::AcqRel);
    }
}

fn block_async_signals() {
    // SIGINT/SIGTERM go to another thread, whose handler can wait for this one to drain.
    // SAFETY: plain signal-mask manipulation of the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Interned stacks: each distinct stack is named (a lookup per frame) and written as one
/// `StackDef` record the first time it is seen; allocation and free records then carry only its
/// id. A program allocates from few call chains, so both happen rarely.
struct StackIds {
    /// By the chain's address; the chain is kept so that the address stays its own.
    by_chain: AddrMap<(Chain, u64)>,
    /// By text: a chain unwound afresh (a thread's chain cache dropped it) names the same stack
    /// as before and must not cost a second definition.
    by_text: HashMap<String, u64>,
    /// Never reset, so that an id is never given to a second text, even after a clear.
    next: u64,
    /// Entries per map before both are cleared ([`STACK_NAMES`]; tests lower it).
    limit: usize,
}

/// Distinct chains remembered at most (a bound, not a policy). Past it both maps are cleared
/// and stacks seen again are defined again, under new ids.
const STACK_NAMES: usize = 16 * 1024;

impl StackIds {
    fn new(limit: usize) -> Self {
        StackIds { by_chain: AddrMap::default(), by_text: HashMap::new(), next: 0, limit }
    }

    /// The id of `chain`'s stack. A stack not defined yet gets its `StackDef` appended to `out`
    /// here, ahead of the record that uses it, in the same ordered stream: whatever prefix of
    /// the file survives a crash holds every definition its records refer to.
    fn id(&mut self, chain: Chain, scratch: &mut Vec<u8>, out: &mut Vec<u8>) -> u64 {
        let key = chain.as_ptr() as usize;
        if let Some(&(_, id)) = self.by_chain.get(&key) {
            return id;
        }
        let frames = crate::stack::symbolize(&chain, crate::config::get().stack_depth);
        if self.by_chain.len() >= self.limit || self.by_text.len() >= self.limit {
            self.by_chain.clear();
            self.by_text.clear();
        }
        let id = match self.by_text.get(&frames) {
            Some(&id) => id,
            None => {
                let id = self.next;
                self.next += 1;
                encode_record(&Event::StackDef { id, frames: frames.clone() }, scratch, out);
                self.by_text.insert(frames, id);
                id
            }
        };
        self.by_chain.insert(key, (chain, id));
        id
    }
}

fn encode(msg: Msg, stacks: &mut StackIds, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    let mut stack_id = |chain: Option<Chain>| chain.filter(|c| !c.is_empty()).map(|c| stacks.id(c, scratch, out));
    let event = match msg {
        Msg::Event(e) => *e,
        Msg::Alloc(a, chain) => Event::BufferAlloc(BufferAlloc {
            id: a.id,
            // The shim does not read the chip or the shard placement (see the notes it writes).
            device: None,
            space: a.space,
            address: a.address,
            size: a.size,
            page_size: a.page_size,
            layout: Layout::Interleaved,
            name: String::new(),
            role: Role::Other,
            op: a.op,
            stack: None,
            stack_id: stack_id(chain),
        }),
        Msg::Free { id, op, chain } => Event::BufferFree(BufferFree { id, op, stack: None, stack_id: stack_id(chain) }),
    };
    encode_record(&event, scratch, out);
}

fn run(rx: Receiver<Msg>) {
    let _ = IS_WRITER.try_with(|w| w.set(true));
    block_async_signals();
    let mut stacks = StackIds::new(STACK_NAMES);
    let mut scratch = Vec::with_capacity(4096);
    let mut frames = Vec::with_capacity(64 * 1024);
    let mut idle = MIN_IDLE;
    loop {
        let mut n = 0u64;
        let mut closed = false;
        while n < BATCH as u64 {
            match rx.try_recv() {
                Ok(msg) => {
                    encode(msg, &mut stacks, &mut scratch, &mut frames);
                    n += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if n > 0 {
            commit(&frames, n);
            frames.clear();
            idle = MIN_IDLE;
            continue;
        }
        if closed {
            break;
        }
        // Polling instead of blocking on the channel keeps senders from paying a futex wake-up
        // per event; the delay only postpones when bytes reach the file.
        std::thread::sleep(idle);
        idle = (idle * 2).min(MAX_IDLE);
    }
    SINK.done.store(true, Ordering::Release);
}

/// `messages` counts what producers sent, not records: the stack definitions the writer adds
/// were never sent, and a signal handler waits for `written` to reach `sent`.
fn commit(frames: &[u8], messages: u64) {
    while !try_lock() {
        std::thread::yield_now();
    }
    let fd = SINK.fd.load(Ordering::Acquire);
    // SAFETY: the lock is held.
    let pending = unsafe { &mut *SINK.pending.get() };
    if pending.len() + frames.len() <= pending.capacity() {
        pending.extend_from_slice(frames);
        SINK.written.fetch_add(messages, Ordering::AcqRel);
        write_all(fd, pending);
        pending.clear();
    } else {
        // Larger than the preallocated buffer (a huge digest record): write it straight out.
        write_all(fd, pending);
        pending.clear();
        SINK.written.fetch_add(messages, Ordering::AcqRel);
        write_all(fd, frames);
    }
    unlock();
}

/// Waits for the writer to finish after the last sender is gone (bounded: exit must not hang).
pub(crate) fn wait_done(limit: Duration) {
    let step = Duration::from_millis(1);
    let mut waited = Duration::ZERO;
    while !SINK.done.load(Ordering::Acquire) && waited < limit {
        std::thread::sleep(step);
        waited += step;
    }
    let fd = SINK.fd.swap(-1, Ordering::AcqRel);
    if fd >= 0 && SINK.done.load(Ordering::Acquire) {
        // SAFETY: fd is ours; the writer has stopped using it.
        unsafe { libc::close(fd) };
    }
}

fn nap(ms: i64) {
    let ts = libc::timespec { tv_sec: 0, tv_nsec: ms * 1_000_000 };
    // SAFETY: nanosleep is async-signal-safe.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// From a signal handler: lets the writer drain what was sent (at most ~0.2 s), then writes
/// whatever is still pending with write(2). Allocates nothing and takes no lock it could wait
/// on forever. With `keep_locked` the writer stays locked out afterwards (the process is about
/// to die and must not start a record it cannot finish).
pub(crate) fn flush_from_signal(keep_locked: bool) {
    if SINK.fd.load(Ordering::Acquire) < 0 {
        return;
    }
    let on_writer = IS_WRITER.try_with(|w| w.get()).unwrap_or(true);
    if !on_writer {
        for _ in 0..200 {
            if SINK.written.load(Ordering::Acquire) >= SINK.sent.load(Ordering::Acquire) {
                break;
            }
            nap(1);
        }
    }
    let mut locked = false;
    for _ in 0..(if on_writer { 1 } else { 100 }) {
        if try_lock() {
            locked = true;
            break;
        }
        nap(1);
    }
    if !locked {
        return;
    }
    let fd = SINK.fd.load(Ordering::Acquire);
    // SAFETY: the lock is held; set_len(0) neither allocates nor frees.
    unsafe {
        let pending = &mut *SINK.pending.get();
        if fd >= 0 && !pending.is_empty() {
            write_all(fd, pending);
            pending.set_len(0);
        }
    }
    if !keep_locked {
        unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttsan_events::trace::TraceReader;

    /// The records in `out`, as a reader sees them.
    fn records(out: &[u8]) -> Vec<Event> {
        let mut file = Vec::new();
        let _ = Header::current().write_to(&mut file);
        file.extend_from_slice(out);
        let reader = TraceReader::new(std::io::Cursor::new(file)).expect("header");
        reader.map(|e| e.expect("in-memory read")).collect()
    }

    fn defs(events: &[Event]) -> Vec<(u64, String)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::StackDef { id, frames } => Some((*id, frames.clone())),
                _ => None,
            })
            .collect()
    }

    /// A chain of made-up return addresses: dladdr finds nothing there, so each names itself.
    fn chain(ips: &[usize]) -> Chain {
        ips.to_vec().into()
    }

    #[test]
    fn each_stack_is_defined_once_and_ids_survive_clearing() {
        let mut stacks = StackIds::new(2);
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        let a = chain(&[0x10, 0x20]);
        let b = chain(&[0x30]);
        let a_id = stacks.id(a.clone(), &mut scratch, &mut out);
        assert_eq!(stacks.id(a.clone(), &mut scratch, &mut out), a_id, "same chain, same id");
        // The same stack unwound afresh (another Arc): same text, same id, no second definition.
        assert_eq!(stacks.id(chain(&[0x10, 0x20]), &mut scratch, &mut out), a_id);
        let b_id = stacks.id(b.clone(), &mut scratch, &mut out);
        assert_ne!(a_id, b_id);
        let first = defs(&records(&out));
        assert_eq!(first.len(), 2, "{first:?}");
        assert!(first[0].1.contains("0x10"), "{first:?}");

        // Full: the maps are cleared; a stack seen again is defined again under a new id, so
        // that no id ever stands for two texts.
        let c_id = stacks.id(chain(&[0x40]), &mut scratch, &mut out);
        let a_again = stacks.id(a, &mut scratch, &mut out);
        let all = defs(&records(&out));
        assert_eq!(all.len(), 4, "{all:?}");
        assert!(![a_id, b_id].contains(&c_id) && ![a_id, b_id, c_id].contains(&a_again));
        let ids: std::collections::HashSet<u64> = all.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), all.len(), "ids are unique: {all:?}");
        assert_eq!(all[3].1, first[0].1, "the re-definition names the same stack");
    }

    #[test]
    fn hot_messages_fit_two_cache_lines() {
        // An inline `Event` (192 bytes) made every channel slot (message plus a stamp) four cache
        // lines; the hot messages are 72.
        assert!(std::mem::size_of::<Msg>() <= 120, "{} bytes", std::mem::size_of::<Msg>());
    }

    #[test]
    fn a_definition_precedes_the_record_that_uses_it() {
        let mut stacks = StackIds::new(STACK_NAMES);
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        let free = |id, chain| Msg::Free { id, op: None, chain };
        encode(free(1, Some(chain(&[0x50]))), &mut stacks, &mut scratch, &mut out);
        encode(free(2, Some(chain(&[0x50]))), &mut stacks, &mut scratch, &mut out);
        encode(free(3, None), &mut stacks, &mut scratch, &mut out);
        let events = records(&out);
        assert_eq!(
            events.iter().map(Event::kind).collect::<Vec<_>>(),
            ["stack_def", "buffer_free", "buffer_free", "buffer_free"]
        );
        let Event::StackDef { id, frames } = &events[0] else { unreachable!() };
        for (e, want) in events[1..].iter().zip([Some(*id), Some(*id), None]) {
            let Event::BufferFree(f) = e else { unreachable!() };
            assert_eq!(f.stack_id, want);
            // Resolved by the reader.
            assert_eq!(f.stack.as_deref(), want.map(|_| frames.as_str()));
        }
    }
}
