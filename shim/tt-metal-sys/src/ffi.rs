//! The C ABI of `cpp/glue.cpp`. Raw and unsafe; [`crate::MockMesh`] is the safe face.

use std::ffi::{c_char, c_int, c_void, CStr};

/// Success.
pub const OK: c_int = 0;
/// A C++ exception was caught; the message is in the error buffer.
#[allow(dead_code)]
pub const EXCEPTION: c_int = 1;
/// The library or one of its symbols is missing.
pub const LIBRARY: c_int = 2;
/// A null or otherwise invalid argument.
pub const BAD_ARGUMENT: c_int = 3;

/// Size of the error message buffers handed to the glue.
pub const ERR_LEN: usize = 2048;

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct TtMeshInfo {
    pub num_devices: u32,
    pub rows: u32,
    pub cols: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct TtSpaceInfo {
    pub num_banks: u32,
    pub alignment: u32,
    pub bank_size: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct TtAllocatorInfo {
    pub dram: TtSpaceInfo,
    pub l1: TtSpaceInfo,
    pub l1_small: TtSpaceInfo,
    pub trace: TtSpaceInfo,
    pub dram_base: u64,
    pub l1_base: u64,
    pub worker_l1_size: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct TtBufferInfo {
    pub address: u64,
    pub size: u64,
    pub page_size: u64,
    pub aligned_page_size: u64,
    pub aligned_size_per_bank: u64,
    pub unique_id: u64,
    pub num_pages: u32,
    pub alignment: u32,
    pub buffer_type: i32,
    pub is_allocated: u8,
}

extern "C" {
    pub fn ttsan_tt_load(metal: *const c_char, ttnn: *const c_char, err: *mut c_char, err_len: usize) -> c_int;
    pub fn ttsan_tt_configure_mock(arch: c_int, chips: u32, err: *mut c_char, err_len: usize) -> c_int;
    pub fn ttsan_tt_open(
        chips: u32,
        l1_small_size: u64,
        trace_region_size: u64,
        out: *mut *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    pub fn ttsan_tt_close(mesh: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    pub fn ttsan_tt_mesh_device(mesh: *mut c_void) -> *mut c_void;
    pub fn ttsan_tt_mesh_info(
        mesh: *mut c_void,
        out: *mut TtMeshInfo,
        ids: *mut i32,
        ids_cap: u32,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    pub fn ttsan_tt_allocator_info(
        mesh: *mut c_void,
        out: *mut TtAllocatorInfo,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    pub fn ttsan_tt_bank_core(
        mesh: *mut c_void,
        bank: u32,
        x: *mut u64,
        y: *mut u64,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    pub fn ttsan_tt_bank_offset(
        mesh: *mut c_void,
        buffer_type: c_int,
        bank: u32,
        out: *mut i64,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    pub fn ttsan_tt_alloc(
        mesh: *mut c_void,
        buffer_type: c_int,
        size: u64,
        page_size: u64,
        out: *mut *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    pub fn ttsan_tt_buffer_info(buffer: *mut c_void, out: *mut TtBufferInfo, err: *mut c_char, err_len: usize)
        -> c_int;
    pub fn ttsan_tt_free(buffer: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    #[allow(clippy::too_many_arguments)]
    pub fn ttsan_tt_write_dram(
        mesh: *mut c_void,
        via: *mut c_void,
        row: u32,
        col: u32,
        bank: u32,
        address: u64,
        data: *const u8,
        len: usize,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    pub fn ttsan_tt_begin_graph_capture(mode: c_int, err: *mut c_char, err_len: usize) -> c_int;
    pub fn ttsan_tt_end_graph_capture_to_file(path: *const c_char, err: *mut c_char, err_len: usize) -> c_int;
}

/// A zeroed error buffer for one call.
pub fn err_buf() -> Vec<c_char> {
    vec![0; ERR_LEN]
}

/// The message the glue left in `buf` (empty when it wrote none).
pub fn err_text(buf: &[c_char]) -> String {
    // The glue always NUL-terminates (snprintf); a buffer without NUL yields an empty message.
    let bytes: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
    CStr::from_bytes_until_nul(&bytes).map(|s| s.to_string_lossy().trim().to_string()).unwrap_or_default()
}
