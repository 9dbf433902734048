//! `ttnn.reduce_scatter` and `ttnn.experimental.reduce_scatter_minimal_async`.

use super::{cached_semaphore, scale_dim, signal_all, signal_own, CclArgs, GlobalSemaphore, Groups, Topology};
use crate::error::{SimError, SimResult};
use crate::host::{norm_dim, HostTensor};
use crate::mesh::Mesh;
use crate::op::OpRun;
use crate::tensor::{MemoryConfig, Tensor};
use ttsan_events::Role;

/// Extra arguments of `ttnn.experimental.reduce_scatter_minimal_async`.
#[derive(Debug, Clone, Default)]
pub struct ReduceScatterAsync<'a> {
    /// `multi_device_global_semaphore`: exactly 3.
    pub semaphores: Vec<GlobalSemaphore>,
    /// `barrier_semaphore`.
    pub barrier: Option<GlobalSemaphore>,
    /// `persistent_output_buffers` = [intermediate, output].
    pub persistent: Option<(&'a Tensor, &'a Tensor)>,
    /// `intermediate_memory_config` (default: the input's, DRAM).
    pub intermediate_memory: Option<MemoryConfig>,
    /// The trace name of the intermediate (default `<op>.intermediate`).
    pub intermediate_name: Option<String>,
}

/// Sums the group, stores the sum in `intermediate` (twice over dim 0 on a line, one copy per
/// direction) and the chip's slice of it in `out`.
fn run_reduce_scatter(
    op: &mut OpRun<'_>,
    x: &Tensor,
    intermediate: &Tensor,
    out: &Tensor,
    dim: usize,
    groups: &Groups,
    topology: Topology,
) -> SimResult<()> {
    let inputs = op.read(x)?;
    let n = groups.size();
    let mut inter = Vec::with_capacity(inputs.len());
    let mut outs = Vec::with_capacity(inputs.len());
    for d in 0..inputs.len() {
        let sum = groups.sum(d, &inputs);
        let pos = groups.of[d].1;
        outs.push(sum.split(dim, n)?.swap_remove(pos));
        inter.push(match topology {
            Topology::Ring => sum,
            Topology::Linear => HostTensor::concat(&[sum.clone(), sum], 0)?,
        });
    }
    op.write(intermediate, inter)?;
    op.write(out, outs)
}

fn intermediate_shape(x: &Tensor, topology: Topology) -> Vec<usize> {
    let mut s = x.shape().to_vec();
    if topology == Topology::Linear {
        if let Some(d0) = s.first_mut() {
            *d0 *= 2;
        }
    }
    s
}

/// `ttnn.reduce_scatter(x, dim, cluster_axis=...)`: the intermediate and the semaphores are
/// the op's own, kept in the op cache across calls.
pub fn reduce_scatter(mesh: &mut Mesh, x: &Tensor, dim: i64, args: &CclArgs) -> SimResult<Tensor> {
    let name = "ttnn.reduce_scatter";
    let d = norm_dim(name, dim, x.shape().len())?;
    let groups = Groups::new(mesh, args.cluster_axis, name)?;
    let shape = scale_dim(name, x.shape(), d, groups.size(), false)?;
    let key = format!("{:?}/{dim}/{:?}/{:?}", x.spec(), args.cluster_axis, args.topology);
    let mut op = mesh.begin_op(name, args.text(&format!(", dim={dim}")), &[x], &[], &[])?;
    let cores = op.compute_grid();
    let sem = cached_semaphore(&mut op, &format!("sem/{key}"), &format!("{name}.semaphore"))?;
    let ispec = x.spec().clone().with_shape(&intermediate_shape(x, args.topology));
    let inter = op.cached_scratch(&key, &ispec, &format!("{name}.intermediate"), Role::CclScratch)?;
    let out = op.alloc_output(&args.out.spec(&shape, x), &args.out.name_for(name), Role::Activation)?;
    let page = x.placement().page_size;
    op.circular_buffers(cores, &[("cb_in0", 2 * page), ("cb_out", 2 * page)])?;
    op.compute(|op| {
        run_reduce_scatter(op, x, &inter, &out, d, &groups, args.topology)?;
        signal_own(op, &sem, &cores, args.num_links)
    })?;
    op.finish()?;
    Ok(out)
}

/// `ttnn.experimental.reduce_scatter_minimal_async(x, persistent_output_buffers, dim,
/// multi_device_global_semaphore, barrier_semaphore, cluster_axis, topology, num_links,
/// intermediate_memory_config)`. Without persistent buffers the intermediate is created for
/// the call and dropped after it, as `ReduceScatterMinimalAsyncDeviceOperation::
/// create_output_tensors` creates it in tt-metal; the cached program is keyed as
/// `compute_program_hash` keys it (shapes and attributes, not addresses, not names), and its
/// runtime arguments name the intermediate through [`OpRun::runtime_arg`].
pub fn reduce_scatter_minimal_async(
    mesh: &mut Mesh,
    x: &Tensor,
    dim: i64,
    args: &CclArgs,
    extra: &ReduceScatterAsync<'_>,
) -> SimResult<Tensor> {
    let name = "ttnn.experimental.reduce_scatter_minimal_async";
    let d = norm_dim(name, dim, x.shape().len())?;
    if extra.semaphores.len() != 3 {
        return Err(SimError::invalid(name, format!("Expected 3 semaphores, got {}", extra.semaphores.len())));
    }
    let groups = Groups::new(mesh, args.cluster_axis, name)?;
    let shape = scale_dim(name, x.shape(), d, groups.size(), false)?;
    let ishape = intermediate_shape(x, args.topology);
    let sems: Vec<&Tensor> = extra.semaphores.iter().chain(&extra.barrier).map(|s| &s.tensor).collect();
    let declared: Vec<&Tensor> = extra.persistent.iter().flat_map(|(i, o)| [*i, *o]).collect();
    let mut op = mesh.begin_op(name, args.text(&format!(", dim={dim}")), &[x], &declared, &sems)?;
    let (inter, out) = match extra.persistent {
        Some((i, o)) => {
            if i.shape() != ishape || o.shape() != shape {
                return Err(SimError::invalid(name, "persistent buffers have the wrong shapes"));
            }
            (i.clone(), o.clone())
        }
        None => {
            let mem = extra.intermediate_memory.clone().unwrap_or_else(|| x.spec().memory.clone());
            let ispec = x.spec().clone().with_shape(&ishape).memory(mem);
            let iname = extra.intermediate_name.clone().unwrap_or_else(|| format!("{name}.intermediate"));
            let key = format!(
                "{:?}/{dim}/{:?}/{:?}/{:?}/barrier={}",
                x.spec(),
                ispec.memory,
                args.cluster_axis,
                args.topology,
                extra.barrier.is_some()
            );
            let inter = op.alloc_temp(&ispec, &iname, Role::CclScratch)?;
            let out = op.alloc_output(&args.out.spec(&shape, x), &args.out.name_for(name), Role::Activation)?;
            (op.runtime_arg(&key, &inter), out)
        }
    };
    let grid = op.compute_grid();
    let page = x.placement().page_size;
    op.circular_buffers(grid, &[("cb_in0", 2 * page), ("cb_inter", 2 * page), ("cb_out", 2 * page)])?;
    op.compute(|op| {
        run_reduce_scatter(op, x, &inter, &out, d, &groups, args.topology)?;
        signal_all(op, &extra.semaphores, extra.barrier.as_ref(), args.num_links)
    })?;
    op.finish()?;
    Ok(out)
}
