//! One chip as a kernel sees it: checked reads and writes through a tensor's page mapping.

use super::error::{SimError, SimResult};
use super::host::HostTensor;
use super::memory::ChipMemory;
use super::tensor::Tensor;
use super::write_log::WriteLog;
use ttsan_events::{Geometry, Space, Unit};

/// A chip during an op (or a host transfer): its memory and the log of what was written.
pub struct Chip<'a> {
    pub(crate) device: u32,
    pub(crate) mem: &'a mut ChipMemory,
    pub(crate) log: &'a mut WriteLog,
    pub(crate) geometry: &'a Geometry,
    /// Whether writes are logged (off in `DetectMode::None`).
    pub(crate) track: bool,
}

/// Whether `unit` exists in `space` on a chip of `geometry`, and its size.
pub(crate) fn unit_size(geometry: &Geometry, space: Space, unit: Unit) -> Option<u64> {
    let exists = match unit {
        Unit::Bank(b) => space.is_dram() && b < geometry.dram_banks,
        Unit::Core(c) => !space.is_dram() && c.x < geometry.worker_grid.x && c.y < geometry.worker_grid.y,
    };
    exists.then(|| geometry.unit_size(space))
}

impl Chip<'_> {
    /// The device id.
    pub fn device(&self) -> u32 {
        self.device
    }

    /// The tensor's values on this chip, read page by page through its placement.
    pub fn read(&self, t: &Tensor) -> HostTensor {
        let p = t.placement();
        let ps = p.page_size as usize;
        let mut bytes = vec![0u8; p.pages as usize * ps];
        for (page, chunk) in bytes.chunks_mut(ps).enumerate() {
            if let Some((unit, addr)) = p.locate(page as u64) {
                self.mem.read(p.space, unit, addr, chunk);
            }
        }
        t.spec().format().decode(&bytes)
    }

    /// Writes `values` (the tensor's shape) into the tensor on this chip, every page.
    pub fn write(&mut self, t: &Tensor, values: &HostTensor) -> SimResult<()> {
        if values.shape != t.shape() {
            return Err(SimError::invalid(
                "write",
                format!("values of shape {:?} do not fit tensor '{}' of shape {:?}", values.shape, t.name(), t.shape()),
            ));
        }
        let bytes = t.spec().format().encode(values);
        self.write_pages(t, 0..t.placement().pages, &bytes)
    }

    /// Writes only `pages` of the tensor from `bytes` (all pages, page after page): kernels
    /// that fill part of an output (all-to-all dispatch) leave the other pages alone.
    pub fn write_pages(&mut self, t: &Tensor, pages: impl IntoIterator<Item = u64>, bytes: &[u8]) -> SimResult<()> {
        let p = t.placement().clone();
        let ps = p.page_size as usize;
        for page in pages {
            let Some((unit, addr)) = p.locate(page) else { continue };
            let at = page as usize * ps;
            let Some(src) = bytes.get(at..at + ps) else { continue };
            self.write_bytes(p.space, unit, addr, src)?;
        }
        Ok(())
    }

    /// Writes raw bytes at a bank-local address; fails outside the unit.
    pub fn write_bytes(&mut self, space: Space, unit: Unit, address: u64, data: &[u8]) -> SimResult<()> {
        let size = unit_size(self.geometry, space, unit).ok_or(SimError::NoSuchUnit { space, unit })?;
        let len = data.len() as u64;
        if address.checked_add(len).is_none_or(|end| end > size) {
            return Err(SimError::OutOfUnit { device: self.device, space, unit, address, len, size });
        }
        self.mem.write(space, unit, address, data);
        if self.track {
            self.log.add(space, unit, address, len);
        }
        Ok(())
    }

    /// Reads raw bytes at a bank-local address (zeros where nothing was written).
    pub fn read_bytes(&self, space: Space, unit: Unit, address: u64, out: &mut [u8]) {
        self.mem.read(space, unit, address, out);
    }
}

/// Runs `f` on every chip with its own piece of `data`, spreading chips over worker threads.
/// Results come back in chip order whatever the scheduling, so event order stays deterministic.
pub(crate) fn par_chips<D: Send, T: Send>(
    mems: &mut [ChipMemory],
    logs: &mut [WriteLog],
    geometry: &Geometry,
    track: bool,
    data: Vec<D>,
    f: &(dyn Fn(&mut Chip<'_>, D) -> SimResult<T> + Sync),
) -> SimResult<Vec<T>> {
    let n = mems.len();
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1).min(n).max(1);
    let mut work: Vec<(usize, &mut ChipMemory, &mut WriteLog, D)> =
        mems.iter_mut().zip(logs.iter_mut()).zip(data).enumerate().map(|(i, ((m, l), d))| (i, m, l, d)).collect();
    let run_one = |(i, mem, log, d): (usize, &mut ChipMemory, &mut WriteLog, D)| {
        let mut chip = Chip { device: i as u32, mem, log, geometry, track };
        f(&mut chip, d)
    };
    if threads == 1 {
        return work.into_iter().map(run_one).collect();
    }
    let per = n.div_ceil(threads);
    let mut chunks: Vec<Vec<_>> = Vec::new();
    while !work.is_empty() {
        let rest = work.split_off(per.min(work.len()));
        chunks.push(std::mem::replace(&mut work, rest));
    }
    let results = crossbeam::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| s.spawn(move |_| chunk.into_iter().map(run_one).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    })
    .map_err(|_| SimError::WorkerPanicked)?;
    let mut out = Vec::with_capacity(n);
    for r in results {
        out.extend(r.map_err(|_| SimError::WorkerPanicked)?);
    }
    out.into_iter().collect()
}
