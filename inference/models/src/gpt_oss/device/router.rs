//! The router on the mesh (`tt/topk.py`): `linear(x, W_r, bias)`, `topk`, `softmax` over the
//! k values. Replicated on every chip; the output is the throughput-experts form (indices and
//! weights), which the low-latency experts would scatter into a dense `[T, E]` matrix.

use super::error::DeviceError;
use crate::common::upload::{host4, put, transpose};
use crate::gpt_oss::weights::RouterWeights;
use ttsan_events::Role;
use ttsan_sim::ops::{self, MatmulArgs, Out};
use ttsan_sim::{Distribution, Mesh, Tensor};

/// The router's weights on the mesh.
#[derive(Debug, Clone)]
pub struct DeviceRouter {
    /// `[1, 1, H, E]` (HF's `[E, H]` transposed), replicated.
    pub weight: Tensor,
    /// `[1, 1, 1, E]`, replicated.
    pub bias: Tensor,
    /// Experts selected per token.
    pub top_k: usize,
}

impl DeviceRouter {
    /// Uploads layer `layer`'s router.
    pub fn upload(mesh: &mut Mesh, w: &RouterWeights, top_k: usize, layer: usize) -> Result<Self, DeviceError> {
        let (e, h) = (w.weight.shape[0], w.weight.shape[1]);
        let weight = host4(h, e, transpose(&w.weight.data, e, h))?;
        let bias = host4(1, e, w.bias.data.clone())?;
        let prefix = format!("model.layers.{layer}.mlp.router");
        Ok(DeviceRouter {
            weight: put(mesh, &weight, &Distribution::Replicate, &format!("{prefix}.weight"), Role::Weight)?,
            bias: put(mesh, &bias, &Distribution::Replicate, &format!("{prefix}.bias"), Role::Weight)?,
            top_k,
        })
    }
}

/// The router's outputs on the mesh.
#[derive(Debug, Clone)]
pub struct RouterOutput {
    /// `[1, 1, T, k]` uint32 expert indices, by descending logit.
    pub indices: Tensor,
    /// `[1, 1, T, k]` routing weights (softmax over the k logits).
    pub weights: Tensor,
}

/// Routes `x` (`[1, 1, T, H]`, normed). Intermediates are freed as the demo frees them.
pub fn router(mesh: &mut Mesh, w: &DeviceRouter, x: &Tensor) -> Result<RouterOutput, DeviceError> {
    let logits =
        ops::linear(mesh, x, &w.weight, Some(&w.bias), MatmulArgs::default(), &Out::dram().named("router.logits"))?;
    let (values, indices) = ops::topk(mesh, &logits, w.top_k, &Out::dram().named("router.topk"))?;
    mesh.deallocate(&logits)?;
    let weights = ops::softmax(mesh, &values, -1, &Out::dram().named("router.weights"))?;
    mesh.deallocate(&values)?;
    Ok(RouterOutput { indices, weights })
}
