//! Decoder layers and the whole model in prefill (`tt/layer.py`, `tt/model.py`): embedding,
//! per layer rms_norm / attention / residual add / rms_norm / router / experts / residual add,
//! final rms_norm, lm_head column-parallel over the vocabulary, logits gathered on the host as
//! the demo does. Attention is the same on every mesh row; the experts are the low-latency
//! ones on a single row and the throughput experts over the rows on several (when the chips
//! divide the experts; otherwise the low-latency ones, replicated down the rows).

use super::attention::{prefill_attention, DeviceAttention};
use super::decode_experts::dense_routing;
use super::error::DeviceError;
use super::experts::{prefill_experts, DeviceExperts, TpReduce};
use super::router::{router, DeviceRouter};
use super::throughput::ThroughputExperts;
use super::throughput_prefill::{throughput_mlp, throughput_prefill};
use crate::common::upload::{host4, put, transpose};
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::error::GptOssError;
use crate::gpt_oss::rope::Rope;
use crate::gpt_oss::weights::{LayerWeights, ModelWeights};
use ttsan_events::Role;
use ttsan_sim::ccl::CclManager;
use ttsan_sim::ops::{self, MatmulArgs, Out};
use ttsan_sim::{DType, Distribution, HostTensor, Mesh, PageLayout, Tensor, TensorSpec};

/// One decoder layer on the mesh.
#[derive(Debug, Clone)]
pub struct DeviceLayer {
    /// `input_layernorm.weight` as `[1, 1, 1, H]`, replicated.
    pub input_norm: Tensor,
    /// Attention.
    pub attn: DeviceAttention,
    /// `post_attention_layernorm.weight` as `[1, 1, 1, H]`, replicated.
    pub post_norm: Tensor,
    /// Router.
    pub router: DeviceRouter,
    /// Low-latency experts (prefill on one row, decode on any mesh); absent when the layer
    /// holds only the throughput experts ([`ExpertsPlacement::Single`]).
    pub experts: Option<DeviceExperts>,
    /// Throughput experts, on meshes with several rows whose chips divide the experts (their
    /// prefill MLP; see [`throughput_prefill`]).
    pub throughput: Option<ThroughputExperts>,
    /// RMSNorm epsilon.
    pub eps: f32,
}

/// Which experts placements a layer holds on a mesh whose chips divide the experts (on other
/// meshes both forms are the low-latency experts alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpertsPlacement {
    /// Both: the throughput experts for prefill over the rows and the low-latency experts for
    /// single-user decode, as tt-metal's module tests build one layer per form they test.
    #[default]
    Both,
    /// One, as the demo's single model object holds: the throughput experts wherever the chips
    /// divide them, for prefill and decode. gpt-oss-120b on a Galaxy fits only this way
    /// (each placement takes about 7.2 GB of a chip's 12 GB of DRAM).
    Single,
}

fn norm_weight(mesh: &mut Mesh, w: &crate::gpt_oss::tensor::Tensor, name: &str) -> Result<Tensor, DeviceError> {
    // The width from the shape: a shape-only weight has no values to count.
    let width = w.shape.iter().product();
    Ok(put(mesh, &host4(1, width, w.data.clone())?, &Distribution::Replicate, name, Role::Weight)?)
}

impl DeviceLayer {
    /// Uploads layer `layer` in the order of tt-metal's `DecoderLayer.__init__`
    /// (`models/demos/gpt_oss/tt/layer.py`): input_layernorm, post_attention_layernorm, the MLP
    /// (router, then experts), then the attention. On several rows also the throughput experts
    /// (when the chips divide the experts), which prefill uses there while single-user decode
    /// keeps the low-latency experts, as the demo picks the experts by the local token count.
    pub fn upload(mesh: &mut Mesh, config: &GptOssConfig, w: &LayerWeights, layer: usize) -> Result<Self, DeviceError> {
        Self::upload_with(mesh, config, w, layer, ExpertsPlacement::Both)
    }

