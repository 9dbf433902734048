//! Host-to-mesh helpers every model's device code places its weights with.

use ttsan_events::Role;
use ttsan_sim::{DType, Distribution, HostTensor, Mesh, SimResult, Tensor, TensorSpec};

/// A `[1, 1, rows, cols]` host tensor from row-major values (shape-only when there are none:
/// a shape-only weight's transforms yield no values).
pub fn host4(rows: usize, cols: usize, data: Vec<f32>) -> SimResult<HostTensor> {
    HostTensor::values_or_shape(vec![1, 1, rows, cols], data)
}

/// The transpose of an `nn.Linear` weight `[out, in]` as `[in, out]` values (what `x @ W` needs);
/// no values for a shape-only weight.
pub fn transpose(w: &[f32], out_dim: usize, in_dim: usize) -> Vec<f32> {
    if w.is_empty() {
        return Vec::new();
    }
    let mut t = vec![0.0; w.len()];
    for o in 0..out_dim {
        for i in 0..in_dim {
            t[i * out_dim + o] = w[o * in_dim + i];
        }
    }
    t
}

/// Uploads a bf16 tiled DRAM tensor, split over the chips by `dist`.
pub fn put(mesh: &mut Mesh, host: &HostTensor, dist: &Distribution, name: &str, role: Role) -> SimResult<Tensor> {
    let pieces = mesh.distribute(host, dist)?;
    let shape = pieces.first().map_or_else(|| host.shape.clone(), |p| p.shape.clone());
    mesh.from_host_per_device(pieces, &TensorSpec::new(&shape, DType::Bf16), name, role)
}

/// Uploads a row-parallel layer's bias: `bias` on the chips of TP rank 0 and zeros on the
/// others, so the TP all-reduce that follows adds it exactly once. A shape-only bias (no
/// values) uploads shapes.
pub fn rank0_bias(mesh: &mut Mesh, tp: usize, shape: &[usize], bias: &[f32], name: &str) -> SimResult<Tensor> {
    // Row-major device order: the TP rank is the mesh column.
    let pieces = (0..mesh.num_devices())
        .map(|dev| {
            let data = if dev % tp.max(1) == 0 { bias.to_vec() } else { vec![0.0; bias.len()] };
            HostTensor::values_or_shape(shape.to_vec(), data)
        })
        .collect::<SimResult<Vec<_>>>()?;
    mesh.from_host_per_device(pieces, &TensorSpec::new(shape, DType::Bf16), name, Role::Weight)
}
