//! `ttnn.matmul` / `ttnn.linear`: batched dense matrix products.

use super::eltwise::{binary_into, BinaryOp};
use super::{args_of, local_op, Out};
use crate::error::{SimError, SimResult};
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::Tensor;

/// Options of `ttnn.matmul`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatmulArgs {
    /// Use the transpose of `a`'s last two dims.
    pub transpose_a: bool,
    /// Use the transpose of `b`'s last two dims.
    pub transpose_b: bool,
}

fn mk(t: &HostTensor, transpose: bool) -> (usize, usize, usize) {
    let n = t.shape.len();
    let (r, c) = (t.shape[n - 2], t.shape[n - 1]);
    let batch = t.shape[..n - 2].iter().product();
    if transpose {
        (batch, c, r)
    } else {
        (batch, r, c)
    }
}

/// `a @ b` on the CPU: `b`'s batch is 1 (broadcast) or equal to `a`'s; f32 accumulation.
pub(crate) fn matmul_host(op: &str, a: &HostTensor, b: &HostTensor, args: MatmulArgs) -> SimResult<HostTensor> {
    if a.shape.len() < 2 || b.shape.len() < 2 {
        return Err(SimError::invalid(op, "matmul needs tensors of rank 2 or more"));
    }
    let (ba, m, k) = mk(a, args.transpose_a);
    let (bb, k2, n) = mk(b, args.transpose_b);
    if k != k2 || !(bb == 1 || bb == ba) {
        return Err(SimError::invalid(op, format!("cannot multiply {:?} by {:?}", a.shape, b.shape)));
    }
    let (ra, ca) = (a.shape[a.shape.len() - 2], a.shape[a.shape.len() - 1]);
    let (rb, cb) = (b.shape[b.shape.len() - 2], b.shape[b.shape.len() - 1]);
    let at = |bi: usize, i: usize, kk: usize| {
        let base = bi * ra * ca;
        if args.transpose_a {
            a.data[base + kk * ca + i]
        } else {
            a.data[base + i * ca + kk]
        }
    };
    // B as contiguous [batch][k][n] rows, transposed once here if needed, so the inner loop
    // below is a plain multiply-add over two slices that the compiler vectorises.
    let b_batches = if bb == 1 { 1 } else { ba };
    let b_rows: std::borrow::Cow<'_, [f32]> = if args.transpose_b {
        let mut t = vec![0f32; b_batches * k * n];
        for bi in 0..b_batches {
            for j in 0..n {
                for kk in 0..k {
                    t[(bi * k + kk) * n + j] = b.data[bi * rb * cb + j * cb + kk];
                }
            }
        }
        std::borrow::Cow::Owned(t)
    } else {
        std::borrow::Cow::Borrowed(&b.data[..])
    };
    let b_row = |bi: usize, kk: usize| {
        let base = if bb == 1 { 0 } else { bi * k * n };
        &b_rows[base + kk * n..base + (kk + 1) * n]
    };
    let mut data = vec![0f32; ba * m * n];
    for bi in 0..ba {
        for i in 0..m {
            for kk in 0..k {
                let x = at(bi, i, kk);
                if x == 0.0 {
                    continue;
                }
                let row = &mut data[(bi * m + i) * n..(bi * m + i + 1) * n];
                for (o, &y) in row.iter_mut().zip(b_row(bi, kk)) {
                    *o += x * y;
                }
            }
        }
    }
    let mut shape = a.shape[..a.shape.len() - 2].to_vec();
    shape.extend([m, n]);
    Ok(HostTensor { shape, data })
}

fn out_shape(op: &str, a: &Tensor, b: &Tensor, args: MatmulArgs) -> SimResult<Vec<usize>> {
    let (sa, sb) = (a.shape(), b.shape());
    if sa.len() < 2 || sb.len() < 2 {
        return Err(SimError::invalid(op, "matmul needs tensors of rank 2 or more"));
    }
    let m = if args.transpose_a { sa[sa.len() - 1] } else { sa[sa.len() - 2] };
    let n = if args.transpose_b { sb[sb.len() - 2] } else { sb[sb.len() - 1] };
    let mut shape = sa[..sa.len() - 2].to_vec();
    shape.extend([m, n]);
    Ok(shape)
}

/// `ttnn.matmul(a, b)`.
pub fn matmul(mesh: &mut Mesh, a: &Tensor, b: &Tensor, args: MatmulArgs, out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.matmul";
    let spec = out.spec(&out_shape(name, a, b, args)?, a);
    let text =
        args_of(&[("a", format!("{:?}", a.shape())), ("b", format!("{:?}", b.shape())), ("args", format!("{args:?}"))]);
    local_op(mesh, name, text, &[a, b], spec, out, |ins| matmul_host(name, &ins[0], &ins[1], args))
}

/// `ttnn.linear(a, b, bias=bias)`: a matmul with an optional broadcast bias.
pub fn linear(
    mesh: &mut Mesh,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    args: MatmulArgs,
    out: &Out,
) -> SimResult<Tensor> {
    let name = "ttnn.linear";
    let spec = out.spec(&out_shape(name, a, b, args)?, a);
    let mut inputs = vec![a, b];
    inputs.extend(bias);
    let text = args_of(&[
        ("a", format!("{:?}", a.shape())),
        ("b", format!("{:?}", b.shape())),
        ("bias", bias.is_some().to_string()),
    ]);
    local_op(mesh, name, text, &inputs, spec, out, |ins| {
        let y = matmul_host(name, &ins[0], &ins[1], args)?;
        match ins.get(2) {
            Some(bias) => binary_into(BinaryOp::Add, &y, bias),
            None => Ok(y),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_products_and_transposes() {
        let a = HostTensor::from_fn(&[2, 3], |i| i as f32);
        let b = HostTensor::from_fn(&[3, 2], |i| i as f32);
        let c = matmul_host("t", &a, &b, MatmulArgs::default()).unwrap();
        assert_eq!(c.data, vec![10.0, 13.0, 28.0, 40.0]);
        let bt = HostTensor::new(vec![2, 3], vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0]).unwrap();
        let c2 = matmul_host("t", &a, &bt, MatmulArgs { transpose_b: true, ..Default::default() }).unwrap();
        assert_eq!(c2, c);
        assert!(matmul_host("t", &a, &a, MatmulArgs::default()).is_err());
    }
}
