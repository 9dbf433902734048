//! `ttnn.all_gather` and `ttnn.experimental.all_gather_async`.

use super::{scale_dim, signal_all, CclArgs, GlobalSemaphore, Groups};
use crate::error::{SimError, SimResult};
use crate::host::{norm_dim, HostTensor};
use crate::mesh::Mesh;
use crate::op::OpRun;
use crate::tensor::Tensor;
use ttsan_events::Role;

/// Extra arguments of `ttnn.experimental.all_gather_async`.
#[derive(Debug, Clone, Default)]
pub struct AllGatherAsync<'a> {
    /// `multi_device_global_semaphore` (GPT-OSS passes a ping-pong pair).
    pub semaphores: Vec<GlobalSemaphore>,
    /// `barrier_semaphore`.
    pub barrier: Option<GlobalSemaphore>,
    /// `persistent_output_buffer`: written instead of allocating an output.
    pub persistent_output: Option<&'a Tensor>,
}

/// The gathered values of every chip: the group's inputs concatenated along `dim`.
fn gather(groups: &Groups, inputs: &[HostTensor], dim: usize) -> SimResult<Vec<HostTensor>> {
    (0..inputs.len())
        .map(|d| {
            let parts: Vec<HostTensor> = groups.members(d).iter().map(|&m| inputs[m].clone()).collect();
            HostTensor::concat(&parts, dim)
        })
        .collect()
}

fn run_gather(op: &mut OpRun<'_>, x: &Tensor, out: &Tensor, dim: usize, groups: &Groups) -> SimResult<()> {
    let inputs = op.read(x)?;
    let gathered = gather(groups, &inputs, dim)?;
    op.write(out, gathered)
}

/// `ttnn.all_gather(x, dim, cluster_axis=...)`.
pub fn all_gather(mesh: &mut Mesh, x: &Tensor, dim: i64, args: &CclArgs) -> SimResult<Tensor> {
    let name = "ttnn.all_gather";
    let d = norm_dim(name, dim, x.shape().len())?;
    let groups = Groups::new(mesh, args.cluster_axis, name)?;
    let shape = scale_dim(name, x.shape(), d, groups.size(), true)?;
    let spec = args.out.spec(&shape, x);
    let mut op = mesh.begin_op(name, args.text(&format!(", dim={dim}")), &[x], &[], &[])?;
    let out = op.alloc_output(&spec, &args.out.name_for(name), args.out.role.unwrap_or(Role::Activation))?;
    let grid = op.compute_grid();
    let page = x.placement().page_size;
    op.circular_buffers(grid, &[("cb_in0", 2 * page), ("cb_out", 2 * page)])?;
    op.compute(|op| run_gather(op, x, &out, d, &groups))?;
    op.finish()?;
    Ok(out)
}

/// `ttnn.experimental.all_gather_async(x, dim, multi_device_global_semaphore, barrier_semaphore,
/// persistent_output_buffer, cluster_axis, topology, num_links)`.
pub fn all_gather_async(
    mesh: &mut Mesh,
    x: &Tensor,
    dim: i64,
    args: &CclArgs,
    extra: &AllGatherAsync<'_>,
) -> SimResult<Tensor> {
    let name = "ttnn.experimental.all_gather_async";
    let d = norm_dim(name, dim, x.shape().len())?;
    if extra.semaphores.is_empty() {
        return Err(SimError::invalid(name, "multi_device_global_semaphore is required"));
    }
    let groups = Groups::new(mesh, args.cluster_axis, name)?;
    let shape = scale_dim(name, x.shape(), d, groups.size(), true)?;
    if let Some(p) = extra.persistent_output {
        if p.shape() != shape {
            return Err(SimError::invalid(name, format!("persistent output {:?} is not {shape:?}", p.shape())));
        }
    }
    let sems: Vec<&Tensor> = extra.semaphores.iter().chain(&extra.barrier).map(|s| &s.tensor).collect();
    let persistent: Vec<&Tensor> = extra.persistent_output.into_iter().collect();
    let mut op = mesh.begin_op(name, args.text(&format!(", dim={dim}")), &[x], &persistent, &sems)?;
    let out = match extra.persistent_output {
        Some(p) => p.clone(),
        None => {
            let role = args.out.role.unwrap_or(Role::Activation);
            op.alloc_output(&args.out.spec(&shape, x), &args.out.name_for(name), role)?
        }
    };
    let grid = op.compute_grid();
    let page = x.placement().page_size;
    op.circular_buffers(grid, &[("cb_in0", 2 * page), ("cb_out", 2 * page)])?;
    op.compute(|op| {
        run_gather(op, x, &out, d, &groups)?;
        signal_all(op, &extra.semaphores, extra.barrier.as_ref(), args.num_links)
    })?;
    op.finish()?;
    Ok(out)
}
