//! Native backtraces: raw return addresses at the event (cheap), names later (in the writer
//! thread, or at allocation time only when a guard selects by stack).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Mutex;

extern "C" {
    // glibc <execinfo.h>; unwinds with libgcc and never calls into the shim.
    fn backtrace(buffer: *mut *mut c_void, size: c_int) -> c_int;
}

/// Extra frames captured for the shim's own frames at the top of every capture (how many
/// there are depends on inlining), which naming drops.
const OWN_FRAMES: usize = 8;

/// Return addresses of the calling thread's stack, innermost first, at most `depth`.
pub(crate) fn capture(depth: usize) -> Vec<usize> {
    if depth == 0 {
        return Vec::new();
    }
    let mut frames = [std::ptr::null_mut::<c_void>(); 64 + OWN_FRAMES];
    let want = (depth + OWN_FRAMES).min(frames.len());
    // SAFETY: the buffer holds `want` pointers.
    let n = unsafe { backtrace(frames.as_mut_ptr(), want as c_int) }.max(0) as usize;
    frames[..n].iter().map(|&p| p as usize).collect()
}

/// Loads libgcc's unwinder now, outside any interposed call: glibc dlopens it on the first
/// backtrace, which must not happen first inside a signal handler or under tt-metal's locks.
pub(crate) fn warm_up() {
    let _ = capture(1);
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
    ips.iter().map(|&ip| frame(ip)).skip_while(|f| f.own).take(depth).map(|f| f.name).collect()
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
            format!("{}+{off:#x} ({module})", demangle(&sym))
        }
        None => format!("{ip:#x} ({module}+{:#x})", ip.wrapping_sub(base)),
    };
    (name, base)
}

fn cstr(p: *const c_char) -> Option<String> {
    // SAFETY: dladdr's strings are NUL-terminated and live as long as the module.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
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

    #[inline(never)]
    fn here() -> Vec<usize> {
        capture(8)
    }

    #[test]
    fn captures_and_names_frames() {
        let ips = here();
        assert!(!ips.is_empty());
        // In the test binary nothing is "own" (the shim is not a separate library here).
        let text = symbolize(&ips, 64);
        assert_eq!(text.lines().count(), ips.len());
        assert_eq!(symbolize(&ips, 2).lines().count(), 2);
        assert!(capture(0).is_empty());
    }
}
