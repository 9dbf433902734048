//! Head split and head concat around attention, in the decode and prefill forms:
//! `ttnn.experimental.nlp_create_qkv_heads_decode` / `nlp_concat_heads_decode` and
//! `ttnn.experimental.nlp_create_qkv_heads` / `nlp_concat_heads`.
//!
//! The fused QKV row of a chip is `[Q heads | K heads | V heads]`, `head_dim` values each.

use super::{args_of, local_op, place_default_cbs, Out};
use crate::error::{SimError, SimResult};
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::{Tensor, TensorSpec};
use ttsan_events::Role;

/// Heads of a fused QKV projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QkvHeads {
    /// Query heads on the chip.
    pub num_heads: usize,
    /// Key/value heads on the chip.
    pub num_kv_heads: usize,
}

impl QkvHeads {
    fn head_dim(&self, op: &str, width: usize) -> SimResult<usize> {
        let heads = self.num_heads + 2 * self.num_kv_heads;
        if self.num_heads == 0 || self.num_kv_heads == 0 || width == 0 || width % heads != 0 {
            return Err(SimError::invalid(
                op,
                format!("width {width} is not {} + 2 x {} heads", self.num_heads, self.num_kv_heads),
            ));
        }
        Ok(width / heads)
    }
}

/// Runs an op with three outputs (q, k, v) computed by `kernel` from the chip's input.
fn three_outputs(
    mesh: &mut Mesh,
    name: &str,
    args: String,
    x: &Tensor,
    specs: [TensorSpec; 3],
    out: &Out,
    kernel: impl Fn(&HostTensor) -> SimResult<[HostTensor; 3]> + Sync,
) -> SimResult<(Tensor, Tensor, Tensor)> {
    let base = out.name_for(name);
    let mut op = mesh.begin_op(name, args, &[x], &[], &[])?;
    let role = out.role.unwrap_or(Role::Activation);
    let q = op.alloc_output(&specs[0], &format!("{base}.q"), role)?;
    let k = op.alloc_output(&specs[1], &format!("{base}.k"), role)?;
    let v = op.alloc_output(&specs[2], &format!("{base}.v"), role)?;
    place_default_cbs(&mut op, &[x], &specs[0])?;
    op.compute(|op| {
        op.run(|chip| {
            let [hq, hk, hv] = kernel(&chip.read(x))?;
            chip.write(&q, &hq)?;
            chip.write(&k, &hk)?;
            chip.write(&v, &hv)
        })?;
        Ok(())
    })?;
    op.finish()?;
    Ok((q, k, v))
}

/// Head `first + h` of every row of `x` (rows of `width`), as `[rows, count, d]` values.
fn gather_heads(x: &HostTensor, first: usize, count: usize, d: usize) -> Vec<f32> {
    let width = x.last_dim();
    let mut out = Vec::with_capacity(x.len() / width.max(1) * count * d);
    for row in x.data.chunks_exact(width) {
        out.extend_from_slice(&row[first * d..(first + count) * d]);
    }
    out
}

/// `ttnn.experimental.nlp_create_qkv_heads_decode(xqkv, num_heads, num_kv_heads)`.
///
/// `xqkv` is `[1, 1, B, w]` (one row per user); returns q `[1, B, nh, d]`, k and v
/// `[1, B, nkv, d]`: one user per page row, which is what lets the demo height-shard them with
/// one user per core (pass that memory config in `out`).
pub fn nlp_create_qkv_heads_decode(
    mesh: &mut Mesh,
    xqkv: &Tensor,
    heads: QkvHeads,
    out: &Out,
) -> SimResult<(Tensor, Tensor, Tensor)> {
    let name = "ttnn.experimental.nlp_create_qkv_heads_decode";
    let &[1, 1, b, w] = xqkv.shape() else {
        return Err(SimError::invalid(name, format!("input {:?} is not [1, 1, B, w]", xqkv.shape())));
    };
    let d = heads.head_dim(name, w)?;
    let (nh, nkv) = (heads.num_heads, heads.num_kv_heads);
    let specs = [out.spec(&[1, b, nh, d], xqkv), out.spec(&[1, b, nkv, d], xqkv), out.spec(&[1, b, nkv, d], xqkv)];
    let args = args_of(&[("num_heads", nh.to_string()), ("num_kv_heads", nkv.to_string())]);
    three_outputs(mesh, name, args, xqkv, specs, out, |x| {
        Ok([
            HostTensor::new(vec![1, b, nh, d], gather_heads(x, 0, nh, d))?,
            HostTensor::new(vec![1, b, nkv, d], gather_heads(x, nh, nkv, d))?,
            HostTensor::new(vec![1, b, nkv, d], gather_heads(x, nh + nkv, nkv, d))?,
        ])
    })
}

