//! `ttnn.rms_norm` over the last dim.

use super::eltwise::{binary_into, BinaryOp};
use super::{args_of, local_op, Out};
use crate::error::SimResult;
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::Tensor;

/// `x / sqrt(mean(x^2) + eps)` over the last dim, times `weight` (broadcast) if given.
pub(crate) fn rms_norm_host(x: &HostTensor, weight: Option<&HostTensor>, eps: f32) -> SimResult<HostTensor> {
    let w = x.last_dim().max(1);
    let mut out = x.clone();
    for row in out.data.chunks_mut(w) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / w as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        row.iter_mut().for_each(|v| *v *= inv);
    }
    match weight {
        // The weight may come as [.., H/32, 32] row-major pages; only its values matter.
        Some(wt) if wt.len() == w => {
            binary_into(BinaryOp::Multiply, &out, &HostTensor { shape: vec![w], data: wt.data.clone() })
        }
        Some(wt) => binary_into(BinaryOp::Multiply, &out, wt),
        None => Ok(out),
    }
}

/// `ttnn.rms_norm(x, weight=weight, epsilon=eps)`.
pub fn rms_norm(mesh: &mut Mesh, x: &Tensor, weight: Option<&Tensor>, eps: f32, out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.rms_norm";
    let spec = out.spec(x.shape(), x);
    let mut inputs = vec![x];
    inputs.extend(weight);
    local_op(mesh, name, args_of(&[("epsilon", eps.to_string())]), &inputs, spec, out, |ins| {
        rms_norm_host(&ins[0], ins.get(1), eps)
    })
}
