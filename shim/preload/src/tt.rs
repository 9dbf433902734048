//! tt-metal's exported functions the shim calls, resolved at run time.
//!
//! The shim never links against tt-metal: the accessors are looked up with
//! `dlsym(RTLD_DEFAULT)` once the library is in the process (the first interposed call proves
//! it is), and the interposed functions' real definitions with `dlsym(RTLD_NEXT)`. Signatures
//! are those of ttnn 0.81.1; members take `this` first, `const T&` arrives as a pointer.

use std::ffi::{c_void, CStr};
use std::sync::OnceLock;

/// `tt::tt_metal::BufferType` values.
pub(crate) mod buffer_type {
    pub const DRAM: i32 = 0;
    pub const L1: i32 = 1;
    pub const L1_SMALL: i32 = 3;
    pub const TRACE: i32 = 4;
}

/// `tt::tt_metal::HalMemType` values.
mod hal_mem {
    pub const L1: u8 = 0;
    pub const DRAM: u8 = 1;
}

/// `tt::xy_pair`, returned in registers.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct XyPair {
    pub x: usize,
    pub y: usize,
}

/// The three pointers of a libstdc++ `std::vector`.
#[repr(C)]
pub(crate) struct RawVec<T> {
    pub begin: *mut T,
    pub end: *mut T,
    pub cap: *mut T,
}

type Ptr = *const c_void;

/// Accessors of `tt::tt_metal::Buffer`, `Allocator` and `MeshDevice`.
pub(crate) struct Api {
    pub address: unsafe extern "C" fn(Ptr) -> u32,
    pub size: unsafe extern "C" fn(Ptr) -> u64,
    pub page_size: unsafe extern "C" fn(Ptr) -> u64,
    pub buffer_type: unsafe extern "C" fn(Ptr) -> i32,
    pub layout: unsafe extern "C" fn(Ptr) -> i32,
    pub unique_id: unsafe extern "C" fn(Ptr) -> usize,
    pub device: unsafe extern "C" fn(Ptr) -> Ptr,
    pub allocator: unsafe extern "C" fn(Ptr) -> Ptr,

    pub num_banks: unsafe extern "C" fn(Ptr, *const i32) -> u32,
    pub bank_size: unsafe extern "C" fn(Ptr, *const i32) -> u64,
    pub alignment: unsafe extern "C" fn(Ptr, i32) -> u32,
    pub base_addr: unsafe extern "C" fn(Ptr, *const u8) -> u64,
    pub core_of_bank: unsafe extern "C" fn(Ptr, u32) -> XyPair,
    pub worker_l1_size: unsafe extern "C" fn(Ptr) -> usize,

    /// Address of the vtable pointer a `MeshDevice` object carries (vtable symbol + 16).
    pub mesh_vptr: Option<usize>,
    pub mesh_rows: Option<unsafe extern "C" fn(Ptr) -> usize>,
    pub mesh_cols: Option<unsafe extern "C" fn(Ptr) -> usize>,
    /// Returns `std::vector<int>` through a hidden result pointer (first argument).
    pub mesh_device_ids: Option<unsafe extern "C" fn(*mut RawVec<i32>, Ptr) -> *mut RawVec<i32>>,
    pub mesh_backing_buffer: Option<unsafe extern "C" fn(Ptr) -> Ptr>,
    /// `MeshBuffer::device() const`: the `MeshDevice*` it lives on.
    pub mesh_buffer_device: Option<unsafe extern "C" fn(Ptr) -> Ptr>,
    pub operator_delete: Option<unsafe extern "C" fn(*mut c_void)>,

    pub is_mock: Option<unsafe extern "C" fn() -> bool>,
    /// `tt::tt_metal::detail::ReadFromBuffer(Buffer&, uint8_t*)`; may throw.
    pub read_buffer: Option<unsafe extern "C" fn(*mut c_void, *mut u8)>,
    /// `distributed::Synchronize(MeshDevice*, std::optional<uint8_t>, std::span<const SubDeviceId>)`.
    pub synchronize: Option<unsafe extern "C" fn(*mut c_void, u16, *const c_void, usize)>,
    /// `MeshCoordinate::MeshCoordinate(uint32_t, uint32_t)` (complete-object constructor).
    pub mesh_coordinate: Option<unsafe extern "C" fn(*mut c_void, u32, u32)>,
    /// `MeshBuffer::get_device_buffer(MeshCoordinate const&) const`.
    pub device_buffer: Option<unsafe extern "C" fn(*const c_void, *const c_void) -> *mut c_void>,
}

