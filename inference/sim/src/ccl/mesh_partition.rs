//! `ttnn.mesh_partition`: the inverse of `all_gather`. No data crosses a link: each chip keeps
//! its own share of a tensor that every chip of the group holds whole.

use super::{scale_dim, Groups};
use crate::error::SimResult;
use crate::host::norm_dim;
use crate::mesh::Mesh;
use crate::ops::{args_of, place_default_cbs, Out};
use crate::tensor::Tensor;
use ttsan_events::Role;

/// `ttnn.mesh_partition(x, dim, cluster_axis, memory_config)`: the chip at position `p` of its
/// group along `cluster_axis` keeps part `p` of `x` split evenly along `dim` (the group size
/// must divide it). `cluster_axis = None` splits over the whole mesh in device order.
pub fn mesh_partition(
    mesh: &mut Mesh,
    x: &Tensor,
    dim: i64,
    cluster_axis: Option<usize>,
    out: &Out,
) -> SimResult<Tensor> {
    let name = "ttnn.mesh_partition";
    let d = norm_dim(name, dim, x.shape().len())?;
    let groups = Groups::new(mesh, cluster_axis, name)?;
    let shape = scale_dim(name, x.shape(), d, groups.size(), false)?;
    let part = shape[d];
    let spec = out.spec(&shape, x);
    let args = args_of(&[("dim", dim.to_string()), ("cluster_axis", format!("{cluster_axis:?}"))]);
    let mut op = mesh.begin_op(name, args, &[x], &[], &[])?;
    let output = op.alloc_output(&spec, &out.name_for(name), out.role.unwrap_or(Role::Activation))?;
    place_default_cbs(&mut op, &[x], &spec)?;
    op.compute(|op| {
        op.run(|chip| {
            let p = groups.of[chip.device() as usize].1;
            let whole = chip.read(x);
            chip.write(&output, &whole.slice_dim(d, p * part, (p + 1) * part)?)
        })?;
        Ok(())
    })?;
    op.finish()?;
    Ok(output)
}
