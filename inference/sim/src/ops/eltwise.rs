//! Element-wise ops with numpy broadcasting.

use super::{args_of, local_op, Out};
use crate::error::{SimError, SimResult};
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::Tensor;

/// A binary element-wise op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `ttnn.add`.
    Add,
    /// `ttnn.subtract`.
    Subtract,
    /// `ttnn.multiply`.
    Multiply,
    /// `ttnn.maximum`.
    Maximum,
}

impl BinaryOp {
    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "ttnn.add",
            BinaryOp::Subtract => "ttnn.subtract",
            BinaryOp::Multiply => "ttnn.multiply",
            BinaryOp::Maximum => "ttnn.maximum",
        }
    }

    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Subtract => a - b,
            BinaryOp::Multiply => a * b,
            BinaryOp::Maximum => a.max(b),
        }
    }
}

/// A unary element-wise op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    /// `ttnn.silu`: x * sigmoid(x).
    Silu,
    /// `ttnn.relu`.
    Relu,
    /// `ttnn.sigmoid`.
    Sigmoid,
    /// `ttnn.exp`.
    Exp,
    /// `ttnn.neg`.
    Neg,
    /// `ttnn.clamp(min, max)`.
    Clamp(f32, f32),
    /// `ttnn.multiply` by a scalar.
    Scale(f32),
    /// `ttnn.add` of a scalar.
    Offset(f32),
    /// `ttnn.typecast` (the conversion happens when storing in the output dtype).
    Typecast,
}

impl UnaryOp {
    fn name(self) -> &'static str {
        match self {
            UnaryOp::Silu => "ttnn.silu",
            UnaryOp::Relu => "ttnn.relu",
            UnaryOp::Sigmoid => "ttnn.sigmoid",
            UnaryOp::Exp => "ttnn.exp",
            UnaryOp::Neg => "ttnn.neg",
            UnaryOp::Clamp(..) => "ttnn.clamp",
            UnaryOp::Scale(_) => "ttnn.multiply",
            UnaryOp::Offset(_) => "ttnn.add",
            UnaryOp::Typecast => "ttnn.typecast",
        }
    }

    /// The op applied to one value.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::Silu => x / (1.0 + (-x).exp()),
            UnaryOp::Relu => x.max(0.0),
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Neg => -x,
            UnaryOp::Clamp(lo, hi) => x.clamp(lo, hi),
            UnaryOp::Scale(s) => x * s,
            UnaryOp::Offset(o) => x + o,
            UnaryOp::Typecast => x,
        }
    }
}

