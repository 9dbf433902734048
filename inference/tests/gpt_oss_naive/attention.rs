//! Eager attention with sinks, literally: mask matrix, `repeat_kv`, a concatenated sink column.

use super::linear_t;
use ttsan_inference::gpt_oss::config::GptOssConfig;
use ttsan_inference::gpt_oss::weights::AttentionWeights;

fn rotate_half(x: &[f64]) -> Vec<f64> {
    let half = x.len() / 2;
    x[half..].iter().map(|v| -v).chain(x[..half].iter().copied()).collect()
}

fn apply_rope(x: &[f64], cos: &[f64], sin: &[f64]) -> Vec<f64> {
    let rotated = rotate_half(x);
    (0..x.len()).map(|j| x[j] * cos[j] + rotated[j] * sin[j]).collect()
}

/// Attention of layer `layer` over the whole sequence `x` (`[S, H]`, normed, positions 0..S),
/// with YaRN tables `cos`/`sin` `[S, d]`.
pub fn attention(
    config: &GptOssConfig,
    layer: usize,
    w: &AttentionWeights,
    x: &[f64],
    cos: &[f64],
    sin: &[f64],
) -> Vec<f64> {
    let (hd, d) = (config.hidden_size, config.head_dim);
    let (nh, nkv) = (config.num_attention_heads, config.num_key_value_heads);
    let s = x.len() / hd;
    let q = linear_t(x, s, &w.q_proj.data, Some(&w.q_bias.data), nh * d);
    let k = linear_t(x, s, &w.k_proj.data, Some(&w.k_bias.data), nkv * d);
    let v = linear_t(x, s, &w.v_proj.data, Some(&w.v_bias.data), nkv * d);
    // [heads][S][d] after view + transpose(1, 2), with RoPE applied to q and k.
    let split = |t: &[f64], heads: usize, rope: bool| -> Vec<Vec<Vec<f64>>> {
        (0..heads)
            .map(|h| {
                (0..s)
                    .map(|i| {
                        let row = &t[i * heads * d + h * d..i * heads * d + (h + 1) * d];
                        if rope {
                            apply_rope(row, &cos[i * d..(i + 1) * d], &sin[i * d..(i + 1) * d])
                        } else {
                            row.to_vec()
                        }
                    })
                    .collect()
            })
            .collect()
    };
    let (q, k, v) = (split(&q, nh, true), split(&k, nkv, true), split(&v, nkv, false));
    // repeat_kv: head h reads kv head h / n_rep.
    let n_rep = nh / nkv;
    let k: Vec<_> = (0..nh).map(|h| k[h / n_rep].clone()).collect();
    let v: Vec<_> = (0..nh).map(|h| v[h / n_rep].clone()).collect();
    let window = config.window(layer);
    let mask = |i: usize, j: usize| -> f64 {
        let causal_ok = j <= i;
        let window_ok = !matches!(window, Some(w) if i - j.min(i) >= w);
        if causal_ok && window_ok {
            0.0
        } else {
            f64::NEG_INFINITY
        }
    };
    let scaling = (d as f64).powf(-0.5);
    let mut out = vec![0.0; s * nh * d];
    for h in 0..nh {
        let sink = f64::from(w.sinks.data[h]);
        for i in 0..s {
            let mut logits: Vec<f64> = (0..s)
                .map(|j| q[h][i].iter().zip(&k[h][j]).map(|(a, b)| a * b).sum::<f64>() * scaling + mask(i, j))
                .collect();
            logits.push(sink);
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
            let total: f64 = exps.iter().sum();
            let probs: Vec<f64> = exps[..s].iter().map(|e| e / total).collect();
            for (j, p) in probs.iter().enumerate() {
                for c in 0..d {
                    out[i * nh * d + h * d + c] += p * v[h][j][c];
                }
            }
        }
    }
    linear_t(&out, s, &w.o_proj.data, Some(&w.o_bias.data), hd)
}
