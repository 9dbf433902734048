//! The safe API: a mock mesh of the real tt-metal, its buffers, and graph capture.

use crate::error::{AllocError, TtError};
use crate::ffi;
use crate::process;
use crate::root::RuntimeRoot;
use crate::types::{AllocatorFacts, Arch, BufferInfo, BufferKind, MeshInfo, OpenOptions, RunMode, SpaceFacts};
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::path::{Path, PathBuf};

/// A buffer allocated with [`MockMesh::allocate`]; give it back with [`MockMesh::free`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshBufferHandle {
    key: u64,
    info: BufferInfo,
}

impl MeshBufferHandle {
    /// Bank-local address.
    pub fn address(&self) -> u64 {
        self.info.address
    }

    /// Everything the library reported right after allocating.
    pub fn info(&self) -> &BufferInfo {
        &self.info
    }
}

/// A mesh of mock chips driven by the real tt-metal allocator.
///
/// tt-metal allows one mesh per process and one mock configuration per process; a second
/// `open` while one is alive, or with another architecture or chip count, is refused.
///
/// tt-metal writes `generated/` files into the current directory, so while the mesh is open the
/// process works in a private temporary directory; paths given to methods are resolved against
/// the directory that was current at [`MockMesh::open`]. Dropping the mesh frees its buffers,
/// closes it and restores the working directory.
pub struct MockMesh {
    raw: *mut c_void,
    buffers: HashMap<u64, *mut c_void>,
    next_key: u64,
    info: MeshInfo,
    facts: AllocatorFacts,
    caller_cwd: PathBuf,
    scratch: Option<tempfile::TempDir>,
}

fn call(what: &'static str, f: impl FnOnce(*mut std::ffi::c_char, usize) -> i32) -> Result<(), TtError> {
    let mut err = ffi::err_buf();
    let rc = f(err.as_mut_ptr(), err.len());
    match rc {
        ffi::OK => Ok(()),
        ffi::LIBRARY => Err(TtError::Load(format!("{what}: library not loaded"))),
        ffi::BAD_ARGUMENT => Err(TtError::Argument(format!("{what}: rejected by the glue"))),
        _ => Err(TtError::Call { what, message: ffi::err_text(&err) }),
    }
}

impl MockMesh {
    /// Opens a mock mesh of `chips` chips of `arch` with default sizes (no L1_SMALL, no trace
    /// region), as `configure_mock_mode(arch, chips)` picks its cluster descriptor.
    pub fn open(root: &RuntimeRoot, arch: Arch, chips: u32) -> Result<MockMesh, TtError> {
        Self::open_with(root, arch, chips, OpenOptions::default())
    }

    /// Opens a mock mesh with explicit L1_SMALL and trace region sizes.
    pub fn open_with(root: &RuntimeRoot, arch: Arch, chips: u32, opts: OpenOptions) -> Result<MockMesh, TtError> {
        if chips == 0 {
            return Err(TtError::Argument("a mesh needs at least one chip".into()));
        }
        let caller_cwd = std::env::current_dir()
            .map_err(|source| TtError::Io { what: "cannot read the current directory".into(), source })?;
        let scratch = tempfile::Builder::new()
            .prefix("ttsan-tt-metal-")
            .tempdir()
            .map_err(|source| TtError::Io { what: "cannot create a temporary directory".into(), source })?;
        process::acquire(root, arch, chips, scratch.path(), !opts.hardware)?;
        let mut mesh = MockMesh {
            raw: std::ptr::null_mut(),
            buffers: HashMap::new(),
            next_key: 0,
            info: MeshInfo { num_devices: 0, rows: 0, cols: 0, device_ids: Vec::new() },
            facts: AllocatorFacts::default(),
            caller_cwd,
            scratch: Some(scratch),
        };
        // From here on Drop releases the process slot and restores the cwd, whatever fails.
        let work = mesh.scratch.as_ref().map(|s| s.path().to_path_buf()).unwrap_or_default();
        std::env::set_current_dir(&work)
            .map_err(|source| TtError::Io { what: format!("cannot enter {}", work.display()), source })?;
        let mut raw = std::ptr::null_mut();
        call("opening the mesh", |e, n| {
            // SAFETY: the library is loaded (process::acquire); out and err point to live memory.
            unsafe { ffi::ttsan_tt_open(chips, opts.l1_small_size, opts.trace_region_size, &mut raw, e, n) }
        })?;
        mesh.raw = raw;
        mesh.info = mesh.query_info()?;
        mesh.facts = mesh.query_facts()?;
        Ok(mesh)
    }

