//! One decoder layer: norm, attention, residual, norm, router + experts, residual.

use super::attention::attention;
use super::cache::LayerCache;
use super::experts::experts;
use super::ops::rms_norm;
use super::router::{route, Routing};
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::error::Result;
use crate::gpt_oss::rope::Rope;
use crate::gpt_oss::weights::LayerWeights;

/// The MLP block (router then experts) on normed rows `x`; returns its output and the routing.
pub fn mlp(config: &GptOssConfig, w: &LayerWeights, x: &[f32]) -> Result<(Vec<f32>, Routing)> {
    let routing = route(&w.router, x, config.hidden_size, config.num_experts_per_tok);
    let out = experts(config, &w.experts, x, &routing)?;
    Ok((out, routing))
}

/// Decoder layer `layer` on the residual stream `x` (`[T, H]`, updated in place).
pub fn decoder_layer(
    config: &GptOssConfig,
    layer: usize,
    w: &LayerWeights,
    rope: &Rope,
    x: &mut [f32],
    cache: &mut LayerCache,
) -> Result<()> {
    let eps = config.rms_norm_eps as f32;
    let normed = rms_norm(x, &w.input_norm.data, eps);
    let attn = attention(config, layer, &w.attn, rope, &normed, cache)?;
    for (r, a) in x.iter_mut().zip(&attn.out) {
        *r += a;
    }
    let normed = rms_norm(x, &w.post_norm.data, eps);
    let (moe, _) = mlp(config, w, &normed)?;
    for (r, m) in x.iter_mut().zip(&moe) {
        *r += m;
    }
    Ok(())
}
