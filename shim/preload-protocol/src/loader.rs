//! What the dynamic loader says about an address, for both sides that look at tt-metal's
//! vtables: the shim (which lays its processor out by them) and `ttsan doctor`'s workload
//! (which announces ops through ttnn's processor the way ttnn does).
//!
//! `dladdr` only knows the dynamic symbol table and answers an address inside a hidden function
//! with the nearest exported symbol before it, a wrong name given without complaint; so a name
//! or size is only taken from it on an exact address match ([`exact_symbol`]).

use std::ffi::{c_void, CStr};

/// `RTLD_DL_SYMENT`: `dladdr1` also returns the matching dynamic symbol table entry.
const RTLD_DL_SYMENT: libc::c_int = 1;

/// `dladdr1(addr, RTLD_DL_SYMENT)`: the loader's answer for `addr` and the dynamic symbol table
/// entry that matched (`None` when no symbol did); `None` when no loaded object holds `addr`.
pub fn dladdr1(addr: usize) -> Option<(libc::Dl_info, Option<libc::Elf64_Sym>)> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let mut sym: *mut c_void = std::ptr::null_mut();
    // SAFETY: dladdr1 writes `info` and, with RTLD_DL_SYMENT, a pointer into the object's
    // dynamic symbol table (valid while the object stays loaded).
    let ok = unsafe { libc::dladdr1(addr as *const c_void, &mut info, &mut sym, RTLD_DL_SYMENT) };
    if ok == 0 {
        return None;
    }
    // SAFETY: as above; null when the address matched no symbol.
    let sym = (!sym.is_null()).then(|| unsafe { *(sym as *const libc::Elf64_Sym) });
    Some((info, sym))
}

/// An exported symbol that starts exactly at an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactSymbol {
    /// Its (mangled) name, when the loader gives one.
    pub name: Option<String>,
    /// The bytes the symbol spans (`st_size`), when its table entry was returned.
    pub size: Option<usize>,
}

/// The exported symbol starting exactly at `addr`, or `None` (no object, or `addr` lies inside
/// or after a symbol rather than at its start).
pub fn exact_symbol(addr: usize) -> Option<ExactSymbol> {
    let (info, sym) = dladdr1(addr)?;
    if info.dli_saddr as usize != addr {
        return None;
    }
    // SAFETY: dladdr's name is NUL-terminated and lives as long as the object.
    let name =
        (!info.dli_sname.is_null()).then(|| unsafe { CStr::from_ptr(info.dli_sname) }.to_string_lossy().into_owned());
    Some(ExactSymbol { name, size: sym.map(|s| s.st_size as usize) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exported_function_is_named_at_its_start_only() {
        // SAFETY: dlsym with a NUL-terminated name.
        let addr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) } as usize;
        assert_ne!(addr, 0);
        let at = exact_symbol(addr).expect("malloc is exported");
        assert!(at.name.as_deref().is_some_and(|n| n.contains("malloc")), "{at:?}");
        assert_eq!(exact_symbol(addr + 1), None);
    }
}
