//! The experts: clamped SwiGLU with the +1 on up, on HF's interleaved gate/up columns.

use super::ops::add_vec_mat;
use super::router::Routing;
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::error::{GptOssError, Result};
use crate::gpt_oss::weights::ExpertWeights;

/// GPT-OSS's activation of one (gate, up) pair: `(clamp(up, -L, L) + 1) * g * sigmoid(alpha g)`
/// with `g = min(gate, L)`.
pub fn swiglu(gate: f32, up: f32, alpha: f32, limit: f32) -> f32 {
    let gate = gate.min(limit);
    let up = up.clamp(-limit, limit);
    let glu = gate / (1.0 + (-gate * alpha).exp());
    (up + 1.0) * glu
}

/// Expert `e` on one normed row `x` (`[H]`), down bias included, routing weight not applied.
pub fn expert_forward(config: &GptOssConfig, w: &ExpertWeights, e: usize, x: &[f32]) -> Vec<f32> {
    let mut gate_up = w.gate_up_bias.outer(e).to_vec();
    add_vec_mat(x, w.gate_up_proj.outer(e), &mut gate_up);
    let (alpha, limit) = (config.swiglu_alpha as f32, config.swiglu_limit as f32);
    let act: Vec<f32> = gate_up.chunks_exact(2).map(|pair| swiglu(pair[0], pair[1], alpha, limit)).collect();
    let mut out = w.down_bias.outer(e).to_vec();
    add_vec_mat(&act, w.down_proj.outer(e), &mut out);
    out
}

/// The experts module on normed rows `x` (`[T, H]`): `sum_k weight_k * expert_{index_k}(x)`.
pub fn experts(config: &GptOssConfig, w: &ExpertWeights, x: &[f32], routing: &Routing) -> Result<Vec<f32>> {
    let h = config.hidden_size;
    let tokens = x.len() / h.max(1);
    if x.len() != tokens * h || routing.tokens() != tokens || routing.num_experts != config.num_local_experts {
        return Err(GptOssError::InvalidInput(format!(
            "experts input of {} values with a routing of {} tokens over {} experts",
            x.len(),
            routing.tokens(),
            routing.num_experts
        )));
    }
    let mut out = vec![0.0f32; tokens * h];
    for t in 0..tokens {
        let row = &x[t * h..(t + 1) * h];
        let slots = t * routing.top_k..(t + 1) * routing.top_k;
        for (&e, &weight) in routing.indices[slots.clone()].iter().zip(&routing.weights[slots]) {
            let y = expert_forward(config, w, e, row);
            for (o, v) in out[t * h..(t + 1) * h].iter_mut().zip(y) {
                *o += weight * v;
            }
        }
    }
    Ok(out)
}
