//! Reductions over one dim (`ttnn.sum`, `ttnn.max`, `ttnn.mean`), keeping the dim.

use super::{args_of, local_op, Out};
use crate::error::SimResult;
use crate::host::{norm_dim, HostTensor};
use crate::mesh::Mesh;
use crate::tensor::Tensor;

/// Which reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// `ttnn.sum`.
    Sum,
    /// `ttnn.max`.
    Max,
    /// `ttnn.mean`.
    Mean,
}

impl ReduceOp {
    fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "ttnn.sum",
            ReduceOp::Max => "ttnn.max",
            ReduceOp::Mean => "ttnn.mean",
        }
    }
}

/// Reduces `t` over `dim`, keeping it with size 1.
pub(crate) fn reduce_host(op: ReduceOp, t: &HostTensor, dim: usize) -> HostTensor {
    let size = t.shape[dim];
    let outer: usize = t.shape[..dim].iter().product();
    let inner: usize = t.shape[dim + 1..].iter().product();
    let mut shape = t.shape.clone();
    shape[dim] = 1;
    let mut data = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let vals = (0..size).map(|d| t.data[(o * size + d) * inner + i]);
            data.push(match op {
                ReduceOp::Sum => vals.sum(),
                ReduceOp::Max => vals.fold(f32::NEG_INFINITY, f32::max),
                ReduceOp::Mean => vals.sum::<f32>() / size.max(1) as f32,
            });
        }
    }
    HostTensor { shape, data }
}

/// `ttnn.sum/max/mean(x, dim, keepdim=True)`.
pub fn reduce(mesh: &mut Mesh, op: ReduceOp, x: &Tensor, dim: i64, out: &Out) -> SimResult<Tensor> {
    let d = norm_dim(op.name(), dim, x.shape().len())?;
    let mut shape = x.shape().to_vec();
    shape[d] = 1;
    let spec = out.spec(&shape, x);
    local_op(mesh, op.name(), args_of(&[("dim", dim.to_string())]), &[x], spec, out, |ins| {
        Ok(reduce_host(op, &ins[0], d))
    })
}