/// The broadcast shape of two shapes (numpy rules), if they are compatible.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let get = |s: &[usize], i: usize| if i + s.len() >= n { s[i + s.len() - n] } else { 1 };
    (0..n)
        .map(|i| match (get(a, i), get(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// `t`'s strides aligned to an output of `rank` dims, 0 where `t` broadcasts (missing or size-1
/// dims), so that an output position maps to `t`'s element by a dot product.
fn broadcast_strides(t: &HostTensor, rank: usize) -> Vec<usize> {
    let st = t.strides();
    let off = rank - t.shape.len();
    (0..rank).map(|i| if i < off || t.shape[i - off] == 1 { 0 } else { st[i - off] }).collect()
}

/// `a op b` with broadcasting, on the CPU.
pub(crate) fn binary_host(op: BinaryOp, a: &HostTensor, b: &HostTensor) -> SimResult<HostTensor> {
    let shape = broadcast_shape(&a.shape, &b.shape).ok_or_else(|| {
        SimError::invalid(op.name(), format!("shapes {:?} and {:?} do not broadcast", a.shape, b.shape))
    })?;
    if a.shape == b.shape {
        return Ok(HostTensor { shape, data: a.data.iter().zip(&b.data).map(|(&x, &y)| op.apply(x, y)).collect() });
    }
    let rank = shape.len();
    let (ea, eb) = (broadcast_strides(a, rank), broadcast_strides(b, rank));
    let n: usize = shape.iter().product();
    let mut data = Vec::with_capacity(n);
    if n == 0 {
        return Ok(HostTensor { shape, data });
    }
    // Walk the output in order with an odometer over the outer dims and a strided inner loop:
    // no division per element (this op runs on every token of every layer).
    let last = shape[rank - 1];
    let (sa_last, sb_last) = (ea[rank - 1], eb[rank - 1]);
    let mut idx = vec![0usize; rank - 1];
    let (mut base_a, mut base_b) = (0usize, 0usize);
    for _ in 0..n / last {
        let (mut pa, mut pb) = (base_a, base_b);
        for _ in 0..last {
            data.push(op.apply(a.data[pa], b.data[pb]));
            pa += sa_last;
            pb += sb_last;
        }
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            base_a += ea[d];
            base_b += eb[d];
            if idx[d] < shape[d] {
                break;
            }
            base_a -= ea[d] * shape[d];
            base_b -= eb[d] * shape[d];
            idx[d] = 0;
        }
    }
    Ok(HostTensor { shape, data })
}

/// `x op other` where `other` only broadcasts into `x` (a bias, a norm weight): the result
/// keeps `x`'s shape even when `other` has more leading unit dims.
pub(crate) fn binary_into(op: BinaryOp, x: &HostTensor, other: &HostTensor) -> SimResult<HostTensor> {
    let mut y = binary_host(op, x, other)?;
    if y.len() != x.len() {
        return Err(SimError::invalid(op.name(), format!("{:?} does not broadcast into {:?}", other.shape, x.shape)));
    }
    y.shape = x.shape.clone();
    Ok(y)
}

/// A binary element-wise op with broadcasting (`ttnn.add`, `ttnn.multiply`, ...).
pub fn binary(mesh: &mut Mesh, op: BinaryOp, a: &Tensor, b: &Tensor, out: &Out) -> SimResult<Tensor> {
    let shape = broadcast_shape(a.shape(), b.shape()).ok_or_else(|| {
        SimError::invalid(op.name(), format!("shapes {:?} and {:?} do not broadcast", a.shape(), b.shape()))
    })?;
    let spec = out.spec(&shape, a);
    let args = args_of(&[("a", format!("{:?}", a.shape())), ("b", format!("{:?}", b.shape()))]);
    local_op(mesh, op.name(), args, &[a, b], spec, out, |ins| binary_host(op, &ins[0], &ins[1]))
}

/// `ttnn.add(a, b)`.
pub fn add(mesh: &mut Mesh, a: &Tensor, b: &Tensor, out: &Out) -> SimResult<Tensor> {
    binary(mesh, BinaryOp::Add, a, b, out)
}

/// `ttnn.subtract(a, b)`.
pub fn subtract(mesh: &mut Mesh, a: &Tensor, b: &Tensor, out: &Out) -> SimResult<Tensor> {
    binary(mesh, BinaryOp::Subtract, a, b, out)
}

/// `ttnn.multiply(a, b)`.
pub fn multiply(mesh: &mut Mesh, a: &Tensor, b: &Tensor, out: &Out) -> SimResult<Tensor> {
    binary(mesh, BinaryOp::Multiply, a, b, out)
}

/// A unary element-wise op.
pub fn unary(mesh: &mut Mesh, op: UnaryOp, x: &Tensor, out: &Out) -> SimResult<Tensor> {
    let spec = out.spec(x.shape(), x);
    local_op(mesh, op.name(), format!("{op:?}"), &[x], spec, out, |ins| Ok(ins[0].map(|v| op.apply(v))))
}

/// `ttnn.silu(x)`.
pub fn silu(mesh: &mut Mesh, x: &Tensor, out: &Out) -> SimResult<Tensor> {
    unary(mesh, UnaryOp::Silu, x, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shape(&[2, 1, 3], &[4, 1]), Some(vec![2, 4, 3]));
        assert_eq!(broadcast_shape(&[2, 3], &[4, 3]), None);
        let a = HostTensor::from_fn(&[2, 3], |i| i as f32);
        let b = HostTensor::new(vec![3], vec![10.0, 20.0, 30.0]).unwrap();
        let c = binary_host(BinaryOp::Add, &a, &b).unwrap();
        assert_eq!(c.data, vec![10.0, 21.0, 32.0, 13.0, 24.0, 35.0]);
    }
}
