//! The one writer thread, and the file it appends to.
//!
//! Producers append their messages, in the order tt-metal's allocator saw them, to one shared
//! queue: allocations and frees as small plain values, their stacks as a small index into a
//! table of call chains (a chain seen for the first time is queued once, ahead of its first
//! use). The writer thread takes the whole queue every millisecond or so, names each distinct
//! stack once (a `StackDef` record, then only its id), and appends blocks of records
//! ([`ttsan_events::trace::BlockBuilder`]): allocations and frees as fixed-size raw records,
//! everything else postcard-encoded, one checksum per block, one write(2) per batch. A signal
//! handler can wait (bounded) for the writer to drain and then lock it out, without
//! allocating.
//!
//! Why a queue and blocks instead of a channel and a COBS record per event: the writer thread
//! runs inside the traced program and its CPU time is the program's. Per event, the channel's
//! receive, the postcard + CRC + COBS framing and the pointer-keyed stack lookup were most of
//! it (docs/performance.md).

use crate::stack::{AddrMap, Chain, ChainRef};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use ttsan_events::trace::{BlockBuilder, Header, RawAlloc, FLAG_BLOCKS, FORMAT_VERSION};
use ttsan_events::{Event, OpBegin, Space};

/// What producers send. Allocations, frees and ops, the hot path, travel as small plain values
/// and become events here; everything else is boxed: every message is moved at least twice on
/// tt-metal's thread, and an `Event` inline is 192 bytes.
pub(crate) enum Msg {
    /// An event ready to encode.
    Event(Box<Event>),
    /// A buffer allocation, with the stack (raw return addresses) the writer names, borrowed
    /// from the capturing thread's cache until the producer's chain table has seen it.
    Alloc(Alloc, Option<ChainRef>),
    /// A buffer free, with its stack.
    Free {
        /// The id given at allocation.
        id: u64,
        /// The innermost open op.
        op: Option<u64>,
        /// The stack (borrowed, as for `Alloc`).
        chain: Option<ChainRef>,
    },
    /// An op name's id, sent once before the first op that uses it (not a message of its own:
    /// it is not counted).
    OpName(u32, String),
    /// An op begins (an `OpBegin` with only these fields set).
    OpBegin {
        /// The op's index.
        index: u64,
        /// The enclosing op on the same thread.
        parent: Option<u64>,
        /// Its name's id.
        name: u32,
    },
    /// An op ends.
    OpEnd {
        /// The op's index.
        index: u64,
    },
}