    /// [`DeviceLayer::upload`] holding the experts placements `experts` asks for.
    pub fn upload_with(
        mesh: &mut Mesh,
        config: &GptOssConfig,
        w: &LayerWeights,
        layer: usize,
        experts: ExpertsPlacement,
    ) -> Result<Self, DeviceError> {
        let prefix = format!("model.layers.{layer}");
        let desc = mesh.desc();
        let throughput = throughput_prefill(desc.rows as usize, desc.cols as usize, config.num_local_experts);
        let low_latency = !(throughput && experts == ExpertsPlacement::Single);
        // Struct fields would evaluate in declaration order; the lets fix the upload order.
        let input_norm = norm_weight(mesh, &w.input_norm, &format!("{prefix}.input_layernorm.weight"))?;
        let post_norm = norm_weight(mesh, &w.post_norm, &format!("{prefix}.post_attention_layernorm.weight"))?;
        let router = DeviceRouter::upload(mesh, &w.router, config.num_experts_per_tok, layer)?;
        let experts = match low_latency {
            true => Some(DeviceExperts::upload(mesh, config, &w.experts, layer)?),
            false => None,
        };
        let throughput = match throughput {
            true => Some(ThroughputExperts::upload(mesh, config, &w.experts, layer)?),
            false => None,
        };
        let attn = DeviceAttention::upload(mesh, config, &w.attn, layer)?;
        Ok(DeviceLayer { input_norm, attn, post_norm, router, experts, throughput, eps: config.rms_norm_eps as f32 })
    }
}

impl DeviceLayer {
    /// The low-latency experts, or an error for a layer that holds only the throughput ones.
    pub(crate) fn low_latency(&self) -> Result<&DeviceExperts, DeviceError> {
        self.experts.as_ref().ok_or_else(|| DeviceError::Placement("the layer holds no low-latency experts".into()))
    }

    /// Frees every weight of the layer.
    pub fn deallocate(&self, mesh: &mut Mesh) -> Result<(), DeviceError> {
        let a = &self.attn;
        for t in [&self.input_norm, &self.post_norm, &a.wqkv, &a.wqkv_bias, &a.o_proj, &a.o_bias, &a.sinks] {
            mesh.deallocate(t)?;
        }
        mesh.deallocate(&self.router.weight)?;
        mesh.deallocate(&self.router.bias)?;
        if let Some(e) = &self.experts {
            e.deallocate(mesh)?;
        }
        if let Some(t) = &self.throughput {
            t.deallocate(mesh)?;
        }
        Ok(())
    }
}

/// Reads the router's `(indices, weights)` back and uploads the dense `[1, E, T, 1]` routing
/// the low-latency experts take. Stands in for `ttnn.scatter(zeros_like(logits), ...)`, which
/// the simulator does not have yet; the host round trip is the only non-device step.
fn scatter_routing(
    mesh: &mut Mesh,
    experts: &DeviceExperts,
    indices: &Tensor,
    weights: &Tensor,
) -> Result<Tensor, DeviceError> {
    let idx = mesh.to_host(indices)?.swap_remove(0);
    let wts = mesh.to_host(weights)?.swap_remove(0);
    let k = idx.last_dim();
    // From the shape: a placement-only mesh reads back shapes without values.
    let tokens = idx.shape.iter().product::<usize>() / k.max(1);
    let e = experts.experts;
    let mut dense = vec![0.0; if idx.is_shape_only() { 0 } else { tokens * e }];
    for (slot, (&i, &w)) in idx.data.iter().zip(&wts.data).enumerate() {
        let expert = i as usize;
        if expert >= e {
            return Err(DeviceError::Placement(format!("router picked expert {expert} of {e}")));
        }
        dense[slot / k * e + expert] = w;
    }
    experts.upload_routing(mesh, &dense, tokens)
}

