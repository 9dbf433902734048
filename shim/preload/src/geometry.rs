//! The capture header's geometry and mesh, read from the allocator of the first buffer seen.

use crate::tt::{buffer_type, Api, RawVec};
use std::ffi::c_void;
use ttsan_events::{Arch, CoreCoord, Geometry, MeshDesc};

/// What the library told us about the device, and how sure we are.
pub(crate) struct DeviceFacts {
    /// Geometry of every chip.
    pub geometry: Geometry,
    /// The mesh.
    pub mesh: MeshDesc,
    /// Where the geometry came from, for the producer string.
    pub source: &'static str,
}

/// Whether `device` (an `IDevice*`) is a `MeshDevice`: its vtable pointer says so.
pub(crate) fn is_mesh(api: &Api, device: *const c_void) -> bool {
    match api.mesh_vptr {
        // SAFETY: every IDevice is polymorphic, so its first word is a vtable pointer.
        Some(vptr) if !device.is_null() => unsafe { *(device as *const usize) == vptr },
        _ => false,
    }
}

/// The mesh of `device`, or a single chip when it is not a mesh (or the mesh cannot be asked).
fn mesh_of(api: &Api, device: *const c_void) -> MeshDesc {
    if !is_mesh(api, device) {
        return MeshDesc::grid(1, 1);
    }
    let (Some(rows), Some(cols)) = (api.mesh_rows, api.mesh_cols) else { return MeshDesc::grid(1, 1) };
    // SAFETY: device is a MeshDevice (checked above); these are its const getters.
    let (rows, cols) = unsafe { (rows(device) as u32, cols(device) as u32) };
    let (rows, cols) = (rows.max(1), cols.max(1));
    let ids = device_ids(api, device);
    if ids.len() == (rows * cols) as usize {
        MeshDesc { rows, cols, device_ids: ids }
    } else {
        MeshDesc::grid(rows, cols)
    }
}

fn device_ids(api: &Api, device: *const c_void) -> Vec<u32> {
    let Some(get) = api.mesh_device_ids else { return Vec::new() };
    let mut raw = RawVec::<i32> { begin: std::ptr::null_mut(), end: std::ptr::null_mut(), cap: std::ptr::null_mut() };
    // SAFETY: get_device_ids returns a std::vector<int> constructed into `raw` (hidden result
    // pointer); begin..end are its elements, which we copy before releasing the storage.
    unsafe {
        get(&mut raw, device);
        let mut out = Vec::new();
        if !raw.begin.is_null() && raw.end >= raw.begin {
            let n = raw.end.offset_from(raw.begin) as usize;
            out.extend(std::slice::from_raw_parts(raw.begin, n).iter().map(|&d| d.max(0) as u32));
        }
        if let (Some(delete), false) = (api.operator_delete, raw.begin.is_null()) {
            delete(raw.begin.cast());
        }
        out
    }
}

fn arch_of(dram_banks: u32) -> Arch {
    // Wormhole B0 has 12 DRAM channel views, Blackhole 8 (7 on harvested p100).
    if dram_banks >= 12 {
        Arch::WormholeB0
    } else {
        Arch::Blackhole
    }
}

/// Reads the geometry off `buffer`'s allocator and device. Values the allocator does not report
/// (the DRAM view size) come from the measured mock-mode facts for that chip count.
pub(crate) fn read(api: &Api, buffer: *const c_void) -> DeviceFacts {
    // SAFETY: buffer is a live tt::tt_metal::Buffer (the interposed call's argument).
    let (allocator, device) = unsafe { ((api.allocator)(buffer), (api.device)(buffer)) };
    let mesh = mesh_of(api, device);
    if allocator.is_null() {
        return fallback(mesh, "the measured mock-mode facts (the buffer had no allocator)");
    }
    let t = |v: i32| v;
    // SAFETY: allocator is the buffer's live Allocator; every call is a const getter taking
    // a BufferType or HalMemType by reference or value as declared in `Api`.
    unsafe {
        let dram_banks = (api.num_banks)(allocator, &t(buffer_type::DRAM));
        let l1_banks = (api.num_banks)(allocator, &t(buffer_type::L1));
        let arch = arch_of(dram_banks);
        let chips = mesh.len() as u32;
        let base = Geometry::mock(arch, chips).unwrap_or_else(|_| match arch {
            Arch::WormholeB0 => Geometry::wormhole_b0(),
            Arch::Blackhole => Geometry::blackhole(),
        });
        let cores: Vec<CoreCoord> = (0..l1_banks)
            .map(|b| {
                let c = (api.core_of_bank)(allocator, b);
                CoreCoord::new(c.x as u16, c.y as u16)
            })
            .collect();
        let grid = CoreCoord::new(
            cores.iter().map(|c| c.x + 1).max().unwrap_or(base.worker_grid.x),
            cores.iter().map(|c| c.y + 1).max().unwrap_or(base.worker_grid.y),
        );
        let dram_alignment = u64::from((api.alignment)(allocator, buffer_type::DRAM));
        let geometry = Geometry {
            arch,
            dram_banks,
            dram_bank_size: base.dram_bank_size,
            dram_alignment,
            dram_unreserved_base: (api.base_addr)(allocator, &Api::hal_dram()),
            trace_region_size: (api.bank_size)(allocator, &t(buffer_type::TRACE)),
            l1_size: (api.worker_l1_size)(allocator) as u64,
            l1_alignment: u64::from((api.alignment)(allocator, buffer_type::L1)),
            // tt-metal's L1 bank managers align to the DRAM alignment.
            l1_allocator_alignment: dram_alignment,
            l1_unreserved_base: (api.base_addr)(allocator, &Api::hal_l1()),
            l1_small_size: (api.bank_size)(allocator, &t(buffer_type::L1_SMALL)),
            worker_grid: grid,
            l1_bank_cores: cores,
        };
        DeviceFacts { geometry, mesh, source: "read from the allocator" }
    }
}

/// Geometry when no buffer could be asked: the measured mock facts of a Wormhole mesh.
pub(crate) fn fallback(mesh: MeshDesc, source: &'static str) -> DeviceFacts {
    let chips = mesh.len() as u32;
    let geometry = Geometry::mock(Arch::WormholeB0, chips).unwrap_or_else(|_| Geometry::wormhole_b0());
    DeviceFacts { geometry, mesh, source }
}
