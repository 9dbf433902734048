//! `ttnn.softmax` over one dim.

use super::{args_of, local_op, Out};
use crate::error::SimResult;
use crate::host::{norm_dim, HostTensor};
use crate::mesh::Mesh;
use crate::tensor::Tensor;

/// Softmax of `t` over `dim`, max-subtracted for stability.
pub(crate) fn softmax_host(t: &HostTensor, dim: usize) -> HostTensor {
    let size = t.shape[dim];
    let outer: usize = t.shape[..dim].iter().product();
    let inner: usize = t.shape[dim + 1..].iter().product();
    let mut out = t.clone();
    for o in 0..outer {
        for i in 0..inner {
            let at = |d: usize| (o * size + d) * inner + i;
            let max = (0..size).map(|d| t.data[at(d)]).fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = (0..size).map(|d| (t.data[at(d)] - max).exp()).sum();
            for d in 0..size {
                out.data[at(d)] = (t.data[at(d)] - max).exp() / sum;
            }
        }
    }
    out
}

/// `ttnn.softmax(x, dim)`.
pub fn softmax(mesh: &mut Mesh, x: &Tensor, dim: i64, out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.softmax";
    let d = norm_dim(name, dim, x.shape().len())?;
    let spec = out.spec(x.shape(), x);
    local_op(mesh, name, args_of(&[("dim", dim.to_string())]), &[x], spec, out, |ins| Ok(softmax_host(&ins[0], d)))
}