impl Api {
    pub(crate) fn hal_dram() -> u8 {
        hal_mem::DRAM
    }
    pub(crate) fn hal_l1() -> u8 {
        hal_mem::L1
    }
}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

fn lookup(handle: *mut c_void, name: &CStr) -> Option<*mut c_void> {
    // SAFETY: name is NUL-terminated; dlsym has no other preconditions.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// tt-metal's own handle, if the library is loaded (never loads it).
///
/// A library opened without `RTLD_GLOBAL` is outside the default and the next search scope:
/// Python imports extension modules `RTLD_LOCAL`, and ctypes opens libraries that way, so a
/// `libtt_metal.so` brought in by `import ttnn` or a ctypes helper is found only through its own
/// handle. Its calls still reach the shim's interposers (the preloaded library comes first in
/// every object's lookup scope); only the shim's lookups of the real functions need this.
fn tt_metal() -> Option<*mut c_void> {
    // SAFETY: the name is NUL-terminated; RTLD_NOLOAD returns an already-loaded library or null.
    let h = unsafe { libc::dlopen(c"libtt_metal.so".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    (!h.is_null()).then_some(h)
}

/// Looks up a symbol anywhere in the process, tt-metal's handle last.
pub(crate) fn global(name: &CStr) -> Option<*mut c_void> {
    lookup(libc::RTLD_DEFAULT, name).or_else(|| tt_metal().and_then(|h| lookup(h, name)))
}

/// Looks up the definition after this library's (the real one behind an interposed symbol),
/// in tt-metal's own handle when the library is not in the global scope.
pub(crate) fn next(name: &CStr) -> Option<*mut c_void> {
    lookup(libc::RTLD_NEXT, name).or_else(|| tt_metal().and_then(|h| lookup(h, name)))
}

/// Reinterprets a symbol address as the function pointer type `F`.
///
/// # Safety
/// `p` must be a function with the signature `F` describes.
unsafe fn cast<F: Copy>(p: *mut c_void) -> F {
    const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<*mut c_void>()) };
    // SAFETY: F is a function pointer of the same size (checked above); the caller vouches for
    // the signature.
    unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) }
}

macro_rules! required {
    ($missing:ident, $name:literal) => {
        match global($name) {
            // SAFETY: the symbol is tt-metal's function with the signature declared in `Api`.
            Some(p) => unsafe { cast(p) },
            None => {
                $missing.push($name.to_string_lossy().into_owned());
                return Err($missing.join(", "));
            }
        }
    };
}

macro_rules! optional {
    ($name:literal) => {
        // SAFETY: as above; absent symbols disable only the feature that needs them.
        global($name).map(|p| unsafe { cast(p) })
    };
}

