//! Attention in decode (`tt/attention/decode.py`, reference doc section 3.6), per chip with TP
//! over the columns: QKV matmul + bias, `nlp_create_qkv_heads_decode`, rotary on q and k,
//! `paged_update_cache` of k and v, `scaled_dot_product_attention_decode` with the sinks
//! divided by the scale and the layer's window, `nlp_concat_heads_decode`, o_proj + bias (TP
//! rank 0), then the TP all-reduce (reduce-scatter + all-gather). Also the prefill attention
//! that fills the cache (section 3.7 with `nlp_create_qkv_heads`, `fill_cache` /
//! `paged_fill_cache` and `nlp_concat_heads`).

use super::attention::{attention_prefill, o_proj_allreduce, rotate_qk, DeviceAttention};
use super::decode_cache::{DeviceKvCache, LayerKv};
use super::error::DeviceError;
use crate::common::upload::put;
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::weights::AttentionWeights;
use ttsan_events::{CoreCoord, CoreRange, Role};
use ttsan_sim::ccl::CclManager;
use ttsan_sim::ops::{self, MatmulArgs, Out, QkvHeads, SdpaDecodeArgs};
use ttsan_sim::{Distribution, HostTensor, MemoryConfig, Mesh, Tensor};

/// Width the demo pads the decode sinks to (one tile).
const SINK_WIDTH: usize = 32;

/// One layer's attention for decode: the prefill placement plus the decode sinks.
#[derive(Debug, Clone)]
pub struct DecodeAttention {
    /// The weights as prefill places them (shared with prefill).
    pub attn: DeviceAttention,
    /// `[1, 1, nh, 32]` sharded on the head dim: `sink / scale` in column 0, zeros elsewhere,
    /// the form tt-metal's decode SDPA expects.
    pub decode_sinks: Tensor,
}

impl DecodeAttention {
    /// Uploads layer `layer`'s attention for decode.
    pub fn upload(
        mesh: &mut Mesh,
        config: &GptOssConfig,
        w: &AttentionWeights,
        layer: usize,
    ) -> Result<Self, DeviceError> {
        let attn = DeviceAttention::upload(mesh, config, w, layer)?;
        Self::with_prefill(mesh, attn, w, layer)
    }

    /// Adds the decode sinks to attention weights already on the mesh.
    pub fn with_prefill(
        mesh: &mut Mesh,
        attn: DeviceAttention,
        w: &AttentionWeights,
        layer: usize,
    ) -> Result<Self, DeviceError> {
        let nh = w.sinks.shape.iter().product();
        // A shape-only weight (plan mode) has no sinks to scale: the upload is its shape.
        let mut sinks = vec![0.0; if w.sinks.is_empty() { 0 } else { nh * SINK_WIDTH }];
        for (h, s) in w.sinks.data.iter().enumerate() {
            sinks[h * SINK_WIDTH] = s / attn.scale;
        }
        let host = HostTensor::values_or_shape(vec![1, 1, nh, SINK_WIDTH], sinks)?;
        let name = format!("model.layers.{layer}.self_attn.decode_sinks");
        let decode_sinks = put(mesh, &host, &Distribution::Shard { axis: 1, dim: 2 }, &name, Role::Weight)?;
        Ok(DecodeAttention { attn, decode_sinks })
    }
}

/// What one decode step's attention needs besides the weights and the cache.
#[derive(Debug, Clone)]
pub struct DecodePosition {
    /// `[1]` uint32: the position of the token being decoded.
    pub cur_pos: Tensor,
    /// `[1, 1, 1, d]` cos of that position (half-split layout, YaRN factor included).
    pub cos: Tensor,
    /// `[1, 1, 1, d]` sin.
    pub sin: Tensor,
    /// The position as a number.
    pub pos: usize,
}

impl DecodePosition {
    /// Uploads the position tensors of `pos`.
    pub fn upload(
        mesh: &mut Mesh,
        att: &DeviceAttention,
        rope: &crate::gpt_oss::rope::Rope,
        pos: usize,
    ) -> Result<Self, DeviceError> {
        let cur_pos = DeviceKvCache::position_tensor(mesh, pos)?;
        let (cos, sin) = att.rope_tables(mesh, rope, pos, 1)?;
        Ok(DecodePosition { cur_pos, cos, sin, pos })
    }