impl Msg {
    /// The message without its borrowed stack, for a message that outlives the call that
    /// captured it.
    pub(crate) fn without_stack(self) -> Msg {
        match self {
            Msg::Alloc(a, _) => Msg::Alloc(a, None),
            Msg::Free { id, op, .. } => Msg::Free { id, op, chain: None },
            m => m,
        }
    }
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

/// Queued messages at most before producers wait for the writer: bounds memory (an entry is
/// 32 bytes) when the writer falls behind. A busy program queues about two messages per
/// microsecond, so this is far more than the writer's longest nap.
const QUEUE_LIMIT: usize = 1 << 16;
/// Entries each half of the queue has room for: the limit plus one staged run (a message may
/// stage up to three entries: a chain table reset and a new chain before it).
const QUEUE_CAPACITY: usize = QUEUE_LIMIT + STAGE + 4;
/// Records per block: a damaged block costs all of them, a block costs 16 bytes of header.
const BLOCK_RECORDS: u32 = 4096;
/// Longest the writer sleeps when idle; the worst-case delay before an event reaches the disk.
const MAX_IDLE: Duration = Duration::from_millis(8);
/// The nap after work. Each wake-up is a context switch and a write(2), whose cost is spread
/// over what four milliseconds' backlog holds (about 6000 records in the allocate/free loop;
/// 2 ms measured about 20 ns per pair more of writer time, 8 ms no better than 4).
const MIN_IDLE: Duration = Duration::from_millis(4);

/// The file and its counters. Producers write `sent` (under the queue's lock), the writer
/// `written`: on separate cache lines, so that neither side's stores evict the other's line.
struct Sink {
    lock: AtomicBool,
    fd: AtomicI32,
    done: AtomicBool,
    sent: Padded,
    written: Padded,
}

#[repr(align(128))]
struct Padded(AtomicU64);

static SINK: Sink = Sink {
    lock: AtomicBool::new(false),
    fd: AtomicI32::new(-1),
    done: AtomicBool::new(false),
    sent: Padded(AtomicU64::new(0)),
    written: Padded(AtomicU64::new(0)),
};

/// What the queue holds: the producers' messages, with chains replaced by their index.
///
/// The hot entries are packed into 32 bytes, half a cache line (`Option`s as flags, a sentinel
/// index, 32-bit fields with a boxed variant for what does not fit) rather than the 72 of a
/// message: every entry crosses from tt-metal's thread to the writer's core, a line at a time.
enum Entry {
    Event(Box<Event>),
    /// An allocation whose address, size, page size and op index fit 32 bits (tt-metal's
    /// `Buffer::address()` is a `uint32_t`; the others almost always do).
    Alloc {
        id: u64,
        address: u32,
        size: u32,
        page_size: u32,
        op: u32,
        chain: u32,
        space: Space,
        has_op: bool,
    },
    /// Any other allocation.
    WideAlloc(Box<(Alloc, u32)>),
    Free {
        id: u64,
        op: u32,
        chain: u32,
        has_op: bool,
    },
    /// A free in an op whose index does not fit 32 bits.
    WideFree {
        id: u64,
        op: u64,
        chain: u32,
    },
    /// A chain's first appearance, queued ahead of the first message that uses its index.
    Chain(u32, Chain),
    /// An op name's first appearance, queued ahead of the first op that uses it.
    OpName(u32, String),
    OpBegin {
        index: u64,
        parent: u64,
        name: u32,
        has_parent: bool,
    },
    OpEnd {
        index: u64,
    },
    /// The producers' chain table was cleared: its indices will not be used again.
    Forget,
}

/// The chain index of a message without a stack (never given to a chain).
const NO_CHAIN: u32 = u32::MAX;

/// The producers' side: the chain table and a short run of entries not yet on the shared queue,
/// owned by whatever already serialises the producers (the shim's state lock). A chain is
/// recognised by the address of the shared chain the thread's chain cache hands out (see
/// [`crate::stack::capture`]), which stays the same for as long as that call chain does.
///
/// Why entries are staged here and moved to the queue [`STAGE`] at a time: each entry written
/// straight into the shared queue landed on cache lines the writer thread had just read on the
/// other core, and the producer stalled on every one of them at the queue lock's release (in
/// the profile, most of the shim's time in tt-metal's thread). Staged entries stay in the
/// producer's cache; moving a run of them costs one lock and a copy whose line transfers
/// overlap.
pub(crate) struct Producer {
    staged: Vec<Entry>,
    /// Producer messages among `staged` (chain definitions are not messages).
    staged_messages: u64,
    chains: AddrMap<(Chain, u32)>,
    /// The last chain looked up and its index: a loop allocates from a few call chains, so
    /// most lookups are the same chain as the one before (or the free's after an allocation's).
    last: [(usize, u32); 2],
    next_chain: u32,
}

/// The queue the writer takes whole: what producers moved there, and how many messages ever.
struct Shared {
    entries: Vec<Entry>,
    sent: u64,
}

/// Entries staged before they move to the shared queue: a few cache lines' worth, so that the
/// run stays in the producer's cache, and few enough that the writer (which also moves them
/// when it finds the producers idle) or a signal handler loses little if it cannot.
const STAGE: usize = 64;

/// Entries one message stages at most: a chain table reset, a chain's definition and the
/// message's own.
const MESSAGE_ENTRIES: usize = 3;

/// Distinct chains the producers' table keeps at most (a bound, not a policy); past it, it is
/// cleared and chains seen again get new indices (and the writer names them again).
const CHAIN_INDICES: usize = 16 * 1024;

impl Producer {
    /// An empty producer side; its staging room is allocated at the first message.
    pub(crate) const fn new() -> Self {
        Producer {
            staged: Vec::new(),
            staged_messages: 0,
            chains: AddrMap::with_hasher(std::hash::BuildHasherDefault::new()),
            last: [(0, NO_CHAIN); 2],
            next_chain: 0,
        }
    }

    /// Stages one message for the writer, moving the staged run to the queue when it is full.
    ///
    /// Inlined, with [`Self::push`], into each caller: the message's kind is then known where
    /// it is made, and its entry is written field by field into the staging run. Moved as a
    /// `Msg` through calls, it was stored field by field and copied in 16-byte loads, which
    /// cannot be forwarded from those stores and wait for every store before them, tt-metal's
    /// included, to reach the cache (in the profile, half of the producer's time in `send`).
    #[inline(always)]
    pub(crate) fn send(&mut self, msg: Msg) {
        self.push(msg);
        if self.staged.len() >= STAGE {
            self.flush();
        }
    }

