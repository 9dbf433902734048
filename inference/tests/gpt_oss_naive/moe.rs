//! Router and experts as HF's eval path computes them: a scattered dense routing matrix and
//! every expert applied to every token.

use super::linear_t;
use ttsan_inference::gpt_oss::config::GptOssConfig;
use ttsan_inference::gpt_oss::weights::{ExpertWeights, LayerWeights, RouterWeights};

/// The dense `[T, E]` router scores: softmax over the top-k logits scattered into zeros.
pub fn router_scores(config: &GptOssConfig, w: &RouterWeights, x: &[f64]) -> Vec<f64> {
    let e = config.num_local_experts;
    let t = x.len() / config.hidden_size;
    let logits = linear_t(x, t, &w.weight.data, Some(&w.bias.data), e);
    let mut scores = vec![0.0; t * e];
    for r in 0..t {
        let row = &logits[r * e..(r + 1) * e];
        let mut taken = vec![false; e];
        let mut top = Vec::new();
        for _ in 0..config.num_experts_per_tok {
            // Arg-max among the remaining experts; the first of equal maxima wins.
            let mut best: Option<usize> = None;
            for (i, &l) in row.iter().enumerate() {
                if !taken[i] && !matches!(best, Some(b) if l <= row[b]) {
                    best = Some(i);
                }
            }
            if let Some(b) = best {
                taken[b] = true;
                top.push(b);
            }
        }
        let m = top.iter().map(|&i| row[i]).fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = top.iter().map(|&i| (row[i] - m).exp()).sum();
        for &i in &top {
            scores[r * e + i] = (row[i] - m).exp() / z;
        }
    }
    scores
}

/// Every expert on every token, weighted by the dense `scores` (`[T, E]`) and summed.
pub fn experts_dense(config: &GptOssConfig, w: &ExpertWeights, x: &[f64], scores: &[f64]) -> Vec<f64> {
    let (h, inter, ne) = (config.hidden_size, config.intermediate_size, config.num_local_experts);
    let t = x.len() / h;
    let (alpha, limit) = (config.swiglu_alpha, config.swiglu_limit);
    let mut next = vec![0.0; t * h];
    for e in 0..ne {
        let gate_up = &w.gate_up_proj.data[e * h * 2 * inter..(e + 1) * h * 2 * inter];
        let down = &w.down_proj.data[e * inter * h..(e + 1) * inter * h];
        for r in 0..t {
            // gate_up = x @ W[e] + b[e], W stored [H, 2I].
            let gu: Vec<f64> = (0..2 * inter)
                .map(|c| {
                    (0..h).map(|i| x[r * h + i] * f64::from(gate_up[i * 2 * inter + c])).sum::<f64>()
                        + f64::from(w.gate_up_bias.data[e * 2 * inter + c])
                })
                .collect();
            let gate: Vec<f64> = gu.iter().step_by(2).map(|g| g.min(limit)).collect();
            let up: Vec<f64> = gu.iter().skip(1).step_by(2).map(|u| u.clamp(-limit, limit)).collect();
            let gated: Vec<f64> =
                gate.iter().zip(&up).map(|(g, u)| (u + 1.0) * (g * (1.0 / (1.0 + (-g * alpha).exp())))).collect();
            for o in 0..h {
                let y = (0..inter).map(|j| gated[j] * f64::from(down[j * h + o])).sum::<f64>()
                    + f64::from(w.down_bias.data[e * h + o]);
                next[r * h + o] += y * scores[r * ne + e];
            }
        }
    }
    next
}

/// Router then dense experts on normed rows `x`.
pub fn moe(config: &GptOssConfig, w: &LayerWeights, x: &[f64]) -> Vec<f64> {
    let scores = router_scores(config, &w.router, x);
    experts_dense(config, &w.experts, x, &scores)
}
