//! `ttnn.topk`: the k largest values along the last dim and their indices.

use super::{args_of, place_default_cbs, Out};
use crate::dtype::DType;
use crate::error::{SimError, SimResult};
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::Tensor;
use ttsan_events::Role;

/// Top-k of every row of the last dim: values sorted descending (ties: lower index first)
/// and their indices.
pub(crate) fn topk_host(t: &HostTensor, k: usize) -> (HostTensor, HostTensor) {
    let w = t.last_dim();
    let mut shape = t.shape.clone();
    if let Some(l) = shape.last_mut() {
        *l = k;
    }
    let (mut vals, mut idxs) = (Vec::new(), Vec::new());
    for row in t.data.chunks(w.max(1)) {
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for &i in order.iter().take(k) {
            vals.push(row[i]);
            idxs.push(i as f32);
        }
    }
    (HostTensor { shape: shape.clone(), data: vals }, HostTensor { shape, data: idxs })
}

/// `ttnn.topk(x, k, dim=-1, largest=True, sorted=True)` -> (values, indices as uint32).
pub fn topk(mesh: &mut Mesh, x: &Tensor, k: usize, out: &Out) -> SimResult<(Tensor, Tensor)> {
    let name = "ttnn.topk";
    let w = x.shape().last().copied().unwrap_or(0);
    if k == 0 || k > w {
        return Err(SimError::invalid(name, format!("k={k} must be in 1..={w}")));
    }
    let mut shape = x.shape().to_vec();
    if let Some(l) = shape.last_mut() {
        *l = k;
    }
    let vspec = out.spec(&shape, x);
    let ispec = vspec.clone().with_dtype(DType::U32);
    let base = out.name_for(name);
    let mut op = mesh.begin_op(name, args_of(&[("k", k.to_string())]), &[x], &[], &[])?;
    let values = op.alloc_output(&vspec, &format!("{base}.values"), Role::Activation)?;
    let indices = op.alloc_output(&ispec, &format!("{base}.indices"), Role::Activation)?;
    place_default_cbs(&mut op, &[x], &vspec)?;
    op.compute(|op| {
        op.run(|chip| {
            let (v, i) = topk_host(&chip.read(x), k);
            chip.write(&values, &v)?;
            chip.write(&indices, &i)
        })?;
        Ok(())
    })?;
    op.finish()?;
    Ok((values, indices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_largest_first() {
        let t = HostTensor::new(vec![1, 4], vec![1.0, 5.0, 3.0, 5.0]).unwrap();
        let (v, i) = topk_host(&t, 3);
        assert_eq!(v.data, vec![5.0, 5.0, 3.0]);
        assert_eq!(i.data, vec![1.0, 3.0, 2.0]);
    }
}