    /// Moves the staged entries to the writer's queue, waiting while the queue is full (a
    /// writer that falls behind slows producers down instead of growing memory without
    /// limit).
    pub(crate) fn flush(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let mut q = queue();
        while q.entries.len() + self.staged.len() > QUEUE_LIMIT && !SINK.done.load(Ordering::Acquire) {
            drop(q);
            std::thread::sleep(Duration::from_micros(100));
            q = queue();
        }
        self.move_to(&mut q);
    }

    /// [`Self::flush`] that never waits, for the writer thread and signal handlers; false if
    /// the queue's lock was held or it had no room.
    pub(crate) fn try_flush(&mut self) -> bool {
        if self.staged.is_empty() {
            return true;
        }
        let Ok(mut q) = QUEUE.try_lock() else { return false };
        if q.entries.len() + self.staged.len() > QUEUE_CAPACITY {
            return false;
        }
        self.move_to(&mut q);
        true
    }

    fn move_to(&mut self, q: &mut Shared) {
        // No allocation: the queue's room was reserved at its largest in `start`.
        q.entries.append(&mut self.staged);
        q.sent += self.staged_messages;
        self.staged_messages = 0;
        // A plain store under the lock: no read-modify-write on a line the writer reads.
        SINK.sent.0.store(q.sent, Ordering::Release);
    }

    /// The chain's index, defining it (staged ahead of its first use) when the table has not
    /// seen it. Called by the thread that captured `chain`, within the call that captured it.
    fn chain(&mut self, chain: Option<ChainRef>) -> u32 {
        let Some(chain) = chain.filter(|c| c.len() > 0) else { return NO_CHAIN };
        let key = chain.key();
        if let Some(&(_, index)) = self.last.iter().find(|(k, _)| *k == key) {
            return index;
        }
        if let Some(&(_, index)) = self.chains.get(&key) {
            self.last = [(key, index), self.last[0]];
            return index;
        }
        if self.chains.len() >= CHAIN_INDICES {
            self.chains.clear();
            self.last = [(0, NO_CHAIN); 2];
            // Indices start again from 0, so that the writer's table by index stays dense; the
            // writer forgets the old ones when it reaches the `Forget`, ahead of any reuse.
            self.next_chain = 0;
            self.stage(Entry::Forget);
        }
        // Below CHAIN_INDICES: the table is cleared before it holds more.
        let index = self.next_chain;
        self.next_chain += 1;
        // SAFETY: producers stage a message in the interposed call that captured its chain, on
        // that thread, with no capture in between (see `ChainRef`).
        let chain = unsafe { chain.to_owned() };
        self.stage(Entry::Chain(index, chain.clone()));
        // The chain is kept so that its address is not reused for another chain.
        self.chains.insert(key, (chain, index));
        self.last = [(key, index), self.last[0]];
        index
    }

    /// Appends to the staging run, which [`Self::push`] made room in.
    ///
    /// Written through a pointer, with no capacity check (and no call on a cold path) between
    /// making the entry and storing it: otherwise the entry is assembled on the stack and
    /// copied in 16-byte loads, which cannot be forwarded from the narrower stores that made it
    /// and wait for every store before them, tt-metal's included, to reach the cache (in the
    /// profile, a third of the producer's time per message).
    #[inline(always)]
    fn stage(&mut self, entry: Entry) {
        let len = self.staged.len();
        debug_assert!(len < self.staged.capacity());
        // SAFETY: `push` reserved room for every entry a message stages (MESSAGE_ENTRIES).
        unsafe {
            self.staged.as_mut_ptr().add(len).write(entry);
            self.staged.set_len(len + 1);
        }
    }

    /// Room for the entries of one message.
    #[inline(always)]
    fn make_room(&mut self) {
        if self.staged.capacity() - self.staged.len() < MESSAGE_ENTRIES {
            self.grow_staging();
        }
    }

    /// Once, at its largest (the run is moved once it holds [`STAGE`]).
    #[cold]
    #[inline(never)]
    fn grow_staging(&mut self) {
        self.staged.reserve_exact(STAGE + MESSAGE_ENTRIES);
    }