    fn query_info(&self) -> Result<MeshInfo, TtError> {
        let mut info = ffi::TtMeshInfo::default();
        let mut ids = vec![-1i32; 1024];
        call("reading the mesh shape", |e, n| {
            // SAFETY: raw is an open mesh; ids holds ids.len() entries.
            unsafe { ffi::ttsan_tt_mesh_info(self.raw, &mut info, ids.as_mut_ptr(), ids.len() as u32, e, n) }
        })?;
        let count = (info.num_devices as usize).min(ids.len());
        let device_ids = ids[..count].iter().map(|&d| u32::try_from(d).unwrap_or(u32::MAX)).collect();
        Ok(MeshInfo { num_devices: info.num_devices, rows: info.rows, cols: info.cols, device_ids })
    }

    fn query_facts(&self) -> Result<AllocatorFacts, TtError> {
        let mut a = ffi::TtAllocatorInfo::default();
        call("reading the allocator", |e, n| {
            // SAFETY: raw is an open mesh.
            unsafe { ffi::ttsan_tt_allocator_info(self.raw, &mut a, e, n) }
        })?;
        let space =
            |s: ffi::TtSpaceInfo| SpaceFacts { num_banks: s.num_banks, alignment: s.alignment, bank_size: s.bank_size };
        let mut l1_bank_cores = Vec::with_capacity(a.l1.num_banks as usize);
        for bank in 0..a.l1.num_banks {
            let (mut x, mut y) = (0u64, 0u64);
            call("mapping an L1 bank to its core", |e, n| {
                // SAFETY: raw is an open mesh; bank < num_banks(L1).
                unsafe { ffi::ttsan_tt_bank_core(self.raw, bank, &mut x, &mut y, e, n) }
            })?;
            l1_bank_cores.push((x as u32, y as u32));
        }
        let mut dram_bank_offsets = Vec::with_capacity(a.dram.num_banks as usize);
        for bank in 0..a.dram.num_banks {
            let mut off = 0i64;
            call("reading a DRAM bank offset", |e, n| {
                // SAFETY: raw is an open mesh; bank < num_banks(DRAM).
                unsafe { ffi::ttsan_tt_bank_offset(self.raw, BufferKind::Dram.raw(), bank, &mut off, e, n) }
            })?;
            dram_bank_offsets.push(off);
        }
        Ok(AllocatorFacts {
            dram: space(a.dram),
            l1: space(a.l1),
            l1_small: space(a.l1_small),
            trace: space(a.trace),
            dram_base: a.dram_base,
            l1_base: a.l1_base,
            worker_l1_size: a.worker_l1_size,
            l1_bank_cores,
            dram_bank_offsets,
        })
    }

    /// The mesh shape and device ids.
    /// The library's `MeshDevice*`, for calls ttsan makes into tt-metal directly (the doctor).
    pub fn raw_device(&self) -> *const std::ffi::c_void {
        // SAFETY: raw is this mesh's live handle (or null, which the glue answers with null).
        unsafe { ffi::ttsan_tt_mesh_device(self.raw) }
    }

    /// The mesh as the library opened it.
    pub fn info(&self) -> &MeshInfo {
        &self.info
    }

    /// The allocator geometry, read once at open.
    pub fn facts(&self) -> &AllocatorFacts {
        &self.facts
    }

    /// Allocates a replicated interleaved mesh buffer (same address on every chip).
    ///
    /// Any exception tt-metal throws while allocating (out of memory, a bad page size, a
    /// region of size 0) comes back as an [`AllocError`] carrying its message.
    pub fn allocate(&mut self, kind: BufferKind, size: u64, page_size: u64) -> Result<MeshBufferHandle, AllocError> {
        let mut raw_buf = std::ptr::null_mut();
        let mut err = ffi::err_buf();
        // SAFETY: raw is an open mesh; out and err point to live memory.
        let rc = unsafe {
            ffi::ttsan_tt_alloc(self.raw, kind.raw(), size, page_size, &mut raw_buf, err.as_mut_ptr(), err.len())
        };
        if rc != ffi::OK || raw_buf.is_null() {
            let mut message = ffi::err_text(&err);
            if message.is_empty() {
                message = format!("glue error code {rc}");
            }
            return Err(AllocError { message });
        }
        let info = match Self::buffer_info(raw_buf) {
            Ok(info) => info,
            Err(e) => {
                let mut err = ffi::err_buf();
                // SAFETY: raw_buf came from ttsan_tt_alloc and is released exactly once here.
                unsafe { ffi::ttsan_tt_free(raw_buf, err.as_mut_ptr(), err.len()) };
                return Err(AllocError { message: e.to_string() });
            }
        };
        let key = self.next_key;
        self.next_key += 1;
        self.buffers.insert(key, raw_buf);
        Ok(MeshBufferHandle { key, info })
    }

