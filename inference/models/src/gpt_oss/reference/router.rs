//! The top-k router: linear with bias, top-k, softmax over the k selected logits.

use super::ops::linear;
use crate::gpt_oss::error::{GptOssError, Result};
use crate::gpt_oss::weights::RouterWeights;

/// Routing decisions for `T` tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    /// Experts per layer.
    pub num_experts: usize,
    /// Experts chosen per token.
    pub top_k: usize,
    /// `[T, E]` router logits (empty when the routing was given rather than computed).
    pub logits: Vec<f32>,
    /// `[T, k]` chosen experts, by descending logit.
    pub indices: Vec<usize>,
    /// `[T, k]` routing weights, aligned with `indices`.
    pub weights: Vec<f32>,
}

impl Routing {
    /// A routing given directly (as the experts module tests feed one), validated.
    pub fn given(num_experts: usize, top_k: usize, indices: Vec<usize>, weights: Vec<f32>) -> Result<Self> {
        if top_k == 0 || indices.len() != weights.len() || indices.len() % top_k != 0 {
            return Err(GptOssError::InvalidInput(format!(
                "{} indices and {} weights for top_k {top_k}",
                indices.len(),
                weights.len()
            )));
        }
        if let Some(bad) = indices.iter().find(|&&e| e >= num_experts) {
            return Err(GptOssError::InvalidInput(format!("expert {bad} out of {num_experts}")));
        }
        Ok(Routing { num_experts, top_k, logits: Vec::new(), indices, weights })
    }

    /// Tokens routed.
    pub fn tokens(&self) -> usize {
        self.indices.len() / self.top_k.max(1)
    }

    /// The dense `[T, E]` score matrix HF's router returns (zeros outside the top-k).
    pub fn dense(&self) -> Vec<f32> {
        let mut dense = vec![0.0; self.tokens() * self.num_experts];
        for (slot, (&e, &w)) in self.indices.iter().zip(&self.weights).enumerate() {
            dense[slot / self.top_k * self.num_experts + e] = w;
        }
        dense
    }
}

/// Routes the normed rows `x` (`[T, H]`).
pub fn route(w: &RouterWeights, x: &[f32], hidden: usize, top_k: usize) -> Routing {
    let num_experts = w.bias.len();
    let logits = linear(x, &w.weight.data, &w.bias.data, hidden);
    let top_k = top_k.min(num_experts);
    let mut indices = Vec::with_capacity(logits.len() / num_experts.max(1) * top_k);
    let mut weights = Vec::with_capacity(indices.capacity());
    let mut order: Vec<usize> = Vec::with_capacity(num_experts);
    for row in logits.chunks_exact(num_experts.max(1)) {
        order.clear();
        order.extend(0..num_experts);
        // Descending; ties keep the lower index first (stable sort).
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let top = &order[..top_k];
        let max = row[top[0]];
        let exps: Vec<f32> = top.iter().map(|&e| (row[e] - max).exp()).collect();
        let sum: f32 = exps.iter().sum();
        indices.extend_from_slice(top);
        weights.extend(exps.iter().map(|x| x / sum));
    }
    Routing { num_experts, top_k, logits, indices, weights }
}