    #[inline(always)]
    fn push(&mut self, msg: Msg) {
        self.make_room();
        let entry = match msg {
            Msg::Event(e) => Entry::Event(e),
            Msg::Alloc(a, chain) => {
                let chain = self.chain(chain);
                let narrow = |v: u64| u32::try_from(v).ok();
                match (narrow(a.address), narrow(a.size), narrow(a.page_size), narrow(a.op.unwrap_or(0))) {
                    (Some(address), Some(size), Some(page_size), Some(op)) => Entry::Alloc {
                        id: a.id,
                        address,
                        size,
                        page_size,
                        op,
                        chain,
                        space: a.space,
                        has_op: a.op.is_some(),
                    },
                    _ => Entry::WideAlloc(Box::new((a, chain))),
                }
            }
            Msg::Free { id, op, chain } => {
                let chain = self.chain(chain);
                match op.map(u32::try_from) {
                    None => Entry::Free { id, op: 0, chain, has_op: false },
                    Some(Ok(op)) => Entry::Free { id, op, chain, has_op: true },
                    Some(Err(_)) => Entry::WideFree { id, op: op.unwrap_or(0), chain },
                }
            }
            Msg::OpName(id, name) => {
                self.stage(Entry::OpName(id, name));
                return;
            }
            Msg::OpBegin { index, parent, name } => {
                Entry::OpBegin { index, parent: parent.unwrap_or(0), name, has_parent: parent.is_some() }
            }
            Msg::OpEnd { index } => Entry::OpEnd { index },
        };
        self.stage(entry);
        self.staged_messages += 1;
    }
}

static QUEUE: Mutex<Shared> = Mutex::new(Shared { entries: Vec::new(), sent: 0 });

fn queue() -> MutexGuard<'static, Shared> {
    QUEUE.lock().unwrap_or_else(|e| e.into_inner())
}

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

/// Moves the producers' staged entries to the queue ([`Producer::try_flush`] under the lock of
/// the producers' owner), trying that lock up to `1 + retries` times a millisecond apart; false
/// if it could not. The writer calls it at every wake-up (no retries), so that staged entries
/// reach the file while the program is idle; a signal handler calls it before it waits for
/// the writer.
pub(crate) type FlushStaged = fn(retries: u32) -> bool;

static FLUSH_STAGED: OnceLock<FlushStaged> = OnceLock::new();

/// Writes the header and starts the writer thread on `fd`. The returned sender carries no
/// messages (they go through [`Producer`]); dropping it tells the writer to finish.
/// `flush_staged` moves the producers' staged entries (see [`FlushStaged`]).
pub(crate) fn start(fd: RawFd, path: &Path, flush_staged: FlushStaged) -> Result<Sender<Msg>, WriterError> {
    let _ = FLUSH_STAGED.set(flush_staged);
    let mut header = Vec::new();
    let _ = Header { version: FORMAT_VERSION, flags: FLAG_BLOCKS }.write_to(&mut header);
    if !write_all(fd, &header) {
        return Err(WriterError::Create { path: path.to_path_buf(), source: std::io::Error::last_os_error() });
    }
    SINK.fd.store(fd, Ordering::Release);
    // Both halves of the queue are allocated once, at their largest: a queue that grew by
    // reallocation on the producers' side was a fresh, page-faulting allocation in tt-metal's
    // thread every time it outgrew the other half (a fifth of the loop's time in the profile).
    queue().entries.reserve_exact(QUEUE_CAPACITY);
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::Builder::new().name("ttsan-writer".into()).spawn(move || run(rx)).map_err(WriterError::Spawn)?;
    Ok(tx)
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
    /// By the producers' chain index.
    /// Stack id by chain index (indices are dense: the producers count them up from 0 after
    /// every `Forget`), `u64::MAX` for an index not defined; a lookup per record.
    by_index: Vec<u64>,
    /// By text: a chain unwound afresh (a thread's chain cache dropped it) names the same stack
    /// as before and must not cost a second definition.
    by_text: HashMap<String, u64>,
    /// Never reset, so that an id is never given to a second text, even after a clear.
    next: u64,
    /// Texts remembered before `by_text` is cleared ([`STACK_NAMES`]; tests lower it).
    limit: usize,
}

/// Distinct stack texts remembered at most (a bound, not a policy). Past it the map is
/// cleared and stacks seen again are defined again, under new ids.
const STACK_NAMES: usize = 16 * 1024;

impl StackIds {
    fn new(limit: usize) -> Self {
        StackIds { by_index: Vec::new(), by_text: HashMap::new(), next: 0, limit }
    }

