//! `ttnn.slice` and `ttnn.concat`.

use super::{args_of, local_op, Out};
use crate::error::{SimError, SimResult};
use crate::host::{norm_dim, HostTensor};
use crate::mesh::Mesh;
use crate::tensor::Tensor;

/// `ttnn.slice(x, starts, ends)` with unit steps.
pub fn slice(mesh: &mut Mesh, x: &Tensor, starts: &[usize], ends: &[usize], out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.slice";
    let rank = x.shape().len();
    if starts.len() != rank || ends.len() != rank {
        return Err(SimError::invalid(name, format!("starts/ends need {rank} entries")));
    }
    let shape: Vec<usize> = starts.iter().zip(ends).map(|(s, e)| e.saturating_sub(*s)).collect();
    if starts.iter().zip(ends).zip(x.shape()).any(|((s, e), d)| s >= e || e > d) {
        return Err(SimError::invalid(name, format!("slice {starts:?}..{ends:?} does not fit {:?}", x.shape())));
    }
    let spec = out.spec(&shape, x);
    let args = args_of(&[("starts", format!("{starts:?}")), ("ends", format!("{ends:?}"))]);
    local_op(mesh, name, args, &[x], spec, out, |ins| {
        let mut t = ins[0].clone();
        for d in 0..rank {
            t = t.slice_dim(d, starts[d], ends[d])?;
        }
        Ok(t)
    })
}

/// `ttnn.concat(tensors, dim)`.
pub fn concat(mesh: &mut Mesh, tensors: &[&Tensor], dim: i64, out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.concat";
    let first = tensors.first().ok_or_else(|| SimError::invalid(name, "nothing to concatenate"))?;
    let d = norm_dim(name, dim, first.shape().len())?;
    let mut shape = first.shape().to_vec();
    shape[d] = tensors.iter().map(|t| t.shape().get(d).copied().unwrap_or(0)).sum();
    let spec = out.spec(&shape, first);
    local_op(mesh, name, args_of(&[("dim", dim.to_string())]), tensors, spec, out, |ins| HostTensor::concat(ins, d))
}
