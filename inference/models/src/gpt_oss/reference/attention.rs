//! Self-attention with sinks, GQA, YaRN RoPE and an optional sliding window (HF eager path).

use super::cache::LayerCache;
use super::ops::{dot, linear};
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::error::{GptOssError, Result};
use crate::gpt_oss::rope::Rope;
use crate::gpt_oss::weights::AttentionWeights;

/// The attention module's output.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionOutput {
    /// `[T, H]`, after o_proj and its bias.
    pub out: Vec<f32>,
    /// `[T, nh]`: the probability the sink column took for each query and head (what the
    /// dropped column held, i.e. `1 - sum_j p_j`).
    pub sink_mass: Vec<f32>,
}

/// Runs attention of layer `layer` on the normed rows `x` (`[T, H]`), the tokens sitting at
/// positions `cache.len() ..`; appends their keys and values to `cache`.
pub fn attention(
    config: &GptOssConfig,
    layer: usize,
    w: &AttentionWeights,
    rope: &Rope,
    x: &[f32],
    cache: &mut LayerCache,
) -> Result<AttentionOutput> {
    let (h, d, nh) = (config.hidden_size, config.head_dim, config.num_attention_heads);
    let kv_width = config.kv_width();
    if x.is_empty() || x.len() % h != 0 {
        return Err(GptOssError::InvalidInput(format!(
            "attention input of {} values is not whole rows of {h}",
            x.len()
        )));
    }
    if cache.width != kv_width {
        return Err(GptOssError::InvalidInput(format!("cache width {} for kv width {kv_width}", cache.width)));
    }
    let tokens = x.len() / h;
    let start = cache.len();
    let mut q = linear(x, &w.q_proj.data, &w.q_bias.data, h);
    let mut k = linear(x, &w.k_proj.data, &w.k_bias.data, h);
    let v = linear(x, &w.v_proj.data, &w.v_bias.data, h);
    let (mut cos, mut sin) = (vec![0.0; d / 2], vec![0.0; d / 2]);
    for t in 0..tokens {
        rope.cos_sin(start + t, &mut cos, &mut sin);
        for head in q[t * nh * d..(t + 1) * nh * d].chunks_exact_mut(d) {
            Rope::rotate(head, &cos, &sin);
        }
        for head in k[t * kv_width..(t + 1) * kv_width].chunks_exact_mut(d) {
            Rope::rotate(head, &cos, &sin);
        }
    }
    cache.keys.extend_from_slice(&k);
    cache.values.extend_from_slice(&v);

    let scale = config.attention_scale();
    let group = config.group_size();
    let window = config.window(layer);
    let mut heads_out = vec![0.0f32; tokens * nh * d];
    let mut sink_mass = vec![0.0f32; tokens * nh];
    let mut scores = Vec::new();
    for t in 0..tokens {
        let pos = start + t;
        // The window counts the query itself: keys pos+1-w ..= pos.
        let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
        for head in 0..nh {
            let kv = head / group;
            let qh = &q[(t * nh + head) * d..(t * nh + head + 1) * d];
            scores.clear();
            scores.extend(
                (first..=pos).map(|j| dot(qh, &cache.keys[j * kv_width + kv * d..j * kv_width + (kv + 1) * d]) * scale),
            );
            let sink = w.sinks.data[head];
            let max = scores.iter().fold(sink, |m, &s| m.max(s));
            let mut denom = (sink - max).exp();
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                denom += *s;
            }
            sink_mass[t * nh + head] = (sink - max).exp() / denom;
            let out = &mut heads_out[(t * nh + head) * d..(t * nh + head + 1) * d];
            for (j, p) in (first..=pos).zip(&scores) {
                let p = p / denom;
                let vj = &cache.values[j * kv_width + kv * d..j * kv_width + (kv + 1) * d];
                for (o, &vv) in out.iter_mut().zip(vj) {
                    *o += p * vv;
                }
            }
        }
    }
    let out = linear(&heads_out, &w.o_proj.data, &w.o_bias.data, nh * d);
    Ok(AttentionOutput { out, sink_mass })
}