    /// Names a chain seen for the first time. A stack not defined yet gets its `StackDef`
    /// appended to `block` here, ahead of every record that uses it, in the same ordered
    /// stream: whatever prefix of the file survives a crash holds every definition its
    /// records refer to.
    fn define(&mut self, index: u32, chain: &[usize], block: &mut BlockBuilder) {
        let frames = crate::stack::symbolize(chain, crate::config::get().stack_depth);
        if self.by_text.len() >= self.limit {
            self.by_text.clear();
        }
        let id = match self.by_text.get(&frames) {
            Some(&id) => id,
            None => {
                let id = self.next;
                self.next += 1;
                block.event(&Event::StackDef { id, frames: frames.clone() });
                self.by_text.insert(frames, id);
                id
            }
        };
        let at = index as usize;
        if self.by_index.len() <= at {
            self.by_index.resize(at + 1, u64::MAX);
        }
        self.by_index[at] = id;
    }

    fn id(&self, index: u32) -> Option<u64> {
        if index == NO_CHAIN {
            return None;
        }
        self.by_index.get(index as usize).copied().filter(|&id| id != u64::MAX)
    }
}

/// What the writer learnt from definitions in the queue: stack ids, op names by id.
struct Names {
    stacks: StackIds,
    ops: Vec<String>,
}

impl Names {
    fn new(stack_limit: usize) -> Self {
        Names { stacks: StackIds::new(stack_limit), ops: Vec::new() }
    }
}

/// Turns queued entries into blocks appended to `out`; returns how many producer messages
/// they held.
fn encode(entries: &mut Vec<Entry>, names: &mut Names, block: &mut BlockBuilder, out: &mut Vec<u8>) -> u64 {
    let Names { stacks, ops } = names;
    let mut messages = 0;
    for entry in entries.drain(..) {
        match entry {
            Entry::Event(e) => block.event(&e),
            Entry::OpName(id, name) => {
                let at = id as usize;
                if ops.len() <= at {
                    ops.resize(at + 1, String::new());
                }
                ops[at] = name;
                continue;
            }
            Entry::OpBegin { index, parent, name, has_parent } => block.event(&Event::OpBegin(OpBegin {
                index,
                name: ops.get(name as usize).cloned().unwrap_or_default(),
                devices: Vec::new(),
                args: String::new(),
                inputs: Vec::new(),
                outputs: Vec::new(),
                scratch: Vec::new(),
                parent: has_parent.then_some(parent),
            })),
            Entry::OpEnd { index } => block.event(&Event::OpEnd { index }),
            Entry::Alloc { id, address, size, page_size, op, chain, space, has_op } => block.alloc(&RawAlloc {
                id,
                // The shim does not read the chip or the shard placement (see the notes it
                // writes): an interleaved mesh buffer, no name, role `other`.
                device: None,
                space,
                address: address.into(),
                size: size.into(),
                page_size: page_size.into(),
                op: has_op.then_some(op.into()),
                stack_id: stacks.id(chain),
            }),
            Entry::WideAlloc(wide) => {
                let (a, chain) = *wide;
                block.alloc(&RawAlloc {
                    id: a.id,
                    device: None,
                    space: a.space,
                    address: a.address,
                    size: a.size,
                    page_size: a.page_size,
                    op: a.op,
                    stack_id: stacks.id(chain),
                })
            }
            Entry::Free { id, op, chain, has_op } => block.free(id, has_op.then_some(op.into()), stacks.id(chain)),
            Entry::WideFree { id, op, chain } => block.free(id, Some(op), stacks.id(chain)),
            Entry::Chain(index, chain) => {
                stacks.define(index, &chain, block);
                continue;
            }
            Entry::Forget => {
                stacks.by_index.clear();
                continue;
            }
        }
        messages += 1;
        if block.entries() >= BLOCK_RECORDS {
            block.finish_into(out);
        }
    }
    block.finish_into(out);
    messages
}

