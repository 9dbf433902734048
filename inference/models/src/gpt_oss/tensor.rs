//! A dense row-major f32 tensor: the unit the checkpoint code and the reference exchange.

/// A row-major f32 array with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, last dimension contiguous.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor { shape: shape.to_vec(), data: vec![0.0; shape.iter().product()] }
    }

    /// A tensor of `shape` without values: plan mode's full-size weights, which the device
    /// code uploads as shapes to a placement-only mesh.
    pub fn shape_only(shape: &[usize]) -> Self {
        Tensor { shape: shape.to_vec(), data: Vec::new() }
    }

    /// Wraps `data`; `None` if its length does not match `shape`.
    pub fn new(shape: &[usize], data: Vec<f32>) -> Option<Self> {
        (data.len() == shape.iter().product::<usize>()).then(|| Tensor { shape: shape.to_vec(), data })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The contiguous slice of outermost index `i` (e.g. one row of a matrix, one expert of a
    /// stacked `[E, ...]` tensor).
    pub fn outer(&self, i: usize) -> &[f32] {
        let stride = self.shape.iter().skip(1).product::<usize>();
        &self.data[i * stride..(i + 1) * stride]
    }
}