/// One decoder layer in prefill on the residual stream `x` (`[1, 1, T, H]`); returns the new
/// residual stream and frees `x`.
pub fn prefill_layer(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    layer: &DeviceLayer,
    x: Tensor,
    cos: &Tensor,
    sin: &Tensor,
    reduce: TpReduce,
) -> Result<Tensor, DeviceError> {
    let x1 = attention_residual(mesh, layer, x, |m, h| prefill_attention(m, ccl_manager, &layer.attn, h, cos, sin))?;
    mlp_residual(mesh, ccl_manager, layer, x1, reduce, Scatter::Host)
}

/// Where the low-latency experts' dense routing is scattered from the router's top-k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scatter {
    /// On the host ([`scatter_routing`]).
    Host,
    /// On the device (`ttnn.scatter`, [`dense_routing`]).
    Device,
}

/// The attention half of a layer: rms_norm, `attend`, residual add. Frees `x`.
pub(crate) fn attention_residual(
    mesh: &mut Mesh,
    layer: &DeviceLayer,
    x: Tensor,
    attend: impl FnOnce(&mut Mesh, &Tensor) -> Result<Tensor, DeviceError>,
) -> Result<Tensor, DeviceError> {
    let h = ops::rms_norm(mesh, &x, Some(&layer.input_norm), layer.eps, &Out::dram().named("layer.input_norm"))?;
    let attn = attend(mesh, &h)?;
    mesh.deallocate(&h)?;
    let x1 = ops::add(mesh, &x, &attn, &Out::dram().named("layer.residual_attn"))?;
    mesh.deallocate(&x)?;
    mesh.deallocate(&attn)?;
    Ok(x1)
}

/// The MLP half of a prefill layer on the residual `x1`: rms_norm, router, experts, residual
/// add. Frees `x1`, and everything else in the order the layer always has (addresses depend
/// on it). Several rows run the throughput experts over the rows when the layer has them;
/// otherwise the low-latency experts run with the dense routing from `scatter`.
pub(crate) fn mlp_residual(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    layer: &DeviceLayer,
    x1: Tensor,
    reduce: TpReduce,
    scatter: Scatter,
) -> Result<Tensor, DeviceError> {
    let h2 = ops::rms_norm(mesh, &x1, Some(&layer.post_norm), layer.eps, &Out::dram().named("layer.post_norm"))?;
    let moe = match &layer.throughput {
        Some(ex) => {
            let moe = throughput_mlp(mesh, ccl_manager, &layer.router, ex, &h2)?;
            mesh.deallocate(&h2)?;
            moe
        }
        None => {
            let experts = layer.low_latency()?;
            let routing = match scatter {
                Scatter::Host => {
                    let routed = router(mesh, &layer.router, &h2)?;
                    let routing = scatter_routing(mesh, experts, &routed.indices, &routed.weights)?;
                    mesh.deallocate(&routed.indices)?;
                    mesh.deallocate(&routed.weights)?;
                    routing
                }
                Scatter::Device => {
                    let dense = dense_routing(mesh, &layer.router, &h2)?;
                    // The prefill experts weigh each expert's rows by a [1, E, T, 1] routing.
                    let routing = ops::permute(mesh, &dense, &[0, 3, 2, 1], &Out::dram().named("experts.routing"))?;
                    mesh.deallocate(&dense)?;
                    routing
                }
            };
            let moe = prefill_experts(mesh, ccl_manager, experts, &h2, &routing, reduce)?;
            mesh.deallocate(&h2)?;
            mesh.deallocate(&routing)?;
            moe
        }
    };
    let x2 = ops::add(mesh, &x1, &moe, &Out::dram().named("layer.residual_mlp"))?;
    mesh.deallocate(&x1)?;
    mesh.deallocate(&moe)?;
    Ok(x2)
}

