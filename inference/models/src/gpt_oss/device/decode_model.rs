//! Decoder layers and the whole model in decode (`tt/layer.py`, `tt/model.py`, reference doc
//! sections 3.5, 3.9 and 3.10), and the prefill that fills the KV cache for it.
//!
//! [`DecodeModel`] wraps the prefill placement ([`DeviceModel`]) and adds what decode needs
//! (the decode sinks), so prefill and decode share every weight on the mesh, as the demo's
//! single model object does. One user; on meshes with several rows the rows run the same user
//! (attention replicated, experts split over the rows).

use super::decode_attention::{decode_attention, prefill_attention_fill, DecodeAttention, DecodePosition};
use super::decode_cache::{DeviceKvCache, LayerKv};
use super::decode_experts::{decode_experts, dense_routing};
use super::error::DeviceError;
use super::experts::TpReduce;
use super::model::{
    attention_residual, mlp_residual, padded_prompt, DeviceLayer, DeviceModel, ExpertsPlacement, Scatter,
};
use super::throughput_prefill::throughput_mlp;
use crate::gpt_oss::error::GptOssError;
use crate::gpt_oss::weights::ModelWeights;
use ttsan_sim::ccl::CclManager;
use ttsan_sim::ops::{self, Out};
use ttsan_sim::{Mesh, Tensor};

/// One decoder layer in decode on the residual stream `x` (`[1, 1, 1, H]`) at `position`;
/// writes the token's key and value into `cache`, returns the new residual stream and frees
/// `x`.
#[allow(clippy::too_many_arguments)]
pub fn decode_layer(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    layer: &DeviceLayer,
    attn: &DecodeAttention,
    x: Tensor,
    cache: &LayerKv,
    page_table: Option<&Tensor>,
    position: &DecodePosition,
) -> Result<Tensor, DeviceError> {
    let h = ops::rms_norm(mesh, &x, Some(&layer.input_norm), layer.eps, &Out::l1().named("layer.decode.input_norm"))?;
    let a = decode_attention(mesh, ccl_manager, attn, &h, cache, page_table, position)?;
    mesh.deallocate(&h)?;
    let x1 = ops::add(mesh, &x, &a, &Out::dram().named("layer.decode.residual_attn"))?;
    mesh.deallocate(&x)?;
    mesh.deallocate(&a)?;
    let h2 = ops::rms_norm(mesh, &x1, Some(&layer.post_norm), layer.eps, &Out::l1().named("layer.decode.post_norm"))?;
    let moe = match (&layer.experts, &layer.throughput) {
        (Some(experts), _) => {
            let routing = dense_routing(mesh, &layer.router, &h2)?;
            let moe = decode_experts(mesh, ccl_manager, experts, &h2, &routing, layer.router.top_k)?;
            mesh.deallocate(&routing)?;
            moe
        }
        // A layer with only the throughput experts (the demo's one placement) runs the token
        // through them over the rows, padded to a tile per row.
        (None, Some(throughput)) => throughput_mlp(mesh, ccl_manager, &layer.router, throughput, &h2)?,
        (None, None) => return Err(DeviceError::Placement("the layer holds no experts".into())),
    };
    mesh.deallocate(&h2)?;
    let x2 = ops::add(mesh, &x1, &moe, &Out::dram().named("layer.decode.residual_mlp"))?;
    mesh.deallocate(&x1)?;
    mesh.deallocate(&moe)?;
    Ok(x2)
}

/// One decoder layer in prefill that also fills `cache` with positions `0..T`.
#[allow(clippy::too_many_arguments)]
fn prefill_layer_fill(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    layer: &DeviceLayer,
    x: Tensor,
    cos: &Tensor,
    sin: &Tensor,
    cache: &LayerKv,
    page_table: Option<&Tensor>,
    reduce: TpReduce,
) -> Result<Tensor, DeviceError> {
    let x1 = attention_residual(mesh, layer, x, |m, h| {
        prefill_attention_fill(m, ccl_manager, &layer.attn, h, cos, sin, cache, page_table)
    })?;
    mlp_residual(mesh, ccl_manager, layer, x1, reduce, Scatter::Device)
}

/// The whole model for prefill and decode on the mesh.
#[derive(Debug, Clone)]
pub struct DecodeModel {
    /// The prefill placement of every weight.
    pub model: DeviceModel,
    /// Per layer: the attention weights with the decode sinks.
    pub attention: Vec<DecodeAttention>,
}

impl DecodeModel {
    /// Uploads every weight of `weights` (any mesh whose columns divide the heads, kv heads,
    /// intermediate size and vocabulary, and whose rows divide the experts).
    pub fn upload(mesh: &mut Mesh, weights: &ModelWeights) -> Result<Self, DeviceError> {
        Self::upload_with(mesh, weights, ExpertsPlacement::Both)
    }

