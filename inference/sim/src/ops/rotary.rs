//! `ttnn.experimental.rotary_embedding`: rotary position embedding, half-split form.

use super::eltwise::broadcast_shape;
use super::{local_op, Out};
use crate::error::{SimError, SimResult};
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::Tensor;

/// `x * cos + rotate_half(x) * sin`, where `rotate_half([x1, x2]) = [-x2, x1]` over the last
/// dim; `cos` and `sin` broadcast against `x` (typically `[1, 1, S, D]`).
pub(crate) fn rotary_host(x: &HostTensor, cos: &HostTensor, sin: &HostTensor) -> SimResult<HostTensor> {
    let d = x.last_dim();
    if d % 2 != 0 {
        return Err(SimError::invalid("ttnn.experimental.rotary_embedding", "head dim must be even"));
    }
    let half = d / 2;
    let mut rot = x.clone();
    for (row, src) in rot.data.chunks_mut(d).zip(x.data.chunks(d)) {
        for j in 0..half {
            row[j] = -src[j + half];
            row[j + half] = src[j];
        }
    }
    use super::eltwise::{binary_host, BinaryOp};
    let a = binary_host(BinaryOp::Multiply, x, cos)?;
    let b = binary_host(BinaryOp::Multiply, &rot, sin)?;
    binary_host(BinaryOp::Add, &a, &b)
}

/// `ttnn.experimental.rotary_embedding(x, cos, sin)`.
pub fn rotary_embedding(mesh: &mut Mesh, x: &Tensor, cos: &Tensor, sin: &Tensor, out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.experimental.rotary_embedding";
    if broadcast_shape(x.shape(), cos.shape()).as_deref() != Some(x.shape()) || cos.shape() != sin.shape() {
        return Err(SimError::invalid(
            name,
            format!("cos/sin {:?} do not broadcast to x {:?}", cos.shape(), x.shape()),
        ));
    }
    let spec = out.spec(x.shape(), x);
    local_op(mesh, name, format!("x={:?}", x.shape()), &[x, cos, sin], spec, out, |ins| {
        rotary_host(&ins[0], &ins[1], &ins[2])
    })
}