/// The whole model on the mesh.
#[derive(Debug, Clone)]
pub struct DeviceModel {
    /// `[1, 1, V, H]`, replicated, row-major.
    pub embed: Tensor,
    /// Decoder layers.
    pub layers: Vec<DeviceLayer>,
    /// Final norm weight `[1, 1, 1, H]`.
    pub norm: Tensor,
    /// `[1, 1, H, V]` column-parallel over the vocabulary.
    pub lm_head: Tensor,
    /// RoPE of the config.
    pub rope: Rope,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// Vocabulary size.
    pub vocab: usize,
}

impl DeviceModel {
    /// Uploads every weight of `weights`.
    pub fn upload(mesh: &mut Mesh, weights: &ModelWeights) -> Result<Self, DeviceError> {
        Self::upload_with(mesh, weights, ExpertsPlacement::Both)
    }

    /// Uploads every weight of `weights`, each layer holding the experts placements `experts`
    /// asks for.
    pub fn upload_with(
        mesh: &mut Mesh,
        weights: &ModelWeights,
        experts: ExpertsPlacement,
    ) -> Result<Self, DeviceError> {
        let c = &weights.config;
        let (v, h) = (c.vocab_size, c.hidden_size);
        let tp = mesh.desc().cols as usize;
        if v % tp != 0 {
            return Err(DeviceError::Placement(format!("vocab {v} over {tp} columns")));
        }
        let embed_host = host4(v, h, weights.embed.data.clone())?;
        let embed_spec = TensorSpec::new(&[1, 1, v, h], DType::Bf16).row_major();
        let embed = mesh.from_host(
            &embed_host,
            &embed_spec,
            &Distribution::Replicate,
            "model.embed_tokens.weight",
            Role::Weight,
        )?;
        let layers = weights
            .layers
            .iter()
            .enumerate()
            .map(|(i, lw)| DeviceLayer::upload_with(mesh, c, lw, i, experts))
            .collect::<Result<Vec<_>, _>>()?;
        let norm = norm_weight(mesh, &weights.norm, "model.norm.weight")?;
        let lm_head = host4(h, v, transpose(&weights.lm_head.data, v, h))?;
        let lm_head = put(mesh, &lm_head, &Distribution::Shard { axis: 1, dim: 3 }, "lm_head.weight", Role::Weight)?;
        Ok(DeviceModel { embed, layers, norm, lm_head, rope: Rope::new(c), eps: c.rms_norm_eps as f32, vocab: v })
    }

    /// Prefill of `tokens` (any positive length) at positions `0..T`: logits `[T, V]`,
    /// gathered from the column shards of the first mesh row on the host. A prompt that is not
    /// whole tiles runs zero-padded to the next multiple of 32 ([`padded_prompt`]) and only its
    /// real rows are returned.
    pub fn prefill(
        &self,
        mesh: &mut Mesh,
        ccl_manager: &mut CclManager,
        tokens: &[u32],
        reduce: TpReduce,
    ) -> Result<Vec<f32>, DeviceError> {
        let t = tokens.len();
        if t == 0 {
            return Err(GptOssError::InvalidInput("device prefill of no tokens".to_owned()).into());
        }
        self.prefill_layers(mesh, tokens, |mesh, _, layer, x, cos, sin| {
            prefill_layer(mesh, ccl_manager, layer, x, cos, sin, reduce)
        })
    }

