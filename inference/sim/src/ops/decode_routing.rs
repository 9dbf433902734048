//! Routing ops of the low-latency (decode) experts: `ttnn.scatter`, which turns the router's
//! top-k into dense per-expert weights, and `ttnn.moe_routing_remap`, which keeps the experts
//! of this chip's expert-parallel rank.

use super::{args_of, local_op, place_default_cbs, Out};
use crate::error::{SimError, SimResult};
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::Tensor;
use ttsan_events::Role;

/// `ttnn.scatter(input, dim=-1, index, src)`: a copy of `input` with
/// `out[..., index[..., j]] = src[..., j]` along the last dim (`index` uint32, the shape of
/// `src`; the other dims of all three agree).
pub fn scatter(mesh: &mut Mesh, input: &Tensor, index: &Tensor, src: &Tensor, out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.scatter";
    let rank = input.shape().len();
    let same_outer = |t: &Tensor| t.shape().len() == rank && t.shape()[..rank - 1] == input.shape()[..rank - 1];
    let empty = |t: &Tensor| t.shape().last().is_none_or(|&w| w == 0);
    if rank == 0 || empty(input) || empty(index) || index.shape() != src.shape() || !same_outer(index) {
        return Err(SimError::invalid(
            name,
            format!("input {:?}, index {:?}, src {:?} do not agree", input.shape(), index.shape(), src.shape()),
        ));
    }
    let spec = out.spec(input.shape(), input);
    local_op(mesh, name, args_of(&[("dim", "-1".to_string())]), &[input, index, src], spec, out, |ins| {
        let (w, k) = (ins[0].last_dim(), ins[1].last_dim());
        let mut o = ins[0].clone();
        for (row, (idx, vals)) in o.data.chunks_mut(w).zip(ins[1].data.chunks(k).zip(ins[2].data.chunks(k))) {
            for (&i, &v) in idx.iter().zip(vals) {
                let slot = row
                    .get_mut(i as usize)
                    .ok_or_else(|| SimError::invalid(name, format!("index {i} outside a row of {w}")))?;
                *slot = v;
            }
        }
        Ok(o)
    })
}

/// `ttnn.moe_routing_remap(routing, non_zero_weight_size, expert_parallel_size,
/// cluster_axis)`: dense routing weights `[..., E]` with only the experts of this chip's
/// expert-parallel rank kept (rank = the chip's index along `cluster_axis`; rank r owns the
/// `E / ep` experts `r * E/ep ..`), zeros elsewhere. Every rank then runs its share of the
/// experts and an all-reduce over `cluster_axis` adds them up. Each user must have at most
/// `non_zero_weight_size` non-zero weights.
pub fn moe_routing_remap(
    mesh: &mut Mesh,
    routing: &Tensor,
    non_zero_weight_size: usize,
    expert_parallel_size: usize,
    cluster_axis: usize,
    out: &Out,
) -> SimResult<Tensor> {
    let name = "ttnn.moe_routing_remap";
    let (rows, cols) = (mesh.desc().rows as usize, mesh.desc().cols as usize);
    let ranks = match cluster_axis {
        0 => rows,
        1 => cols,
        a => return Err(SimError::invalid(name, format!("cluster_axis {a} does not exist (0 or 1)"))),
    };
    let e = routing.shape().last().copied().unwrap_or(0);
    if e == 0 || ranks == 0 || expert_parallel_size != ranks || e % ranks != 0 {
        return Err(SimError::invalid(
            name,
            format!("{e} experts over expert_parallel_size {expert_parallel_size} on an axis of {ranks} chips"),
        ));
    }
    let share = e / ranks;
    let spec = out.spec(routing.shape(), routing);
    let args = args_of(&[
        ("non_zero_weight_size", non_zero_weight_size.to_string()),
        ("expert_parallel_size", expert_parallel_size.to_string()),
        ("cluster_axis", cluster_axis.to_string()),
    ]);
    let mut op = mesh.begin_op(name, args, &[routing], &[], &[])?;
    let output = op.alloc_output(&spec, &out.name_for(name), out.role.unwrap_or(Role::Activation))?;
    place_default_cbs(&mut op, &[routing], &spec)?;
    op.compute(|op| {
        op.run(|chip| {
            let d = chip.device() as usize;
            let rank = if cluster_axis == 0 { d / cols } else { d % cols };
            let mut r: HostTensor = chip.read(routing);
            for row in r.data.chunks_mut(e) {
                if row.iter().filter(|&&v| v != 0.0).count() > non_zero_weight_size {
                    return Err(SimError::invalid(name, format!("more than {non_zero_weight_size} experts selected")));
                }
                for (i, v) in row.iter_mut().enumerate() {
                    if i / share != rank {
                        *v = 0.0;
                    }
                }
            }
            chip.write(&output, &r)
        })?;
        Ok(())
    })?;
    op.finish()?;
    Ok(output)
}
