//! Native backtraces: raw return addresses at the event (cheap), names later (in the writer
//! thread, or at allocation time only when a guard selects by stack).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Arc, Mutex};

extern "C" {
    // libgcc's unwinder (libgcc_s, which every Rust cdylib links for panics).
    fn _Unwind_Backtrace(trace: extern "C" fn(*mut c_void, *mut c_void) -> c_int, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
    fn _Unwind_GetCFA(ctx: *mut c_void) -> usize;
}

/// `_URC_NO_REASON`: keep unwinding.
const URC_CONTINUE: c_int = 0;
/// `_URC_END_OF_STACK`: stop.
const URC_STOP: c_int = 5;

/// Extra frames captured for the shim's own frames at the top of every capture (how many
/// there are depends on inlining), which naming drops.
const OWN_FRAMES: usize = 8;
/// Cached call chains per thread; cleared when full (a bound, not a policy).
const CACHE_ENTRIES: usize = 4096;

/// A captured call chain (return addresses, innermost first). Shared, so that the writer can
/// name it later, and recognised by the address of its elements while someone holds it.
pub(crate) type Chain = Arc<[usize]>;

/// A call chain borrowed from the calling thread's chain cache, as [`capture`] returns it.
///
/// It stays valid until that thread captures again (the cache may then drop the chain), which
/// is enough: an event carries it from the interposed call that captured it to the producer's
/// chain table in that same call, on that thread. Carrying an `Arc` instead cost two atomic
/// read-modify-writes per event (a clone here, a drop at the table), each of which waits for
/// tt-metal's own pending stores; the table takes a counted reference only for a chain it has
/// not seen ([`ChainRef::to_owned`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainRef {
    ptr: *const usize,
    len: usize,
}

// SAFETY: a ChainRef is only read on the thread that captured it (see the type's docs and the
// SAFETY notes of `ips` and `to_owned`); Send only lets events that may hold one sit in the
// shim's state, which the events holding one never outlive (the state's early queue drops them).
unsafe impl Send for ChainRef {}

impl ChainRef {
    /// Borrows a chain someone holds.
    pub(crate) fn of(chain: &Chain) -> ChainRef {
        ChainRef { ptr: chain.as_ptr(), len: chain.len() }
    }

    /// The chain's identity while it is held: the address of its elements.
    pub(crate) fn key(self) -> usize {
        self.ptr as usize
    }

    /// Frames in the chain.
    pub(crate) fn len(self) -> usize {
        self.len
    }

