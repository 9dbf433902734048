//! Host-side tensors: what goes into and comes out of the mesh, and what the CPU kernels
//! compute on.

use super::error::{SimError, SimResult};

/// A dense host tensor of `f32` values in row-major order, or only a shape.
///
/// A shape-only tensor ([`HostTensor::shape_only`]) carries no values: plan mode uploads the
/// full-size model's weights as shapes to a placement-only mesh, which places them and writes
/// nothing, so the model's device code runs unchanged without the host memory its values would
/// need. Every shape operation here keeps a shape-only tensor shape-only.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, or none for a shape-only tensor.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor from values; the length must match the shape.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> SimResult<Self> {
        let expected = shape.iter().product::<usize>();
        if expected != data.len() {
            return Err(SimError::HostShape { shape, expected, got: data.len() });
        }
        Ok(HostTensor { shape, data })
    }

    /// A tensor of `shape` without values.
    pub fn shape_only(shape: &[usize]) -> Self {
        HostTensor { shape: shape.to_vec(), data: Vec::new() }
    }

    /// A tensor from values, or a shape-only tensor when `data` is empty (what a shape-only
    /// weight's host transforms produce); any other length must match the shape.
    pub fn values_or_shape(shape: Vec<usize>, data: Vec<f32>) -> SimResult<Self> {
        match data.is_empty() {
            true => Ok(HostTensor { shape, data }),
            false => Self::new(shape, data),
        }
    }

    /// Whether the tensor is a shape without values (a tensor of no elements is not).
    pub fn is_shape_only(&self) -> bool {
        self.data.is_empty() && self.shape.iter().product::<usize>() > 0
    }

    /// All zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        HostTensor { shape: shape.to_vec(), data: vec![0.0; shape.iter().product()] }
    }

    /// Values from a function of the flat index.
    pub fn from_fn(shape: &[usize], f: impl FnMut(usize) -> f32) -> Self {
        let n = shape.iter().product();
        HostTensor { shape: shape.to_vec(), data: (0..n).map(f).collect() }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Size of the last dimension (1 for a scalar).
    pub fn last_dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Row-major strides of the shape.
    pub fn strides(&self) -> Vec<usize> {
        strides(&self.shape)
    }

    /// Splits into `parts` equal pieces along `dim`.
    pub fn split(&self, dim: usize, parts: usize) -> SimResult<Vec<HostTensor>> {
        let size = *self.shape.get(dim).ok_or_else(|| SimError::invalid("split", format!("no dim {dim}")))?;
        if parts == 0 || size % parts != 0 {
            return Err(SimError::invalid("split", format!("dim {dim} of size {size} does not split into {parts}")));
        }
        let step = size / parts;
        (0..parts).map(|p| self.slice_dim(dim, p * step, (p + 1) * step)).collect()
    }

    /// The elements with index in `[start, end)` along `dim`.
    pub fn slice_dim(&self, dim: usize, start: usize, end: usize) -> SimResult<HostTensor> {
        let size = *self.shape.get(dim).ok_or_else(|| SimError::invalid("slice", format!("no dim {dim}")))?;
        if start > end || end > size {
            return Err(SimError::invalid("slice", format!("range {start}..{end} outside dim {dim} of size {size}")));
        }
        let mut shape = self.shape.clone();
        shape[dim] = end - start;
        if self.is_shape_only() {
            return Ok(HostTensor { shape, data: Vec::new() });
        }
        let outer: usize = self.shape[..dim].iter().product();
        let inner: usize = self.shape[dim + 1..].iter().product();
        let mut data = Vec::with_capacity(outer * (end - start) * inner);
        for o in 0..outer {
            let base = o * size * inner;
            data.extend_from_slice(&self.data[base + start * inner..base + end * inner]);
        }
        Ok(HostTensor { shape, data })
    }

    /// Concatenates tensors along `dim`; all other dims must agree.
    pub fn concat(parts: &[HostTensor], dim: usize) -> SimResult<HostTensor> {
        let first = parts.first().ok_or_else(|| SimError::invalid("concat", "nothing to concatenate"))?;
        if dim >= first.shape.len() {
            return Err(SimError::invalid("concat", format!("no dim {dim} in shape {:?}", first.shape)));
        }
        for p in parts {
            let same = p.shape.len() == first.shape.len()
                && p.shape.iter().zip(&first.shape).enumerate().all(|(i, (a, b))| i == dim || a == b);
            if !same {
                return Err(SimError::invalid("concat", format!("shapes {:?} and {:?} differ", first.shape, p.shape)));
            }
        }
        let outer: usize = first.shape[..dim].iter().product();
        let inner: usize = first.shape[dim + 1..].iter().product();
        let mut shape = first.shape.clone();
        shape[dim] = parts.iter().map(|p| p.shape[dim]).sum();
        if parts.iter().any(HostTensor::is_shape_only) {
            return Ok(HostTensor { shape, data: Vec::new() });
        }
        let mut data = Vec::with_capacity(shape.iter().product());
        for o in 0..outer {
            for p in parts {
                let n = p.shape[dim] * inner;
                data.extend_from_slice(&p.data[o * n..(o + 1) * n]);
            }
        }
        Ok(HostTensor { shape, data })
    }

    /// A copy with every value passed through `f`.
    pub fn map(&self, f: impl Fn(f32) -> f32) -> HostTensor {
        HostTensor { shape: self.shape.clone(), data: self.data.iter().map(|&v| f(v)).collect() }
    }
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Normalises a possibly negative dim (`-1` = last) against a rank.
pub fn norm_dim(op: &str, dim: i64, rank: usize) -> SimResult<usize> {
    let r = rank as i64;
    let d = if dim < 0 { dim + r } else { dim };
    if d < 0 || d >= r {
        return Err(SimError::invalid(op, format!("dim {dim} is out of range for rank {rank}")));
    }
    Ok(d as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_concat_are_inverse() {
        let t = HostTensor::from_fn(&[2, 3, 4], |i| i as f32);
        for dim in 0..3 {
            let n = t.shape[dim];
            let parts = t.split(dim, n).unwrap();
            assert_eq!(HostTensor::concat(&parts, dim).unwrap(), t);
        }
        assert!(t.split(1, 2).is_err());
        assert_eq!(t.slice_dim(2, 1, 3).unwrap().data[..2], [1.0, 2.0]);
    }

    #[test]
    fn shape_only_tensors_keep_their_shapes_through_splits_and_concats() {
        let t = HostTensor::shape_only(&[2, 6, 4]);
        assert!(t.is_shape_only() && !HostTensor::zeros(&[2, 0]).is_shape_only());
        let parts = t.split(1, 3).unwrap();
        assert!(parts.iter().all(|p| p.shape == [2, 2, 4] && p.is_shape_only()));
        let back = HostTensor::concat(&parts, 1).unwrap();
        assert_eq!(back, t);
        assert!(HostTensor::values_or_shape(vec![2, 2], vec![1.0]).is_err());
        assert!(HostTensor::values_or_shape(vec![2, 2], vec![]).unwrap().is_shape_only());
    }
}
