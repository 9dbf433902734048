//! A second, deliberately different formulation of HF's GPT-OSS forward, used only to check
//! [`ttsan_inference::gpt_oss::reference`].
//!
//! It follows the pseudo-code of the HF modeling file literally and shares no code with the
//! reference: f64 throughout, YaRN derived again from the paper's formulas, RoPE in the
//! `rotate_half` / `cat(freqs, freqs)` form, an explicit additive `-inf` mask matrix, `repeat_kv`
//! materialized, the sink appended as a real column and dropped after the softmax, top-k by
//! repeated arg-max, a scattered dense `[T, E]` routing matrix, and every expert evaluated on
//! every token (HF's eval path) weighted by that matrix. It always recomputes the whole
//! sequence (no cache), which is what decode-with-cache is checked against.

mod attention;
mod model;
mod moe;
mod yarn;

pub use attention::attention;
pub use model::{decoder_layer, forward};
pub use moe::{experts_dense, router_scores};
pub use yarn::yarn_cos_sin;

/// `[rows, cols]` row-major f64 matrix product helpers used across the naive modules.
pub(crate) fn linear_t(x: &[f64], rows: usize, w: &[f32], b: Option<&[f32]>, out_dim: usize) -> Vec<f64> {
    let in_dim = x.len() / rows.max(1);
    let mut y = vec![0.0f64; rows * out_dim];
    for r in 0..rows {
        for o in 0..out_dim {
            let mut acc = b.map_or(0.0, |b| f64::from(b[o]));
            for i in 0..in_dim {
                acc += x[r * in_dim + i] * f64::from(w[o * in_dim + i]);
            }
            y[r * out_dim + o] = acc;
        }
    }
    y
}

/// RMSNorm in f64.
pub(crate) fn rms_norm(x: &[f64], w: &[f32], eps: f64) -> Vec<f64> {
    let h = w.len().max(1);
    let mut y = vec![0.0; x.len()];
    for r in 0..x.len() / h {
        let row = &x[r * h..(r + 1) * h];
        let variance = row.iter().map(|v| v.powi(2)).sum::<f64>() / h as f64;
        let scale = 1.0 / (variance + eps).sqrt();
        for i in 0..h {
            y[r * h + i] = f64::from(w[i]) * (row[i] * scale);
        }
    }
    y
}