fn run(rx: Receiver<Msg>) {
    // Set even if this thread panics, so that producers never wait for it.
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            SINK.done.store(true, Ordering::Release);
        }
    }
    let _done = Done;
    let _ = IS_WRITER.try_with(|w| w.set(true));
    block_async_signals();
    let mut names = Names::new(STACK_NAMES);
    let mut block = BlockBuilder::new();
    let mut taken: Vec<Entry> = Vec::with_capacity(QUEUE_CAPACITY);
    let mut out = Vec::with_capacity(256 * 1024);
    let mut idle = MIN_IDLE;
    loop {
        // Checked before the queue is taken: every message was queued before the last sender
        // was dropped, so after this the queue holds everything.
        let closed = matches!(rx.try_recv(), Err(TryRecvError::Disconnected));
        if let Some(flush_staged) = FLUSH_STAGED.get() {
            flush_staged(0);
        }
        std::mem::swap(&mut queue().entries, &mut taken);
        if taken.is_empty() {
            idle = (idle * 2).min(MAX_IDLE);
        } else {
            let messages = encode(&mut taken, &mut names, &mut block, &mut out);
            commit(&out, messages);
            out.clear();
            idle = MIN_IDLE;
        }
        if closed {
            break;
        }
        // Polling instead of blocking keeps producers from paying a futex wake-up per event;
        // the delay only postpones when bytes reach the file.
        std::thread::sleep(idle);
    }
}