    /// The prefill both models run: the prompt checked, padded to a tile and embedded, the rotary
    /// tables of its positions uploaded, `layer_fn(mesh, index, layer, x, cos, sin)` for each
    /// layer in turn on the residual stream, then the logits of the real rows.
    pub(super) fn prefill_layers(
        &self,
        mesh: &mut Mesh,
        tokens: &[u32],
        mut layer_fn: impl FnMut(&mut Mesh, usize, &DeviceLayer, Tensor, &Tensor, &Tensor) -> Result<Tensor, DeviceError>,
    ) -> Result<Vec<f32>, DeviceError> {
        self.check_tokens(tokens)?;
        let padded = padded_prompt(tokens);
        let mut x = self.embed_tokens(mesh, &padded)?;
        let first = self.layers.first().ok_or_else(|| DeviceError::Placement("no layers".to_owned()))?;
        let (cos, sin) = first.attn.rope_tables(mesh, &self.rope, 0, padded.len())?;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer_fn(mesh, i, layer, x, &cos, &sin)?;
        }
        mesh.deallocate(&cos)?;
        mesh.deallocate(&sin)?;
        let mut logits = self.logits(mesh, x)?;
        logits.truncate(tokens.len() * self.vocab);
        Ok(logits)
    }

    /// Rejects token ids past the vocabulary before anything is uploaded.
    pub(super) fn check_tokens(&self, tokens: &[u32]) -> Result<(), DeviceError> {
        if let Some(bad) = tokens.iter().find(|&&id| id as usize >= self.vocab) {
            return Err(GptOssError::InvalidInput(format!("token id {bad} >= vocab_size {}", self.vocab)).into());
        }
        Ok(())
    }

    /// Uploads `tokens` as ids and embeds them into the `[1, 1, T, H]` residual stream; the
    /// ids are freed again.
    pub(super) fn embed_tokens(&self, mesh: &mut Mesh, tokens: &[u32]) -> Result<Tensor, DeviceError> {
        let t = tokens.len();
        let ids = HostTensor::new(vec![1, 1, t], tokens.iter().map(|&i| i as f32).collect())?;
        let ids_spec = TensorSpec::new(&[1, 1, t], DType::U32).row_major();
        let ids = mesh.from_host(&ids, &ids_spec, &Distribution::Replicate, "tokens", Role::Activation)?;
        let x = ops::embedding(mesh, &ids, &self.embed, &Out::dram().named("embedding").layout(PageLayout::Tile))?;
        mesh.deallocate(&ids)?;
        Ok(x)
    }

    /// Final norm, lm_head (column-parallel over the vocabulary) and the host gather of the
    /// first row's shards, as the demo gathers logits on the host. Frees `x`.
    pub(super) fn logits(&self, mesh: &mut Mesh, x: Tensor) -> Result<Vec<f32>, DeviceError> {
        let normed = ops::rms_norm(mesh, &x, Some(&self.norm), self.eps, &Out::dram().named("final_norm"))?;
        mesh.deallocate(&x)?;
        let logits =
            ops::matmul(mesh, &normed, &self.lm_head, MatmulArgs::default(), &Out::dram().named("lm_head.out"))?;
        mesh.deallocate(&normed)?;
        let shards = mesh.to_host(&logits)?;
        mesh.deallocate(&logits)?;
        let tp = mesh.desc().cols as usize;
        Ok(HostTensor::concat(&shards[..tp.min(shards.len())], 3)?.data)
    }

    /// Frees every weight.
    pub fn deallocate(&self, mesh: &mut Mesh) -> Result<(), DeviceError> {
        for layer in &self.layers {
            layer.deallocate(mesh)?;
        }
        for t in [&self.embed, &self.norm, &self.lm_head] {
            mesh.deallocate(t)?;
        }
        Ok(())
    }
}

/// `tokens` zero-padded to the next multiple of 32 (the tile height the prefill ops take).
///
/// tt-metal pads the same way: `GPTOSSRowShardedGenerator.prefill_forward_text`
/// (`models/demos/gpt_oss/tt/generator.py`) appends token 0 up to
/// `get_padded_prefill_len(seq_len)` (`models/tt_transformers/tt/common.py`: 128, then powers of
/// two) and reads the logits of `last_token_idx = seq_len - 1`. Attention is causal, so padding
/// after the prompt cannot change a real row; this pads only to the tile, the least the device
/// needs, since the larger buckets only serve tt-metal's trace reuse.
pub fn padded_prompt(tokens: &[u32]) -> Vec<u32> {
    let mut padded = tokens.to_vec();
    padded.resize(tokens.len().div_ceil(super::experts::BLOCK) * super::experts::BLOCK, 0);
    padded
}
