//! Deterministic random GPT-OSS weights for tests and `ttsan gpt-oss init`.
//!
//! Sinks, router (weight and bias) and experts (weights and biases) are drawn from N(0, 1) as
//! tt-metal's module tests redraw them: with HF's default std 0.02 the gate/up activations stay
//! far inside the +-7 clamp and the sinks take no probability mass, so neither would be tested.
//! Projections use std `1/sqrt(fan_in)` so activations stay O(1); the embedding is N(0, 1) so
//! that RMSNorm does not amplify rounding noise; norm weights are `1 + 0.1 N(0, 1)` so that a
//! swapped or missing norm weight changes the output.

use super::config::GptOssConfig;
use super::tensor::Tensor;
use super::weights::{LayerParam, ModelWeights, Param};
use crate::common::rng::SplitMix64;

/// Random weights for `config`; the same `(config, seed)` always gives the same weights.
pub fn random_weights(config: &GptOssConfig, seed: u64) -> ModelWeights {
    let mut rng = SplitMix64::new(seed);
    let result: Result<ModelWeights, std::convert::Infallible> = ModelWeights::build(config.clone(), |param| {
        let shape = param.shape(config);
        let n = shape.iter().product();
        let (mean, std) = distribution(param, config);
        Ok(Tensor { data: rng.normal_vec(n, mean, std), shape })
    });
    match result {
        Ok(weights) => weights,
        Err(never) => match never {},
    }
}

/// `(mean, std)` of the normal each parameter is drawn from.
fn distribution(param: Param, c: &GptOssConfig) -> (f64, f64) {
    let inv_sqrt = |n: usize| 1.0 / (n as f64).sqrt();
    match param {
        Param::Embed => (0.0, 1.0),
        Param::Norm => (1.0, 0.1),
        Param::LmHead => (0.0, inv_sqrt(c.hidden_size)),
        Param::Layer(_, p) => match p {
            LayerParam::InputNorm | LayerParam::PostNorm => (1.0, 0.1),
            LayerParam::QProj | LayerParam::KProj | LayerParam::VProj => (0.0, inv_sqrt(c.hidden_size)),
            LayerParam::OProj => (0.0, inv_sqrt(c.q_width())),
            LayerParam::QBias | LayerParam::KBias | LayerParam::VBias | LayerParam::OBias => (0.0, 0.1),
            LayerParam::Sinks
            | LayerParam::RouterWeight
            | LayerParam::RouterBias
            | LayerParam::GateUp
            | LayerParam::GateUpBias
            | LayerParam::Down
            | LayerParam::DownBias => (0.0, 1.0),
        },
    }
}