    /// The return addresses.
    ///
    /// # Safety
    /// On the thread that captured it, before that thread captures again (or while the
    /// [`Chain`] it was made [`of`](ChainRef::of) is held).
    pub(crate) unsafe fn ips<'a>(self) -> &'a [usize] {
        // SAFETY: the caller guarantees the chain is still held (by the thread's cache).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// A counted reference to the chain.
    ///
    /// # Safety
    /// As for [`ChainRef::ips`].
    pub(crate) unsafe fn to_owned(self) -> Chain {
        let raw = std::ptr::slice_from_raw_parts(self.ptr, self.len);
        // SAFETY: `raw` is the data pointer of a live Arc<[usize]> (the caller guarantees it is
        // still held), so one more strong reference may be made from it.
        unsafe {
            Arc::increment_strong_count(raw);
            Arc::from_raw(raw)
        }
    }
}

struct Walk {
    ips: Vec<usize>,
    cfas: Vec<usize>,
    max: usize,
}

/// A chain as unwound, with the CFA libgcc reported for each frame.
struct Cached {
    ips: Chain,
    cfas: Box<[usize]>,
}

/// Multiplicative hashing for keys that are addresses (no need for SipHash's DoS resistance).
#[derive(Default)]
pub(crate) struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

/// A HashMap keyed by addresses.
pub(crate) type AddrMap<V> = HashMap<usize, V, std::hash::BuildHasherDefault<AddrHasher>>;

extern "C" fn step(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Walk passed to _Unwind_Backtrace below; ctx is libgcc's context.
    let walk = unsafe { &mut *(arg as *mut Walk) };
    let (ip, cfa) = unsafe { (_Unwind_GetIP(ctx), _Unwind_GetCFA(ctx)) };
    if ip == 0 {
        return URC_STOP;
    }
    walk.ips.push(ip);
    walk.cfas.push(cfa);
    if walk.ips.len() >= walk.max {
        URC_STOP
    } else {
        URC_CONTINUE
    }
}

thread_local! {
    static CHAINS: RefCell<AddrMap<Cached>> = RefCell::new(AddrMap::default());
}

/// Whether `chain` is still what the stack holds. libgcc reports with each frame the CFA of
/// the frame it called, so a frame's return address sits right below its own reported CFA
/// (x86-64); matching slots mean the same call chain. Frame 0 (this function, whose slot
/// belongs to the unwinder call that a cached capture does not make) is the same by construction.
fn still_valid(chain: &Cached) -> bool {
    chain.ips.iter().zip(chain.cfas.iter()).skip(1).all(|(&ip, &cfa)| {
        // SAFETY: the chain was unwound on this thread from the same stack position, so every
        // slot from frame 1 on lies in this thread's live stack, above the current frame.
        unsafe { std::ptr::read_volatile((cfa - 8) as *const usize) == ip }
    })
}

/// Return addresses of the calling thread's stack, innermost first, at most `depth` (plus the
/// shim's own frames).
///
/// DWARF unwinding costs microseconds per stack, more than tt-metal's allocation itself. Most
/// allocations come from a handful of call chains reached at the same stack depth (a loop, an
/// op called again), so chains are cached per thread by stack position and reused when every
/// return-address slot of the cached chain still holds the same address; anything else is
/// unwound afresh.
#[inline(never)]
pub(crate) fn capture(depth: usize) -> Option<ChainRef> {
    if depth == 0 {
        return None;
    }
    let marker = 0u8;
    let key = std::ptr::addr_of!(marker) as usize;
    let max = depth + OWN_FRAMES;
    let cached = CHAINS
        .try_with(|c| {
            c.borrow().get(&key).filter(|ch| ch.ips.len() <= max && still_valid(ch)).map(|ch| ChainRef::of(&ch.ips))
        })
        .ok()
        .flatten();
    let chain = match cached {
        Some(chain) => chain,
        None => {
            let mut walk = Walk { ips: Vec::with_capacity(max), cfas: Vec::with_capacity(max), max };
            // SAFETY: step only touches `walk`, which outlives the call.
            unsafe { _Unwind_Backtrace(step, (&mut walk as *mut Walk).cast()) };
            let chain: Chain = walk.ips.into();
            let borrowed = ChainRef::of(&chain);
            let mut unheld = Some(chain);
            let _ = CHAINS.try_with(|c| {
                let mut c = c.borrow_mut();
                if c.len() >= CACHE_ENTRIES {
                    c.clear();
                }
                if let Some(ips) = unheld.take() {
                    c.insert(key, Cached { ips, cfas: walk.cfas.into() });
                }
            });
            if let Some(chain) = unheld {
                // The thread's cache is gone (the thread is exiting): nothing else would hold the
                // chain the ChainRef points to, so it is kept for good (a few per exiting thread).
                std::mem::forget(chain);
            }
            borrowed
        }
    };
    std::hint::black_box(&marker);
    Some(chain)
}

/// Loads libgcc's unwinder now, outside any interposed call: glibc dlopens it on the first
/// backtrace, which must not happen first inside a signal handler or under tt-metal's locks.
pub(crate) fn warm_up() {
    // Not through `capture`: the caller may hold a ChainRef, which a capture could invalidate.
    let mut walk = Walk { ips: Vec::with_capacity(1), cfas: Vec::with_capacity(1), max: 1 };
    // SAFETY: step only touches `walk`, which outlives the call.
    unsafe { _Unwind_Backtrace(step, (&mut walk as *mut Walk).cast()) };
}

#[derive(Clone)]
struct Frame {
    name: String,
    /// Inside this library (the shim's own frames, dropped from reports).
    own: bool,
}

static NAMES: Mutex<Option<HashMap<usize, Frame>>> = Mutex::new(None);

fn frame(ip: usize) -> Frame {
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let cache = names.get_or_insert_with(HashMap::new);
    if let Some(f) = cache.get(&ip) {
        return f.clone();
    }
    let f = describe(ip);
    cache.insert(ip, f.clone());
    f
}

/// The frames of a capture after the shim's own, at most `depth`, named.
pub(crate) fn frames(ips: &[usize], depth: usize) -> Vec<String> {
    ips.iter().map(|&ip| frame(ip)).filter(|f| !f.own).take(depth).map(|f| f.name).collect()
}

/// The whole stack, one frame per line (the report prints one `#i` line each).
pub(crate) fn symbolize(ips: &[usize], depth: usize) -> String {
    frames(ips, depth).join("\n")
}

/// The load address of this library, to recognise its own frames.
fn own_base() -> usize {
    if cfg!(test) {
        // Unit tests link the shim into the test binary with everything else: nothing is "own".
        return 0;
    }
    static BASE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let mut info = empty_info();
        // SAFETY: dladdr on one of our own functions.
        if unsafe { libc::dladdr(own_base as *const c_void, &mut info) } == 0 {
            0
        } else {
            info.dli_fbase as usize
        }
    })
}

fn empty_info() -> libc::Dl_info {
    libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    }
}

fn describe(ip: usize) -> Frame {
    let (name, base) = describe_with_base(ip);
    Frame { name, own: base != 0 && base == own_base() }
}

