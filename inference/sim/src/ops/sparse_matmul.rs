//! `ttnn.sparse_matmul`: per-expert products computed only where a sparsity mask says so.

use super::matmul::{matmul_host, MatmulArgs};
use super::{args_of, local_op, Out};
use crate::error::{SimError, SimResult};
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::Tensor;

/// `ttnn.sparse_matmul(a, b, sparsity)`.
///
/// `a` is `[A, 1, M, K]` (A token blocks), `b` is `[1, E, K, N]` (E experts), `sparsity` is
/// `[1, 1, A, E]`; the output `[A, E, M, N]` holds `a[i] @ b[e]` where `sparsity[i, e] != 0`
/// and zeros where the block was skipped.
pub fn sparse_matmul(mesh: &mut Mesh, a: &Tensor, b: &Tensor, sparsity: &Tensor, out: &Out) -> SimResult<Tensor> {
    let name = "ttnn.sparse_matmul";
    let (sa, sb, ss) = (a.shape(), b.shape(), sparsity.shape());
    if sa.len() != 4 || sb.len() != 4 || ss.len() != 4 || sa[1] != 1 || sb[0] != 1 || sa[3] != sb[2] {
        return Err(SimError::invalid(name, format!("expected a [A,1,M,K], b [1,E,K,N], got {sa:?} and {sb:?}")));
    }
    let (blocks, m, experts, n) = (sa[0], sa[2], sb[1], sb[3]);
    if ss[2] * ss[3] != blocks * experts {
        return Err(SimError::invalid(
            name,
            format!("sparsity {ss:?} does not cover {blocks} blocks x {experts} experts"),
        ));
    }
    let spec = out.spec(&[blocks, experts, m, n], a);
    let text = args_of(&[("a", format!("{sa:?}")), ("b", format!("{sb:?}")), ("sparsity", format!("{ss:?}"))]);
    local_op(mesh, name, text, &[a, b, sparsity], spec, out, |ins| {
        let (a, b, mask) = (&ins[0], &ins[1], &ins[2]);
        let k = a.shape[3];
        let mut data = vec![0f32; blocks * experts * m * n];
        for i in 0..blocks {
            let ai = HostTensor { shape: vec![m, k], data: a.data[i * m * k..(i + 1) * m * k].to_vec() };
            for e in 0..experts {
                if mask.data[i * experts + e] == 0.0 {
                    continue;
                }
                let be = HostTensor { shape: vec![k, n], data: b.data[e * k * n..(e + 1) * k * n].to_vec() };
                let y = matmul_host(name, &ai, &be, MatmulArgs::default())?;
                let at = (i * experts + e) * m * n;
                data[at..at + m * n].copy_from_slice(&y.data);
            }
        }
        HostTensor::new(vec![blocks, experts, m, n], data)
    })
}
