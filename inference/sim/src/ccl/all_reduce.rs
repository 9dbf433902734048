//! `ttnn.all_reduce`: the synchronous all-reduce with internally created semaphores.

use super::{cached_semaphore, signal_own, CclArgs, Groups};
use crate::error::SimResult;
use crate::mesh::Mesh;
use crate::tensor::Tensor;
use ttsan_events::Role;

/// `ttnn.all_reduce(x, cluster_axis=..., topology=..., num_links=..., memory_config=...)`:
/// every chip gets the sum over its group. The semaphores and the reduce intermediate are the
/// op's own (op cache), as in tt-metal since the semaphores were internalised.
pub fn all_reduce(mesh: &mut Mesh, x: &Tensor, args: &CclArgs) -> SimResult<Tensor> {
    let name = "ttnn.all_reduce";
    let groups = Groups::new(mesh, args.cluster_axis, name)?;
    // The cached intermediate is shaped like the input, so the key carries the whole spec.
    let key = format!("{:?}/{:?}/{:?}", x.spec(), args.cluster_axis, args.topology);
    let mut op = mesh.begin_op(name, args.text(""), &[x], &[], &[])?;
    let cores = op.compute_grid();
    let sem = cached_semaphore(&mut op, &format!("sem/{key}"), &format!("{name}.semaphore"))?;
    let inter = op.cached_scratch(&key, x.spec(), &format!("{name}.intermediate"), Role::CclScratch)?;
    let out = op.alloc_output(&args.out.spec(x.shape(), x), &args.out.name_for(name), Role::Activation)?;
    let page = x.placement().page_size;
    op.circular_buffers(cores, &[("cb_in0", 2 * page), ("cb_out", 2 * page)])?;
    op.compute(|op| {
        let inputs = op.read(x)?;
        let sums: Vec<_> = (0..inputs.len()).map(|d| groups.sum(d, &inputs)).collect();
        op.write(&inter, sums.clone())?;
        op.write(&out, sums)?;
        signal_own(op, &sem, &cores, args.num_links)
    })?;
    op.finish()?;
    Ok(out)
}
