//! Names of code addresses in the loaded tt-metal libraries.
//!
//! `dladdr` only knows the dynamic symbol table and answers a hidden function's address with
//! the nearest exported symbol before it, a wrong name given without complaint. A name is
//! therefore accepted from `dladdr` only on an exact address match
//! (`ttsan_preload_protocol::loader`, shared with `ttsan doctor`); every other address is
//! looked up in the full symbol table (`.symtab`) of the file the loader mapped it from. The
//! wheel's libraries are not stripped, so hidden functions (the default bodies of
//! `IGraphProcessor`'s virtual methods) are named there.

use object::{Object, ObjectSymbol, SymbolKind};
use std::collections::HashMap;
use std::ffi::{c_void, CStr};
use ttsan_preload_protocol::loader::{dladdr1, exact_symbol};

/// An exported data object: where it is and how many bytes the symbol says it spans.
pub(crate) fn exported_object(name: &CStr) -> Option<(usize, usize)> {
    let addr = crate::tt::global(name)? as usize;
    Some((addr, exact_symbol(addr)?.size?))
}

/// The mangled names of the functions at each of `addrs` (several when the linker folded
/// identical bodies into one). An address no table names gets an empty list.
pub(crate) fn names_at(addrs: &[usize]) -> HashMap<usize, Vec<String>> {
    let mut out: HashMap<usize, Vec<String>> = addrs.iter().map(|&a| (a, Vec::new())).collect();
    // Per library file: the addresses still unnamed, relative to its load base.
    let mut by_file: HashMap<String, (usize, Vec<usize>)> = HashMap::new();
    for &addr in addrs {
        if let Some(name) = exact_symbol(addr).and_then(|s| s.name) {
            out.entry(addr).or_default().push(name);
            continue;
        }
        let Some((info, _)) = dladdr1(addr) else { continue };
        if info.dli_fname.is_null() {
            continue;
        }
        // SAFETY: dladdr's file name is NUL-terminated and lives as long as the object.
        let file = unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned();
        let base = info.dli_fbase as usize;
        by_file.entry(file).or_insert_with(|| (base, Vec::new())).1.push(addr);
    }
    for (file, (base, wanted)) in by_file {
        for (addr, name) in symtab_names(&file, base, &wanted) {
            out.entry(addr).or_default().push(name);
        }
    }
    for names in out.values_mut() {
        names.sort();
        names.dedup();
    }
    out
}

/// Function symbols of `file`'s full symbol table at any of `wanted` (run-time addresses of an
/// object loaded at `base`).
fn symtab_names(file: &str, base: usize, wanted: &[usize]) -> Vec<(usize, String)> {
    let Some(map) = Mapped::open(file) else { return Vec::new() };
    let Ok(elf) = object::File::parse(map.bytes()) else { return Vec::new() };
    let mut out = Vec::new();
    for sym in elf.symbols() {
        if sym.kind() != SymbolKind::Text {
            continue;
        }
        let at = base.wrapping_add(sym.address() as usize);
        if wanted.contains(&at) {
            if let Ok(name) = sym.name() {
                out.push((at, name.to_string()));
            }
        }
    }
    out
}

/// A read-only private mapping of a whole file: the symbol table is read without copying a
/// library of tens of megabytes onto the heap.
struct Mapped {
    ptr: *mut c_void,
    len: usize,
}

impl Mapped {
    fn open(path: &str) -> Option<Mapped> {
        let file = std::fs::File::open(path).ok()?;
        let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        use std::os::fd::AsRawFd;
        // SAFETY: mapping a file we opened read-only; the mapping outlives the descriptor.
        let ptr =
            unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0) };
        // `then`: a `Mapped` built for a failed map would be dropped, unmapping MAP_FAILED.
        (ptr != libc::MAP_FAILED).then(|| Mapped { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes until drop.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmapping what `open` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}
