//! Collective ops over the mesh, with the buffers and global semaphores tt-metal's CCL ops
//! use, so a trace shows their intermediates and semaphores as the real ops have them.
//!
//! Results are exact: every chip's contribution is read, reduced in `f32` in group order
//! (the chips of the group in mesh order) and rounded once into the output dtype.

mod all_gather;
mod all_reduce;
mod all_to_all;
mod mesh_partition;
mod reduce_scatter;
mod semaphore;

pub use all_gather::{all_gather, all_gather_async, AllGatherAsync};
pub use all_reduce::all_reduce;
pub use all_to_all::{all_to_all_combine, all_to_all_dispatch};
pub use mesh_partition::mesh_partition;
pub use reduce_scatter::{reduce_scatter, reduce_scatter_minimal_async, ReduceScatterAsync};
pub use semaphore::{CclManager, GlobalSemaphore};

use super::chip::Chip;
use super::error::{SimError, SimResult};
use super::host::HostTensor;
use super::mesh::Mesh;
use super::op::OpRun;
use super::ops::Out;
use super::tensor::Tensor;
use ttsan_events::{CoreRange, Role, Unit};

/// How the chips of a group are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// A ring (wrap-around links).
    #[default]
    Ring,
    /// A line (no wrap-around); some ops need larger intermediates.
    Linear,
}

/// Arguments every collective takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CclArgs {
    /// Mesh axis of the groups: `Some(0)` = chips of a column, `Some(1)` = chips of a row,
    /// `None` = the whole mesh in device order.
    pub cluster_axis: Option<usize>,
    /// Ring or line.
    pub topology: Topology,
    /// Links (one worker core per link signals the semaphores).
    pub num_links: u32,
    /// Output placement and name.
    pub out: Out,
}

impl Default for CclArgs {
    fn default() -> Self {
        CclArgs { cluster_axis: None, topology: Topology::Ring, num_links: 1, out: Out::dram() }
    }
}

impl CclArgs {
    /// Groups along `axis`.
    pub fn axis(axis: usize) -> Self {
        CclArgs { cluster_axis: Some(axis), ..CclArgs::default() }
    }

    /// The same with a topology.
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// The same with an output spec.
    pub fn out(mut self, out: Out) -> Self {
        self.out = out;
        self
    }

    pub(crate) fn text(&self, extra: &str) -> String {
        format!(
            "cluster_axis={:?}, topology={:?}, num_links={}{extra}",
            self.cluster_axis, self.topology, self.num_links
        )
    }
}

/// The groups of device indices a collective works within, and each device's (group, position).
pub(crate) struct Groups {
    pub(crate) groups: Vec<Vec<usize>>,
    pub(crate) of: Vec<(usize, usize)>,
}

impl Groups {
    pub(crate) fn new(mesh: &Mesh, axis: Option<usize>, op: &str) -> SimResult<Self> {
        let (rows, cols) = (mesh.desc().rows as usize, mesh.desc().cols as usize);
        let groups: Vec<Vec<usize>> = match axis {
            None => vec![(0..rows * cols).collect()],
            Some(0) => (0..cols).map(|c| (0..rows).map(|r| r * cols + c).collect()).collect(),
            Some(1) => (0..rows).map(|r| (0..cols).map(|c| r * cols + c).collect()).collect(),
            Some(a) => return Err(SimError::invalid(op, format!("cluster_axis {a} does not exist (0 or 1)"))),
        };
        let mut of = vec![(0, 0); rows * cols];
        for (g, members) in groups.iter().enumerate() {
            for (p, &d) in members.iter().enumerate() {
                of[d] = (g, p);
            }
        }
        Ok(Groups { groups, of })
    }

    /// Chips per group.
    pub(crate) fn size(&self) -> usize {
        self.groups.first().map(Vec::len).unwrap_or(1)
    }

    /// The members of device `d`'s group.
    pub(crate) fn members(&self, d: usize) -> &[usize] {
        &self.groups[self.of[d].0]
    }

    /// Sum over the group of `d`, in group order, in f32.
    pub(crate) fn sum(&self, d: usize, inputs: &[HostTensor]) -> HostTensor {
        let members = self.members(d);
        let mut acc = inputs[members[0]].clone();
        for &m in &members[1..] {
            for (a, b) in acc.data.iter_mut().zip(&inputs[m].data) {
                *a += b;
            }
        }
        acc
    }
}

/// A worker core per link signals a semaphore: the count goes up as peers report in and the
/// op resets it to zero when done, so the word ends as it started.
pub(crate) fn signal(chip: &mut Chip<'_>, sem: &Tensor, cores: &CoreRange, num_links: u32) -> SimResult<()> {
    for core in cores.cores().take(num_links.max(1) as usize) {
        let unit = Unit::Core(core);
        chip.write_bytes(sem.space(), unit, sem.address(), &1u32.to_le_bytes())?;
        chip.write_bytes(sem.space(), unit, sem.address(), &0u32.to_le_bytes())?;
    }
    Ok(())
}

/// The synchronous collectives' completion: every chip signals the op's own semaphore `sem` on
/// `num_links` worker cores of `cores`.
pub(crate) fn signal_own(op: &mut OpRun<'_>, sem: &Tensor, cores: &CoreRange, num_links: u32) -> SimResult<()> {
    op.run(|chip| signal(chip, sem, cores, num_links))?;
    Ok(())
}

/// The async collectives' step completion: every chip signals each of the op's global
/// semaphores and then its barrier.
pub(crate) fn signal_all(
    op: &mut OpRun<'_>,
    semaphores: &[GlobalSemaphore],
    barrier: Option<&GlobalSemaphore>,
    num_links: u32,
) -> SimResult<()> {
    op.run(|chip| {
        for s in semaphores.iter().chain(barrier) {
            signal(chip, &s.tensor, &s.cores, num_links)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// A semaphore word on every core of the op's grid that the op creates itself and keeps in
/// the op cache under `key` (the synchronous collectives' internal semaphores).
pub(crate) fn cached_semaphore(op: &mut OpRun<'_>, key: &str, name: &str) -> SimResult<Tensor> {
    let cores = op.compute_grid();
    op.cached_scratch(key, &GlobalSemaphore::spec(cores), name, Role::Semaphore)
}

/// `shape` with `dim` multiplied (`Some`) or divided (`None`) by `by`.
pub(crate) fn scale_dim(op: &str, shape: &[usize], dim: usize, by: usize, grow: bool) -> SimResult<Vec<usize>> {
    let mut s = shape.to_vec();
    let d = s.get_mut(dim).ok_or_else(|| SimError::invalid(op, format!("no dim {dim} in {shape:?}")))?;
    if grow {
        *d *= by;
    } else {
        if by == 0 || *d % by != 0 {
            return Err(SimError::invalid(op, format!("dim {dim} of {shape:?} does not split over {by} chips")));
        }
        *d /= by;
    }
    Ok(s)
}
