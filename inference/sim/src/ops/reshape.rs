//! `ttnn.reshape`, `ttnn.permute` and `ttnn.transpose`.

use super::{args_of, local_op, Out};
use crate::error::{SimError, SimResult};
use crate::host::{norm_dim, strides, HostTensor};
use crate::mesh::Mesh;
use crate::tensor::Tensor;

/// `ttnn.reshape(x, shape)`: same values in row-major order, new shape (re-paged, since a tile
/// layout changes with the shape).
pub fn reshape(mesh: &mut Mesh, x: &Tensor, shape: &[usize], out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.reshape";
    if shape.iter().product::<usize>() != x.shape().iter().product::<usize>() {
        return Err(SimError::invalid(name, format!("cannot reshape {:?} to {shape:?}", x.shape())));
    }
    let spec = out.spec(shape, x);
    local_op(mesh, name, args_of(&[("shape", format!("{shape:?}"))]), &[x], spec, out, |ins| {
        HostTensor::new(shape.to_vec(), ins[0].data.clone())
    })
}

/// Dims of `t` reordered: output dim `i` is input dim `perm[i]`.
pub(crate) fn permute_host(t: &HostTensor, perm: &[usize]) -> HostTensor {
    let shape: Vec<usize> = perm.iter().map(|&p| t.shape[p]).collect();
    let (src, dst) = (t.strides(), strides(&shape));
    let mut data = vec![0f32; t.len()];
    for (flat, v) in data.iter_mut().enumerate() {
        let mut rem = flat;
        let mut at = 0;
        for (i, s) in dst.iter().enumerate() {
            at += (rem / s) * src[perm[i]];
            rem %= s;
        }
        *v = t.data[at];
    }
    HostTensor { shape, data }
}

/// `ttnn.permute(x, perm)`.
pub fn permute(mesh: &mut Mesh, x: &Tensor, perm: &[usize], out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.permute";
    let rank = x.shape().len();
    let mut seen = perm.to_vec();
    seen.sort_unstable();
    if seen != (0..rank).collect::<Vec<_>>() {
        return Err(SimError::invalid(name, format!("{perm:?} is not a permutation of {rank} dims")));
    }
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let spec = out.spec(&shape, x);
    local_op(mesh, name, args_of(&[("dims", format!("{perm:?}"))]), &[x], spec, out, |ins| {
        Ok(permute_host(&ins[0], perm))
    })
}

/// `ttnn.transpose(x, a, b)`: swaps two dims.
pub fn transpose(mesh: &mut Mesh, x: &Tensor, a: i64, b: i64, out: &Out) -> SimResult<Tensor> {
    let rank = x.shape().len();
    let (a, b) = (norm_dim("ttnn.transpose", a, rank)?, norm_dim("ttnn.transpose", b, rank)?);
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.swap(a, b);
    permute(mesh, x, &perm, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_moves_elements() {
        let t = HostTensor::from_fn(&[2, 3], |i| i as f32);
        let p = permute_host(&t, &[1, 0]);
        assert_eq!(p.shape, vec![3, 2]);
        assert_eq!(p.data, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