/// `messages` counts what producers sent, not records: the stack definitions the writer adds
/// were never sent, and a signal handler waits for `written` to reach `sent`.
fn commit(bytes: &[u8], messages: u64) {
    while !try_lock() {
        std::thread::yield_now();
    }
    // Under the lock, so that a signal handler that holds it knows no write is half done.
    write_all(SINK.fd.load(Ordering::Acquire), bytes);
    SINK.written.0.fetch_add(messages, Ordering::AcqRel);
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

/// Sleeps `ms` milliseconds; async-signal-safe.
pub(crate) fn nap(ms: i64) {
    let ts = libc::timespec { tv_sec: 0, tv_nsec: ms * 1_000_000 };
    // SAFETY: nanosleep is async-signal-safe.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// From a signal handler: moves the producers' staged entries to the queue (unless their lock
/// stays held for 20 ms: the interrupted thread may hold it), lets the writer drain what was
/// sent (at most ~0.2 s), then takes the
/// writer's lock so that no write(2) of a batch is half done when the handler returns (the
/// writer writes each batch whole under that lock, so nothing encoded is left outside it).
/// Allocates nothing and takes no lock it could wait on forever. With `keep_locked` the writer
/// stays locked out afterwards (the process is about to die and must not start a batch it
/// cannot finish).
pub(crate) fn flush_from_signal(keep_locked: bool) {
    if SINK.fd.load(Ordering::Acquire) < 0 {
        return;
    }
    let on_writer = IS_WRITER.try_with(|w| w.get()).unwrap_or(true);
    if let Some(flush_staged) = FLUSH_STAGED.get() {
        flush_staged(if on_writer { 0 } else { 20 });
    }
    if !on_writer {
        for _ in 0..200 {
            if SINK.written.0.load(Ordering::Acquire) >= SINK.sent.0.load(Ordering::Acquire) {
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
    if locked && !keep_locked {
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
        let _ = Header { version: FORMAT_VERSION, flags: FLAG_BLOCKS }.write_to(&mut file);
        file.extend_from_slice(out);
        let mut reader = TraceReader::new(std::io::Cursor::new(file)).expect("header");
        let events = reader.by_ref().map(|e| e.expect("in-memory read")).collect();
        assert!(!reader.stats().is_damaged(), "{:?}", reader.stats());
        events
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

    /// Stages `msgs` on a private producer and encodes them as the writer does.
    fn through(q: &mut Producer, names: &mut Names, msgs: Vec<Msg>) -> (Vec<u8>, u64) {
        for m in msgs {
            q.push(m);
        }
        let (mut block, mut out) = (BlockBuilder::new(), Vec::new());
        let n = encode(&mut q.staged, names, &mut block, &mut out);
        (out, n)
    }

    thread_local! {
        /// What the tests' borrowed chains point into, held as a thread's chain cache would.
        static HELD: std::cell::RefCell<Vec<Chain>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Borrows `chain`, held until the test thread ends.
    fn held(chain: Chain) -> ChainRef {
        let borrowed = ChainRef::of(&chain);
        HELD.with(|h| h.borrow_mut().push(chain));
        borrowed
    }

    fn free(id: u64, chain: Option<Chain>) -> Msg {
        Msg::Free { id, op: None, chain: chain.map(held) }
    }

    fn stack_ids(events: &[Event]) -> Vec<Option<u64>> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::BufferFree(f) => Some(f.stack_id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_stack_is_defined_once_and_ids_survive_clearing() {
        let mut q = Producer::new();
        let mut stacks = Names::new(2);
        let a = chain(&[0x10, 0x20]);
        let b = chain(&[0x30]);
        // The same chain twice, the same stack unwound afresh (another Arc: same text, same
        // id, no second definition), and another stack.
        let msgs = vec![
            free(1, Some(a.clone())),
            free(2, Some(a.clone())),
            free(3, Some(chain(&[0x10, 0x20]))),
            free(4, Some(b)),
        ];
        let (mut file, n) = through(&mut q, &mut stacks, msgs);
        assert_eq!(n, 4, "stack definitions are not counted as messages");
        let events = records(&file);
        let first = defs(&events);
        assert_eq!(first.len(), 2, "{first:?}");
        assert!(first[0].1.contains("0x10"), "{first:?}");
        let ids = stack_ids(&events);
        assert_eq!(ids[..3], [Some(first[0].0); 3]);
        assert_eq!(ids[3], Some(first[1].0));

        // Full: the texts are forgotten; a stack seen again (here from a fresh chain) is
        // defined again under a new id, so that no id ever stands for two texts. A chain
        // queued before keeps the id it had.
        let msgs = vec![free(5, Some(chain(&[0x40]))), free(6, Some(chain(&[0x10, 0x20]))), free(7, Some(a))];
        file.extend(through(&mut q, &mut stacks, msgs).0);
        let events = records(&file);
        let all = defs(&events);
        assert_eq!(all.len(), 4, "{all:?}");
        let unique: std::collections::HashSet<u64> = all.iter().map(|(id, _)| *id).collect();
        assert_eq!(unique.len(), 4, "ids are unique: {all:?}");
        assert_eq!(all[3].1, first[0].1, "the re-definition names the same stack");
        assert_eq!(stack_ids(&events)[4..], [Some(all[2].0), Some(all[3].0), Some(first[0].0)]);
    }

    #[test]
    fn a_cleared_chain_table_names_chains_again() {
        let mut q = Producer::new();
        // Texts are never forgotten here, so the stack keeps its id.
        let mut stacks = Names::new(usize::MAX);
        let chains: Vec<Chain> = (0..CHAIN_INDICES + 1).map(|i| chain(&[0x1000 + i])).collect();
        let msgs = chains.iter().enumerate().map(|(i, c)| free(i as u64, Some(c.clone()))).collect();
        let (out, n) = through(&mut q, &mut stacks, msgs);
        assert_eq!(n, CHAIN_INDICES as u64 + 1);
        assert_eq!(q.chains.len(), 1, "cleared when full");
        // The first chain again: a new index, named again, the same stack id (by its text).
        let mut file = out;
        file.extend(through(&mut q, &mut stacks, vec![free(0, Some(chains[0].clone()))]).0);
        let ids = stack_ids(&records(&file));
        assert_eq!(ids.len(), CHAIN_INDICES + 2);
        assert_eq!(ids[CHAIN_INDICES + 1], ids[0]);
    }

    /// The only test that touches the process-wide queue (no writer thread runs in unit tests).
    #[test]
    fn staged_messages_reach_the_queue_a_run_at_a_time_and_on_flush() {
        let mut p = Producer::new();
        let sent = |q: &Shared| (q.entries.len(), q.sent);
        let (len0, sent0) = sent(&queue());
        for id in 0..STAGE as u64 - 1 {
            p.send(free(id, None));
        }
        assert_eq!(sent(&queue()), (len0, sent0), "nothing moves before a run is full");
        p.send(free(99, Some(chain(&[1, 2]))));
        // The run, with the chain's definition staged ahead of the message that uses it.
        assert_eq!(sent(&queue()), (len0 + STAGE + 1, sent0 + STAGE as u64));
        p.send(free(100, None));
        assert!(p.try_flush());
        assert_eq!(sent(&queue()), (len0 + STAGE + 2, sent0 + STAGE as u64 + 1));
        assert_eq!(SINK.sent.0.load(Ordering::Acquire), sent0 + STAGE as u64 + 1);
        assert!(p.try_flush(), "nothing staged: nothing to do");
        let ids: Vec<u64> = queue().entries[len0..]
            .iter()
            .filter_map(|e| match e {
                Entry::Free { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        let want: Vec<u64> = (0..STAGE as u64 - 1).chain([99, 100]).collect();
        assert_eq!(ids, want, "in the order sent");
    }

    #[test]
    fn hot_messages_fit_two_cache_lines() {
        // An inline `Event` (192 bytes) made every channel slot (message plus a stamp) four cache
        // lines; the hot messages are 72, and the queue's entries half a line.
        assert!(std::mem::size_of::<Msg>() <= 120, "{} bytes", std::mem::size_of::<Msg>());
        assert_eq!(std::mem::size_of::<Entry>(), 32);
    }

    #[test]
    fn interned_op_names_come_back_on_every_op() {
        let mut q = Producer::new();
        let mut names = Names::new(STACK_NAMES);
        let msgs = vec![
            Msg::OpName(0, "ttnn::add".into()),
            Msg::OpBegin { index: 0, parent: None, name: 0 },
            Msg::OpName(1, "BinaryNgDeviceOperation".into()),
            Msg::OpBegin { index: 1, parent: Some(0), name: 1 },
            Msg::OpEnd { index: 1 },
            Msg::OpEnd { index: 0 },
            Msg::OpBegin { index: 2, parent: None, name: 0 },
        ];
        let (out, n) = through(&mut q, &mut names, msgs);
        assert_eq!(n, 5, "name definitions are not counted as messages");
        let ops: Vec<(u64, String, Option<u64>)> = records(&out)
            .into_iter()
            .filter_map(|e| match e {
                Event::OpBegin(o) => Some((o.index, o.name, o.parent)),
                _ => None,
            })
            .collect();
        assert_eq!(
            ops,
            vec![
                (0, "ttnn::add".into(), None),
                (1, "BinaryNgDeviceOperation".into(), Some(0)),
                (2, "ttnn::add".into(), None)
            ]
        );
    }

    #[test]
    fn allocations_too_wide_for_a_packed_entry_come_back_whole() {
        let mut q = Producer::new();
        let mut names = Names::new(STACK_NAMES);
        let big = Alloc { id: 7, space: Space::Dram, address: 64, size: 6 << 30, page_size: 2048, op: Some(1 << 40) };
        let msgs = vec![
            Msg::Alloc(big, None),
            Msg::Free { id: 7, op: Some(1 << 40), chain: None },
            Msg::Free { id: 8, op: Some(3), chain: None },
        ];
        let (out, n) = through(&mut q, &mut names, msgs);
        assert_eq!(n, 3);
        let events = records(&out);
        let Event::BufferAlloc(a) = &events[0] else { panic!("{events:?}") };
        assert_eq!((a.id, a.size, a.op), (7, 6 << 30, Some(1 << 40)));
        let frees: Vec<(u64, Option<u64>)> = events
            .iter()
            .filter_map(|e| match e {
                Event::BufferFree(f) => Some((f.id, f.op)),
                _ => None,
            })
            .collect();
        assert_eq!(frees, vec![(7, Some(1 << 40)), (8, Some(3))]);
    }

    #[test]
    fn a_definition_precedes_the_record_that_uses_it() {
        let mut q = Producer::new();
        let mut stacks = Names::new(STACK_NAMES);
        let msgs = vec![
            free(1, Some(chain(&[0x50]))),
            free(2, Some(chain(&[0x50]))),
            free(3, None),
            Msg::Alloc(
                Alloc { id: 4, space: Space::L1, address: 64, size: 4096, page_size: 1024, op: Some(9) },
                Some(held(chain(&[0x60]))),
            ),
            Msg::Event(Box::new(Event::OpEnd { index: 9 })),
        ];
        let (out, n) = through(&mut q, &mut stacks, msgs);
        assert_eq!(n, 5);
        let events = records(&out);
        assert_eq!(
            events.iter().map(Event::kind).collect::<Vec<_>>(),
            ["stack_def", "buffer_free", "buffer_free", "buffer_free", "stack_def", "buffer_alloc", "op_end"]
        );
        let Event::StackDef { id, frames } = &events[0] else { unreachable!() };
        for (e, want) in events[1..4].iter().zip([Some(*id), Some(*id), None]) {
            let Event::BufferFree(f) = e else { unreachable!() };
            assert_eq!(f.stack_id, want);
            // Resolved by the reader.
            assert_eq!(f.stack.as_deref(), want.map(|_| frames.as_str()));
        }
        let Event::BufferAlloc(a) = &events[5] else { unreachable!() };
        assert_eq!(
            (a.id, a.space, a.address, a.size, a.page_size, a.op, a.device),
            (4, Space::L1, 64, 4096, 1024, Some(9), None)
        );
        assert!(a.stack.as_deref().is_some_and(|s| s.contains("0x60")), "{a:?}");
    }
}
