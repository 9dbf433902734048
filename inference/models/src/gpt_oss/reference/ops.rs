//! Dense building blocks shared by the reference modules.

/// RMSNorm over rows of width `weight.len()`: `w * x / sqrt(mean(x^2) + eps)`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let width = weight.len().max(1);
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(width) {
        let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / width as f32;
        let inv = 1.0 / (mean_sq + eps).sqrt();
        out.extend(row.iter().zip(weight).map(|(v, w)| w * (v * inv)));
    }
    out
}

/// `x @ weight.T + bias` for `nn.Linear` weights `[out, in]`; `x` holds whole rows of width `in`.
pub fn linear(x: &[f32], weight: &[f32], bias: &[f32], in_width: usize) -> Vec<f32> {
    let out_width = bias.len();
    let mut out = Vec::with_capacity(x.len() / in_width.max(1) * out_width);
    for row in x.chunks_exact(in_width.max(1)) {
        for (w_row, b) in weight.chunks_exact(in_width.max(1)).zip(bias) {
            out.push(dot(row, w_row) + b);
        }
    }
    out
}

/// Dot product.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `out += x @ w` for an input-major `w` `[x.len(), out.len()]` (the experts' storage order).
pub(super) fn add_vec_mat(x: &[f32], w: &[f32], out: &mut [f32]) {
    let width = out.len();
    for (&xi, w_row) in x.iter().zip(w.chunks_exact(width.max(1))) {
        for (o, &wv) in out.iter_mut().zip(w_row) {
            *o += xi * wv;
        }
    }
}
