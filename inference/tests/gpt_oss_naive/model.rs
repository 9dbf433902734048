//! The naive whole-sequence forward pass.

use super::attention::attention;
use super::moe::moe;
use super::yarn::yarn_cos_sin;
use super::{linear_t, rms_norm};
use ttsan_inference::gpt_oss::config::GptOssConfig;
use ttsan_inference::gpt_oss::error::{GptOssError, Result};
use ttsan_inference::gpt_oss::weights::{LayerWeights, ModelWeights};

/// One decoder layer on the residual stream `x` (`[S, H]`, positions 0..S).
pub fn decoder_layer(config: &GptOssConfig, layer: usize, w: &LayerWeights, x: &[f64]) -> Vec<f64> {
    let s = x.len() / config.hidden_size;
    let (cos, sin) = yarn_cos_sin(config, s);
    let eps = config.rms_norm_eps;
    let attn = attention(config, layer, &w.attn, &rms_norm(x, &w.input_norm.data, eps), &cos, &sin);
    let x: Vec<f64> = x.iter().zip(&attn).map(|(a, b)| a + b).collect();
    let mlp = moe(config, w, &rms_norm(&x, &w.post_norm.data, eps));
    x.iter().zip(&mlp).map(|(a, b)| a + b).collect()
}

/// Logits `[S, V]` of `tokens` at positions 0..S, recomputed from scratch.
pub fn forward(weights: &ModelWeights, tokens: &[u32]) -> Result<Vec<f64>> {
    let c = &weights.config;
    let mut x = Vec::with_capacity(tokens.len() * c.hidden_size);
    for &t in tokens {
        let t = t as usize;
        if t >= c.vocab_size {
            return Err(GptOssError::InvalidInput(format!("token id {t} >= vocab_size {}", c.vocab_size)));
        }
        x.extend(weights.embed.data[t * c.hidden_size..(t + 1) * c.hidden_size].iter().map(|&v| f64::from(v)));
    }
    for (l, w) in weights.layers.iter().enumerate() {
        x = decoder_layer(c, l, w, &x);
    }
    let normed = rms_norm(&x, &weights.norm.data, c.rms_norm_eps);
    Ok(linear_t(&normed, tokens.len(), &weights.lm_head.data, None, c.vocab_size))
}