    fn buffer_info(raw_buf: *mut c_void) -> Result<BufferInfo, TtError> {
        let mut b = ffi::TtBufferInfo::default();
        call("reading a buffer", |e, n| {
            // SAFETY: raw_buf is a live buffer handle.
            unsafe { ffi::ttsan_tt_buffer_info(raw_buf, &mut b, e, n) }
        })?;
        Ok(BufferInfo {
            address: b.address,
            size: b.size,
            page_size: b.page_size,
            aligned_page_size: b.aligned_page_size,
            aligned_size_per_bank: b.aligned_size_per_bank,
            unique_id: b.unique_id,
            num_pages: b.num_pages,
            alignment: b.alignment,
            kind: BufferKind::from_raw(b.buffer_type),
            is_allocated: b.is_allocated != 0,
        })
    }

    /// Writes `bytes` straight into DRAM bank `bank` of chip (`row`, `col`) at the bank-local
    /// `address`, bypassing buffers, command queues and the graph tracker, as a kernel with a
    /// stale address would (`detail::WriteToDeviceDRAMChannel`). `via` is any live DRAM buffer
    /// of this mesh: the chip's device is found through its copy on that chip. The address need
    /// not belong to `via`; that is the point. In mock mode the chips have no memory and the
    /// write goes nowhere.
    pub fn write_dram_raw(
        &mut self,
        via: &MeshBufferHandle,
        (row, col): (u32, u32),
        bank: u32,
        address: u64,
        bytes: &[u8],
    ) -> Result<(), TtError> {
        let raw_buf = *self
            .buffers
            .get(&via.key)
            .ok_or_else(|| TtError::Argument("buffer handle is not from this mesh or already freed".into()))?;
        call("writing to DRAM", |e, n| {
            // SAFETY: raw and raw_buf are live handles of this mesh; bytes outlives the call.
            unsafe {
                ffi::ttsan_tt_write_dram(self.raw, raw_buf, row, col, bank, address, bytes.as_ptr(), bytes.len(), e, n)
            }
        })
    }

    /// Deallocates a buffer.
    pub fn free(&mut self, handle: MeshBufferHandle) -> Result<(), TtError> {
        let raw_buf = self
            .buffers
            .remove(&handle.key)
            .ok_or_else(|| TtError::Argument("buffer handle is not from this mesh or already freed".into()))?;
        call("deallocating a buffer", |e, n| {
            // SAFETY: raw_buf came from ttsan_tt_alloc and was removed from the map, so it is
            // released exactly once.
            unsafe { ffi::ttsan_tt_free(raw_buf, e, n) }
        })
    }

    /// Starts a ttnn graph capture.
    pub fn begin_graph_capture(&mut self, mode: RunMode) -> Result<(), TtError> {
        let raw = match mode {
            RunMode::Normal => 0,
            RunMode::NoDispatch => 1,
        };
        call("begin_graph_capture", |e, n| {
            // SAFETY: the library is loaded while a mesh exists.
            unsafe { ffi::ttsan_tt_begin_graph_capture(raw, e, n) }
        })
    }

    /// Ends the graph capture and writes ttnn's JSON report. A relative `path` is taken
    /// relative to the directory that was current when the mesh was opened.
    pub fn end_graph_capture_to_file(&mut self, path: &Path) -> Result<(), TtError> {
        let path = self.caller_cwd.join(path);
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| TtError::Argument(format!("path contains a NUL byte: {}", path.display())))?;
        call("end_graph_capture_to_file", |e, n| {
            // SAFETY: c is NUL-terminated and outlives the call.
            unsafe { ffi::ttsan_tt_end_graph_capture_to_file(c.as_ptr(), e, n) }
        })
    }

    /// Frees every live buffer and closes the mesh, reporting the first failure.
    pub fn close(mut self) -> Result<(), TtError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), TtError> {
        let mut first: Result<(), TtError> = Ok(());
        let mut keys: Vec<u64> = self.buffers.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            if let Some(raw_buf) = self.buffers.remove(&key) {
                let r = call("deallocating a buffer at close", |e, n| {
                    // SAFETY: removed from the map, so released exactly once.
                    unsafe { ffi::ttsan_tt_free(raw_buf, e, n) }
                });
                if first.is_ok() {
                    first = r;
                }
            }
        }
        if !self.raw.is_null() {
            let raw = std::mem::replace(&mut self.raw, std::ptr::null_mut());
            let r = call("closing the mesh", |e, n| {
                // SAFETY: raw is the open mesh; the glue deletes it, and it is nulled above.
                unsafe { ffi::ttsan_tt_close(raw, e, n) }
            });
            if first.is_ok() {
                first = r;
            }
        }
        if self.scratch.is_some() {
            let _ = std::env::set_current_dir(&self.caller_cwd);
            self.scratch = None;
            process::release();
        }
        first
    }
}

impl Drop for MockMesh {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