/// `[B, S, heads, d]` values to `[B, heads, S, d]`.
fn seq_major_to_head_major(values: &[f32], b: usize, s: usize, heads: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for bi in 0..b {
        for si in 0..s {
            for h in 0..heads {
                let src = ((bi * s + si) * heads + h) * d;
                let dst = ((bi * heads + h) * s + si) * d;
                out[dst..dst + d].copy_from_slice(&values[src..src + d]);
            }
        }
    }
    out
}

/// `ttnn.experimental.nlp_create_qkv_heads(xqkv, num_heads, num_kv_heads,
/// transpose_k_heads=False)`.
///
/// `xqkv` is `[B, 1, S, w]`; returns q `[B, nh, S, d]`, k and v `[B, nkv, S, d]`.
pub fn nlp_create_qkv_heads(
    mesh: &mut Mesh,
    xqkv: &Tensor,
    heads: QkvHeads,
    out: &Out,
) -> SimResult<(Tensor, Tensor, Tensor)> {
    let name = "ttnn.experimental.nlp_create_qkv_heads";
    let &[b, 1, s, w] = xqkv.shape() else {
        return Err(SimError::invalid(name, format!("input {:?} is not [B, 1, S, w]", xqkv.shape())));
    };
    let d = heads.head_dim(name, w)?;
    let (nh, nkv) = (heads.num_heads, heads.num_kv_heads);
    let specs = [out.spec(&[b, nh, s, d], xqkv), out.spec(&[b, nkv, s, d], xqkv), out.spec(&[b, nkv, s, d], xqkv)];
    let args = args_of(&[
        ("num_heads", nh.to_string()),
        ("num_kv_heads", nkv.to_string()),
        ("transpose_k_heads", "false".to_string()),
    ]);
    three_outputs(mesh, name, args, xqkv, specs, out, |x| {
        let part = |first: usize, count: usize| {
            let v = seq_major_to_head_major(&gather_heads(x, first, count, d), b, s, count, d);
            HostTensor::new(vec![b, count, s, d], v)
        };
        Ok([part(0, nh)?, part(nh, nkv)?, part(nh + nkv, nkv)?])
    })
}

/// `ttnn.experimental.nlp_concat_heads_decode(x, num_heads)`: `[1, B, heads, d]` (heads may
/// be padded beyond `num_heads`) to `[1, 1, B, num_heads * d]`.
pub fn nlp_concat_heads_decode(mesh: &mut Mesh, x: &Tensor, num_heads: usize, out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.experimental.nlp_concat_heads_decode";
    let &[1, b, padded, d] = x.shape() else {
        return Err(SimError::invalid(name, format!("input {:?} is not [1, B, heads, d]", x.shape())));
    };
    if num_heads == 0 || num_heads > padded || d == 0 {
        return Err(SimError::invalid(name, format!("num_heads {num_heads} of {padded} heads")));
    }
    let spec = out.spec(&[1, 1, b, num_heads * d], x);
    local_op(mesh, name, args_of(&[("num_heads", num_heads.to_string())]), &[x], spec, out, |ins| {
        let mut data = Vec::with_capacity(b * num_heads * d);
        for user in ins[0].data.chunks_exact(padded * d) {
            data.extend_from_slice(&user[..num_heads * d]);
        }
        HostTensor::new(vec![1, 1, b, num_heads * d], data)
    })
}

/// `ttnn.experimental.nlp_concat_heads(x)`: `[B, heads, S, d]` to `[B, 1, S, heads * d]`.
pub fn nlp_concat_heads(mesh: &mut Mesh, x: &Tensor, out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.experimental.nlp_concat_heads";
    let &[b, nh, s, d] = x.shape() else {
        return Err(SimError::invalid(name, format!("input {:?} is not [B, heads, S, d]", x.shape())));
    };
    if nh == 0 || d == 0 {
        return Err(SimError::invalid(name, format!("input {:?} has no heads", x.shape())));
    }
    let spec = out.spec(&[b, 1, s, nh * d], x);
    local_op(mesh, name, args_of(&[("input", format!("{:?}", x.shape()))]), &[x], spec, out, |ins| {
        let src = &ins[0].data;
        let mut data = vec![0.0; src.len()];
        for bi in 0..b {
            for h in 0..nh {
                for si in 0..s {
                    let from = ((bi * nh + h) * s + si) * d;
                    let to = ((bi * s + si) * nh + h) * d;
                    data[to..to + d].copy_from_slice(&src[from..from + d]);
                }
            }
        }
        HostTensor::new(vec![b, 1, s, nh * d], data)
    })
}