fn resolve() -> Result<Api, String> {
    let mut missing: Vec<String> = Vec::new();
    Ok(Api {
        address: required!(missing, c"_ZNK2tt8tt_metal6Buffer7addressEv"),
        size: required!(missing, c"_ZNK2tt8tt_metal6Buffer4sizeEv"),
        page_size: required!(missing, c"_ZNK2tt8tt_metal6Buffer9page_sizeEv"),
        buffer_type: required!(missing, c"_ZNK2tt8tt_metal6Buffer11buffer_typeEv"),
        layout: required!(missing, c"_ZNK2tt8tt_metal6Buffer13buffer_layoutEv"),
        unique_id: required!(missing, c"_ZNK2tt8tt_metal6Buffer9unique_idEv"),
        device: required!(missing, c"_ZNK2tt8tt_metal6Buffer6deviceEv"),
        allocator: required!(missing, c"_ZNK2tt8tt_metal6Buffer9allocatorEv"),
        num_banks: required!(missing, c"_ZNK2tt8tt_metal9Allocator13get_num_banksERKNS0_10BufferTypeE"),
        bank_size: required!(missing, c"_ZNK2tt8tt_metal9Allocator13get_bank_sizeERKNS0_10BufferTypeE"),
        alignment: required!(missing, c"_ZNK2tt8tt_metal9Allocator13get_alignmentENS0_10BufferTypeE"),
        base_addr: required!(missing, c"_ZNK2tt8tt_metal9Allocator23get_base_allocator_addrERKNS0_10HalMemTypeE"),
        core_of_bank: required!(missing, c"_ZNK2tt8tt_metal9Allocator29get_logical_core_from_bank_idEj"),
        worker_l1_size: required!(missing, c"_ZNK2tt8tt_metal9Allocator18get_worker_l1_sizeEv"),
        // The primary vtable pointer points past offset-to-top and typeinfo (two words).
        mesh_vptr: global(c"_ZTVN2tt8tt_metal11distributed10MeshDeviceE").map(|p| p as usize + 16),
        mesh_rows: optional!(c"_ZNK2tt8tt_metal11distributed10MeshDevice8num_rowsEv"),
        mesh_cols: optional!(c"_ZNK2tt8tt_metal11distributed10MeshDevice8num_colsEv"),
        mesh_device_ids: optional!(c"_ZNK2tt8tt_metal11distributed10MeshDevice14get_device_idsEv"),
        mesh_backing_buffer: optional!(c"_ZNK2tt8tt_metal11distributed10MeshBuffer18get_backing_bufferEv"),
        mesh_buffer_device: optional!(c"_ZNK2tt8tt_metal11distributed10MeshBuffer6deviceEv"),
        operator_delete: optional!(c"_ZdlPv"),
        is_mock: optional!(c"_ZN2tt8tt_metal12experimental23is_mock_mode_registeredEv"),
        read_buffer: optional!(c"_ZN2tt8tt_metal6detail14ReadFromBufferERNS0_6BufferEPh"),
        synchronize: optional!(
            c"_ZN2tt8tt_metal11distributed11SynchronizeEPNS1_10MeshDeviceESt8optionalIhESt4spanIKN4ttsl10StrongTypeIhNS0_14SubDeviceIdTagEEELm18446744073709551615EE"
        ),
        mesh_coordinate: optional!(c"_ZN2tt8tt_metal11distributed14MeshCoordinateC1Ejj"),
        device_buffer: optional!(c"_ZNK2tt8tt_metal11distributed10MeshBuffer17get_device_bufferERKNS1_14MeshCoordinateE"),
    })
}

/// The accessors, or which symbols are missing. Only call once tt-metal is loaded.
pub(crate) fn api() -> Result<&'static Api, &'static str> {
    API.get_or_init(resolve).as_ref().map_err(|s| s.as_str())
}

/// The path `libtt_metal.so` was loaded from, when it is in the process.
pub(crate) fn library_path() -> Option<String> {
    unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _size: usize, found: *mut c_void) -> libc::c_int {
        // SAFETY: the loader passes a valid entry; dlpi_name is NUL-terminated or null.
        let name = unsafe { (*info).dlpi_name };
        if name.is_null() {
            return 0;
        }
        // SAFETY: as above.
        let name = unsafe { CStr::from_ptr(name) };
        if name.to_bytes().windows(14).any(|w| w == b"libtt_metal.so") {
            // SAFETY: found points at the Option below.
            unsafe { *(found as *mut Option<String>) = Some(name.to_string_lossy().into_owned()) };
            return 1;
        }
        0
    }
    let mut found: Option<String> = None;
    // SAFETY: visit only reads the entry and writes `found`.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut found as *mut Option<String>).cast()) };
    found
}

/// Whether `libtt_metal.so` is in the process. By module name rather than by symbol: a
/// tt-metal whose allocator symbols changed must still count as loaded, so that a run whose
/// allocations the shim could not see is reported as unchecked, not as "never loaded".
pub(crate) fn library_loaded() -> bool {
    library_path().is_some() || next(crate::interpose::ALLOCATE_IMPL).is_some()
}

/// Which tt-metal build is loaded: the ttnn version from the wheel's dist-info beside the
/// library (`site-packages/ttnn/build/lib/libtt_metal.so` and `site-packages/ttnn-X.dist-info`),
/// or "a source build" when there is none, with the library's path.
pub(crate) fn build() -> (String, Option<String>) {
    let Some(path) = library_path() else { return ("tt-metal (library path unknown)".into(), None) };
    let version = ttnn_wheel::version_of_library(std::path::Path::new(&path));
    match &version {
        Some(v) => (format!("ttnn {v} ({path})"), version),
        None => (format!("tt-metal source build, no ttnn dist-info ({path})"), None),
    }
}

/// Whether the mock cluster is in use, in which case device memory cannot be read.
/// Unknown counts as mock: an unreadable digest is the safe answer.
pub(crate) fn is_mock(api: &Api) -> bool {
    match api.is_mock {
        // SAFETY: a static function without arguments.
        Some(f) => unsafe { f() },
        None => true,
    }
}
