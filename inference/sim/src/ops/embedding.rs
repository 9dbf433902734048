//! `ttnn.embedding`: rows of a weight table picked by token ids.

use super::{local_op, Out};
use crate::error::{SimError, SimResult};
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::Tensor;

/// `ttnn.embedding(ids, weight)`: `ids` of any shape (uint32 values), `weight` `[.., V, H]`;
/// the output has shape `ids.shape + [H]`. Out-of-range ids are an error.
pub fn embedding(mesh: &mut Mesh, ids: &Tensor, weight: &Tensor, out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.embedding";
    let ws = weight.shape();
    if ws.len() < 2 {
        return Err(SimError::invalid(name, "weight needs rank 2 or more"));
    }
    let (vocab, hidden) = (ws[ws.len() - 2], ws[ws.len() - 1]);
    let mut shape = ids.shape().to_vec();
    shape.push(hidden);
    let spec = out.spec(&shape, weight);
    local_op(mesh, name, format!("vocab={vocab}, hidden={hidden}"), &[ids, weight], spec, out, |ins| {
        let (idx, w) = (&ins[0], &ins[1]);
        let mut data = Vec::with_capacity(idx.len() * hidden);
        for &i in &idx.data {
            let row = i as usize;
            if row >= vocab {
                return Err(SimError::invalid(name, format!("token id {i} outside vocabulary of {vocab}")));
            }
            data.extend_from_slice(&w.data[row * hidden..(row + 1) * hidden]);
        }
        HostTensor::new(shape.clone(), data)
    })
}