    /// [`DecodeModel::upload`] with each layer holding the experts placements `experts` asks
    /// for.
    pub fn upload_with(
        mesh: &mut Mesh,
        weights: &ModelWeights,
        experts: ExpertsPlacement,
    ) -> Result<Self, DeviceError> {
        let model = DeviceModel::upload_with(mesh, weights, experts)?;
        Self::with_prefill(mesh, model, weights)
    }

    /// Adds the decode-only weights to a model already on the mesh.
    pub fn with_prefill(mesh: &mut Mesh, model: DeviceModel, weights: &ModelWeights) -> Result<Self, DeviceError> {
        let rows = mesh.desc().rows as usize;
        let e = weights.config.num_local_experts;
        if rows == 0 || e % rows != 0 {
            return Err(DeviceError::Placement(format!("{e} experts over {rows} mesh rows")));
        }
        let attention = model
            .layers
            .iter()
            .zip(&weights.layers)
            .enumerate()
            .map(|(i, (l, w))| DecodeAttention::with_prefill(mesh, l.attn.clone(), &w.attn, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DecodeModel { model, attention })
    }

    /// Prefill of `tokens` at positions `0..T` into the empty `cache`: logits `[T, V]`.
    ///
    /// The prefill path runs whole tiles (`fill_cache` / `paged_fill_cache` of each layer's keys
    /// and values); a prompt of another length is zero-padded to the next multiple of 32 as
    /// tt-metal's generator pads it ([`padded_prompt`]), and only the real rows come back. The
    /// padding's keys and values land in the cache past the prompt, but the cache's length
    /// stays `T`: decode at position `T` overwrites that row before reading it, and decode
    /// SDPA never reads past the current position, so the padding is never attended.
    /// `on_layer` hears each layer's index as it starts.
    pub fn prefill(
        &self,
        mesh: &mut Mesh,
        ccl_manager: &mut CclManager,
        cache: &mut DeviceKvCache,
        tokens: &[u32],
        reduce: TpReduce,
        on_layer: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>, DeviceError> {
        let t = tokens.len();
        let padded = padded_prompt(tokens);
        if t == 0 || !cache.is_empty() || padded.len() > cache.max_seq || cache.layers.len() != self.model.layers.len()
        {
            return Err(GptOssError::InvalidInput(format!(
                "prefill of {t} tokens ({} padded) needs an empty cache of this model with room for them",
                padded.len()
            ))
            .into());
        }
        let table = cache.page_table.as_ref();
        let logits = self.model.prefill_layers(mesh, tokens, |mesh, i, layer, x, cos, sin| {
            on_layer(i);
            prefill_layer_fill(mesh, ccl_manager, layer, x, cos, sin, &cache.layers[i], table, reduce)
        })?;
        cache.len = t;
        Ok(logits)
    }

    /// One decode step: the logits (`[V]`) of `token` at position `pos`, which must be at most
    /// the cache's length (positions past it would leave a hole). Writes the token's keys and
    /// values into `cache` at `pos`. `on_layer` hears each layer's index as it starts.
    pub fn decode_step(
        &self,
        mesh: &mut Mesh,
        ccl_manager: &mut CclManager,
        cache: &mut DeviceKvCache,
        token: u32,
        pos: usize,
        on_layer: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>, DeviceError> {
        if pos > cache.len || pos >= cache.max_seq || cache.layers.len() != self.model.layers.len() {
            return Err(GptOssError::InvalidInput(format!(
                "decode at position {pos} with a cache of {} / {} positions",
                cache.len, cache.max_seq
            ))
            .into());
        }
        self.model.check_tokens(&[token])?;
        let mut x = self.model.embed_tokens(mesh, &[token])?;
        let first = self.attention.first().ok_or_else(|| DeviceError::Placement("no layers".to_owned()))?;
        let position = DecodePosition::upload(mesh, &first.attn, &self.model.rope, pos)?;
        for (i, ((layer, attn), kv)) in self.model.layers.iter().zip(&self.attention).zip(&cache.layers).enumerate() {
            on_layer(i);
            x = decode_layer(mesh, ccl_manager, layer, attn, x, kv, cache.page_table.as_ref(), &position)?;
        }
        position.deallocate(mesh)?;
        cache.len = cache.len.max(pos + 1);
        self.model.logits(mesh, x)
    }

    /// Frees every weight.
    pub fn deallocate(&self, mesh: &mut Mesh) -> Result<(), DeviceError> {
        for a in &self.attention {
            mesh.deallocate(&a.decode_sinks)?;
        }
        self.model.deallocate(mesh)
    }
}
