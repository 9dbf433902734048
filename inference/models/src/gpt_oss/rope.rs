//! YaRN rotary embeddings in HF's half-split form (`_compute_yarn_parameters` +
//! `_apply_rotary_emb`).

use super::config::GptOssConfig;

/// Inverse frequencies and the cos/sin multiplier of a config's RoPE.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    /// `head_dim / 2` inverse frequencies.
    pub inv_freq: Vec<f32>,
    /// YaRN's `attention_factor` (1 for plain RoPE); multiplies both cos and sin.
    pub attention_factor: f32,
}

fn yarn_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

impl Rope {
    /// The RoPE of `config` (assumed validated: a base > 1 and an even `head_dim`).
    pub fn new(config: &GptOssConfig) -> Self {
        let dim = config.head_dim as f64;
        let half = config.head_dim / 2;
        let base = config.rope_theta().unwrap_or(150000.0);
        // torch computes base ** (arange / dim) in f32.
        let pos_freqs: Vec<f32> = (0..half).map(|i| (base as f32).powf((2 * i) as f32 / dim as f32)).collect();
        let rope = &config.rope_scaling;
        if rope.rope_type != "yarn" {
            return Rope { inv_freq: pos_freqs.iter().map(|p| 1.0 / p).collect(), attention_factor: 1.0 };
        }
        let factor = rope.factor.unwrap_or(1.0);
        let attention_factor = match (rope.attention_factor, rope.mscale, rope.mscale_all_dim) {
            (Some(a), _, _) => a,
            (None, Some(m), Some(m_all)) if m != 0.0 && m_all != 0.0 => {
                yarn_mscale(factor, m) / yarn_mscale(factor, m_all)
            }
            _ => yarn_mscale(factor, 1.0),
        };
        let beta_fast = rope.beta_fast.unwrap_or(32.0);
        let beta_slow = rope.beta_slow.unwrap_or(1.0);
        let original_max = rope.original_max_position_embeddings.unwrap_or(config.max_position_embeddings) as f64;
        let correction_dim =
            |rotations: f64| dim * (original_max / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * base.ln());
        let (mut low, mut high) = (correction_dim(beta_fast), correction_dim(beta_slow));
        if rope.truncate.unwrap_or(true) {
            low = low.floor();
            high = high.ceil();
        }
        let low = low.max(0.0);
        let high = high.min(dim - 1.0);
        let high = if low == high { high + 0.001 } else { high };
        let inv_freq = pos_freqs
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let ramp = ((i as f32 - low as f32) / (high as f32 - low as f32)).clamp(0.0, 1.0);
                let extrapolation_factor = 1.0 - ramp;
                let interpolation = 1.0 / (factor as f32 * p);
                let extrapolation = 1.0 / p;
                interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor
            })
            .collect();
        Rope { inv_freq, attention_factor: attention_factor as f32 }
    }

    /// Writes cos and sin of `position` (each `head_dim / 2` long), already scaled by the
    /// attention factor.
    pub fn cos_sin(&self, position: usize, cos: &mut [f32], sin: &mut [f32]) {
        for ((c, s), &f) in cos.iter_mut().zip(sin.iter_mut()).zip(&self.inv_freq) {
            let angle = position as f32 * f;
            *c = angle.cos() * self.attention_factor;
            *s = angle.sin() * self.attention_factor;
        }
    }

    /// Rotates one head vector in place: halves `(a, b)` become `(a cos - b sin, b cos + a sin)`.
    pub fn rotate(head: &mut [f32], cos: &[f32], sin: &[f32]) {
        let half = head.len() / 2;
        let (a, b) = head.split_at_mut(half);
        for i in 0..half.min(cos.len()) {
            let (x, y) = (a[i], b[i]);
            a[i] = x * cos[i] - y * sin[i];
            b[i] = y * cos[i] + x * sin[i];
        }
    }
}