    /// Frees the tensors.
    pub fn deallocate(&self, mesh: &mut Mesh) -> Result<(), DeviceError> {
        for t in [&self.cur_pos, &self.cos, &self.sin] {
            mesh.deallocate(t)?;
        }
        Ok(())
    }
}

/// One user per core, as the demo height-shards the per-user head tensors.
fn per_user_l1(users: usize) -> MemoryConfig {
    let last = u16::try_from(users.saturating_sub(1)).unwrap_or(0);
    MemoryConfig::L1HeightSharded { cores: CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(last, 0)) }
}

/// Decode attention of `x` (`[1, 1, 1, H]`, normed, replicated) at `position`: writes the
/// token's key and value into `cache` and returns `[1, 1, 1, H]` on every chip.
pub fn decode_attention(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    att: &DecodeAttention,
    x: &Tensor,
    cache: &LayerKv,
    page_table: Option<&Tensor>,
    position: &DecodePosition,
) -> Result<Tensor, DeviceError> {
    let a = &att.attn;
    let users = x.shape().get(2).copied().unwrap_or(0);
    if x.shape().len() != 4 || users != 1 {
        return Err(DeviceError::Placement(format!(
            "decode attention takes one user [1, 1, 1, H], got {:?}",
            x.shape()
        )));
    }
    let sharded = Out::l1().memory(per_user_l1(users));
    let xqkv = ops::matmul(mesh, x, &a.wqkv, MatmulArgs::default(), &Out::l1().named("attn.decode.xqkv"))?;
    let biased = ops::add(mesh, &xqkv, &a.wqkv_bias, &Out::l1().named("attn.decode.xqkv_bias"))?;
    mesh.deallocate(&xqkv)?;
    let heads = QkvHeads { num_heads: a.plan.heads, num_kv_heads: a.plan.kv_heads };
    let (q, k, v) =
        ops::nlp_create_qkv_heads_decode(mesh, &biased, heads, &sharded.clone().named("attn.decode.heads"))?;
    mesh.deallocate(&biased)?;
    let (q_rot, k_rot) = rotate_qk(mesh, &q, &k, &position.cos, &position.sin, &sharded, "attn.decode")?;
    ops::paged_update_cache(mesh, &cache.k, &k_rot, &position.cur_pos, page_table)?;
    ops::paged_update_cache(mesh, &cache.v, &v, &position.cur_pos, page_table)?;
    mesh.deallocate(&k_rot)?;
    mesh.deallocate(&v)?;
    let args = SdpaDecodeArgs { sliding_window: a.window, scale: Some(a.scale) };
    let sdpa_out = sharded.clone().named("attn.decode.sdpa");
    let attn = match page_table {
        None => ops::scaled_dot_product_attention_decode(
            mesh,
            &q_rot,
            &cache.k,
            &cache.v,
            &position.cur_pos,
            Some(&att.decode_sinks),
            args,
            &sdpa_out,
        )?,
        Some(table) => ops::paged_scaled_dot_product_attention_decode(
            mesh,
            &q_rot,
            &cache.k,
            &cache.v,
            table,
            &position.cur_pos,
            Some(&att.decode_sinks),
            args,
            &sdpa_out,
        )?,
    };
    mesh.deallocate(&q_rot)?;
    let concat = ops::nlp_concat_heads_decode(mesh, &attn, a.plan.heads, &Out::l1().named("attn.decode.concat"))?;
    mesh.deallocate(&attn)?;
    o_proj_allreduce(mesh, ccl_manager, a, &concat, &Out::l1(), "attn.decode", "attn.decode.allreduce")
}

/// Prefill attention of `x` (`[1, 1, S, H]`, positions `0..S` given by `cos`/`sin`) that also
/// fills positions `0..S` of `cache` (`fill_cache`, or `paged_fill_cache` with a page table),
/// with the real head ops (`nlp_create_qkv_heads`, `nlp_concat_heads`).
#[allow(clippy::too_many_arguments)]
pub fn prefill_attention_fill(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    att: &DeviceAttention,
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    cache: &LayerKv,
    page_table: Option<&Tensor>,
) -> Result<Tensor, DeviceError> {
    // The cache-filling prefill keeps its all-reduce call site's name (one cached
    // intermediate for every layer, as before the two prefill attentions became one).
    attention_prefill(mesh, ccl_manager, att, x, cos, sin, Some((cache, page_table)), "attn.allreduce")
}