fn describe_with_base(ip: usize) -> (String, usize) {
    // A return address points after the call; look up the call instruction itself.
    let lookup = ip.saturating_sub(1);
    let mut info = empty_info();
    // SAFETY: dladdr only reads loader state and fills `info`.
    if unsafe { libc::dladdr(lookup as *const c_void, &mut info) } == 0 {
        return (format!("{ip:#x}"), 0);
    }
    let base = info.dli_fbase as usize;
    let module = cstr(info.dli_fname).map(|m| m.rsplit('/').next().unwrap_or(&m).to_string()).unwrap_or_default();
    let name = match cstr(info.dli_sname) {
        Some(sym) => {
            let off = ip.wrapping_sub(info.dli_saddr as usize);
            format!("{}+{off:#x} ({module})", without_parameters(&demangle(&sym)))
        }
        None => format!("{ip:#x} ({module}+{:#x})", ip.wrapping_sub(base)),
    };
    (name, base)
}

fn cstr(p: *const c_char) -> Option<String> {
    // SAFETY: dladdr's strings are NUL-terminated and live as long as the module.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// `ns::f(int, std::vector<...> const&) const` -> `ns::f`: the parameter list makes C++ frames
/// several times longer (and a trace carries every distinct stack once) without helping to find
/// the code.
fn without_parameters(name: &str) -> &str {
    let trimmed = name.strip_suffix(" const").unwrap_or(name);
    if !trimmed.ends_with(')') {
        return name;
    }
    let mut depth = 0i32;
    for (i, c) in trimmed.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return if i == 0 { name } else { &trimmed[..i] };
                }
            }
            _ => {}
        }
    }
    name
}

type Demangle = unsafe extern "C" fn(*const c_char, *mut c_char, *mut usize, *mut c_int) -> *mut c_char;

/// C++ names through libstdc++'s own demangler (present in every process tt-metal runs in).
fn demangle(sym: &str) -> String {
    let Some(f) = crate::tt::global(c"__cxa_demangle") else { return sym.to_string() };
    let Ok(c) = std::ffi::CString::new(sym) else { return sym.to_string() };
    // SAFETY: __cxa_demangle's documented signature; the result is malloc'ed and freed here.
    unsafe {
        let f: Demangle = std::mem::transmute::<*mut c_void, Demangle>(f);
        let mut status: c_int = 0;
        let out = f(c.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut(), &mut status);
        if out.is_null() || status != 0 {
            return sym.to_string();
        }
        let s = CStr::from_ptr(out).to_string_lossy().into_owned();
        libc::free(out.cast());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_lists_are_dropped() {
        assert_eq!(
            without_parameters("tt::tt_metal::BufferImpl::create(tt::tt_metal::IDevice*, std::optional<bool>)"),
            "tt::tt_metal::BufferImpl::create"
        );
        assert_eq!(without_parameters("ns::C<void (int)>::f(int) const"), "ns::C<void (int)>::f");
        assert_eq!(without_parameters("main"), "main");
        assert_eq!(without_parameters("(anonymous namespace)::g()"), "(anonymous namespace)::g");
        assert_eq!(without_parameters("(weird)"), "(weird)");
    }

    #[inline(never)]
    fn here() -> Vec<usize> {
        // SAFETY: read right after the capture, on this thread.
        capture(8).map(|c| unsafe { c.ips() }.to_vec()).unwrap_or_default()
    }

    #[test]
    fn captures_and_names_frames() {
        let ips = here();
        assert!(!ips.is_empty());
        // In the test binary nothing is "own" (the shim is not a separate library here).
        let text = symbolize(&ips, 64);
        assert_eq!(text.lines().count(), ips.len());
        assert_eq!(symbolize(&ips, 2).lines().count(), 2);
    }

    #[inline(never)]
    fn from(level: u32) -> Vec<usize> {
        if level == 0 {
            // SAFETY: read right after the capture, on this thread.
            capture(16).map(|c| unsafe { c.ips() }.to_vec()).unwrap_or_default()
        } else {
            std::hint::black_box(from(level - 1))
        }
    }

    #[test]
    fn cached_chains_are_reused_only_for_the_same_chain() {
        // The same call chain at the same depth: the cached chain is valid and identical.
        let a: Vec<Vec<usize>> = (0..3).map(|_| from(2)).collect();
        assert_eq!(a[0], a[1]);
        assert_eq!(a[1], a[2]);
        // A different chain (another depth) is unwound afresh.
        let b = from(3);
        assert_ne!(a[0], b);
        // One more level of `from` than the first chain shows: same return address, once more.
        let count = |v: &[usize], ip: usize| v.iter().filter(|&&x| x == ip).count();
        let recursive = b[2];
        assert_eq!(count(&b, recursive), count(&a[0], recursive) + 1);
        assert!(capture(0).is_none());
    }
}
