//! Prefill attention on the mesh (`tt/attention/prefill.py`), per chip with TP over the
//! columns: fused QKV linear with bias, head split, rotary embedding, SDPA with sinks and the
//! layer's window, head concat, o_proj matmul, bias on TP rank 0 only, then the TP all-reduce
//! as reduce-scatter + all-gather.

use super::allreduce::allreduce;
use super::decode_cache::LayerKv;
use super::error::DeviceError;
use super::plan::TpPlan;
use crate::common::upload::{host4, put, rank0_bias, transpose};
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::rope::Rope;
use crate::gpt_oss::weights::AttentionWeights;
use ttsan_events::Role;
use ttsan_sim::ccl::CclManager;
use ttsan_sim::ops::QkvHeads;
use ttsan_sim::ops::{self, MatmulArgs, Out, SdpaArgs};
use ttsan_sim::{Distribution, HostTensor, Mesh, Tensor};

/// One layer's attention weights on the mesh, placed as tt-metal places them.
#[derive(Debug, Clone)]
pub struct DeviceAttention {
    /// `[1, 1, H, tp * w]`, column-parallel; chip r holds `[Q_r | K_r | V_r]`, `w` wide.
    pub wqkv: Tensor,
    /// `[1, 1, 1, tp * w]`, laid out like `wqkv`.
    pub wqkv_bias: Tensor,
    /// `[1, 1, nh * d, H]` (HF's o_proj transposed), row-parallel.
    pub o_proj: Tensor,
    /// `[1, 1, 1, H]` per chip: the bias on TP rank 0, zeros elsewhere, so the all-reduce adds
    /// it once.
    pub o_bias: Tensor,
    /// `[1, nh, 1, 1]` sharded on the head dim: the raw (unscaled) sinks the prefill SDPA takes.
    pub sinks: Tensor,
    /// Per-chip sizes.
    pub plan: TpPlan,
    /// Head width.
    pub head_dim: usize,
    /// The layer's window, `None` for full attention.
    pub window: Option<usize>,
    /// The layer index (names the buffers, `layer{N}.attn.*`).
    pub layer: usize,
    /// `head_dim ** -0.5`.
    pub scale: f32,
}

impl DeviceAttention {
    /// Uploads layer `layer`'s attention for `config` on `mesh`, in the order of tt-metal's
    /// `load_attention_weights` (`models/demos/gpt_oss/tt/attention/weights.py`): wqkv,
    /// wqkv_bias, o_proj, o_proj_bias, then the sinks (its decode sinks, uploaded just before
    /// the sinks there, are [`super::DecodeAttention`]'s). Addresses follow from the order.
    pub fn upload(
        mesh: &mut Mesh,
        config: &GptOssConfig,
        w: &AttentionWeights,
        layer: usize,
    ) -> Result<Self, DeviceError> {
        let plan = TpPlan::new(config, mesh)?;
        let (h, d) = (config.hidden_size, config.head_dim);
        let (q_width, kv_width) = (config.q_width(), config.kv_width());
        let (q_t, k_t, v_t) = (
            transpose(&w.q_proj.data, q_width, h),
            transpose(&w.k_proj.data, kv_width, h),
            transpose(&w.v_proj.data, kv_width, h),
        );
        let (q_loc, kv_loc) = (plan.heads * d, plan.kv_heads * d);
        let per_chip = q_loc + 2 * kv_loc;
        // Row i of the fused weight, rank by rank: that rank's query, key and value columns.
        let fuse = |q: &[f32], k: &[f32], v: &[f32], rows: usize| -> Vec<f32> {
            if q.is_empty() || k.is_empty() || v.is_empty() {
                return Vec::new(); // shape-only weights
            }
            let mut out = Vec::with_capacity(rows * per_chip * plan.tp);
            for i in 0..rows {
                for r in 0..plan.tp {
                    out.extend_from_slice(&q[i * q_width + r * q_loc..i * q_width + (r + 1) * q_loc]);
                    out.extend_from_slice(&k[i * kv_width + r * kv_loc..i * kv_width + (r + 1) * kv_loc]);
                    out.extend_from_slice(&v[i * kv_width + r * kv_loc..i * kv_width + (r + 1) * kv_loc]);
                }
            }
            out
        };
        let prefix = format!("layer{layer}.attn");
        let wqkv = host4(h, per_chip * plan.tp, fuse(&q_t, &k_t, &v_t, h))?;
        let wqkv_bias = host4(1, per_chip * plan.tp, fuse(&w.q_bias.data, &w.k_bias.data, &w.v_bias.data, 1))?;
        let o_proj = host4(q_width, h, transpose(&w.o_proj.data, h, q_width))?;
        let columns = Distribution::Shard { axis: 1, dim: 3 };
        let wqkv = put(mesh, &wqkv, &columns, &format!("{prefix}.wqkv"), Role::Weight)?;
        let wqkv_bias = put(mesh, &wqkv_bias, &columns, &format!("{prefix}.wqkv_bias"), Role::Weight)?;
        let o_proj =
            put(mesh, &o_proj, &Distribution::Shard { axis: 1, dim: 2 }, &format!("{prefix}.o_proj"), Role::Weight)?;
        let o_bias = rank0_bias(mesh, plan.tp, &[1, 1, 1, h], &w.o_bias.data, &format!("{prefix}.o_proj_bias"))?;
        let sinks = HostTensor::values_or_shape(vec![1, config.num_attention_heads, 1, 1], w.sinks.data.clone())?;
        let sinks =
            put(mesh, &sinks, &Distribution::Shard { axis: 1, dim: 1 }, &format!("{prefix}.sinks"), Role::Weight)?;
        Ok(DeviceAttention {
            wqkv,
            wqkv_bias,
            o_proj,
            o_bias,
            sinks,
            plan,
            head_dim: d,
            window: config.window(layer),
            layer,
            scale: config.attention_scale(),
        })
    }

    /// Uploads the `[1, 1, S, d]` cos and sin tables of positions `start..start + len` in the
    /// half-split layout the rotary op takes (each half repeated), YaRN factor included.
    pub fn rope_tables(
        &self,
        mesh: &mut Mesh,
        rope: &Rope,
        start: usize,
        len: usize,
    ) -> Result<(Tensor, Tensor), DeviceError> {
        let d = self.head_dim;
        let (mut c, mut s) = (vec![0.0; d / 2], vec![0.0; d / 2]);
        let (mut cos, mut sin) = (Vec::with_capacity(len * d), Vec::with_capacity(len * d));
        for p in start..start + len {
            rope.cos_sin(p, &mut c, &mut s);
            for _ in 0..2 {
                cos.extend_from_slice(&c);
                sin.extend_from_slice(&s);
            }
        }
        let cos = put(mesh, &host4(len, d, cos)?, &Distribution::Replicate, "rope.cos", Role::Weight)?;
        let sin = put(mesh, &host4(len, d, sin)?, &Distribution::Replicate, "rope.sin", Role::Weight)?;
        Ok((cos, sin))
    }
}

/// Prefill attention of `x` (`[1, 1, S, H]`, normed, replicated), positions given by the
/// `cos`/`sin` tables. Returns `[1, 1, S, H]`, the same on every chip of a row.
pub fn prefill_attention(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    att: &DeviceAttention,
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
) -> Result<Tensor, DeviceError> {
    let allreduce_name = format!("layer{}.attn.tp_allreduce", att.layer);
    attention_prefill(mesh, ccl_manager, att, x, cos, sin, None, &allreduce_name)
}

/// Where a prefill writes its keys and values: a layer's KV cache, paged when a page table is
/// given.
pub(super) type CacheFill<'a> = Option<(&'a LayerKv, Option<&'a Tensor>)>;

/// The one prefill attention: the fused QKV linear, the real head split
/// (`nlp_create_qkv_heads`), rotary on q and k, the cache fill when `fill` names a cache
/// (`fill_cache`, or `paged_fill_cache` with a page table), causal SDPA with the sinks,
/// `nlp_concat_heads`, o_proj and the TP all-reduce named `allreduce_name`. Frees every
/// intermediate in the order the traces record.
#[allow(clippy::too_many_arguments)]
pub(super) fn attention_prefill(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    att: &DeviceAttention,
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    fill: CacheFill<'_>,
    allreduce_name: &str,
) -> Result<Tensor, DeviceError> {
    let xqkv =
        ops::linear(mesh, x, &att.wqkv, Some(&att.wqkv_bias), MatmulArgs::default(), &Out::dram().named("attn.xqkv"))?;
    let heads = QkvHeads { num_heads: att.plan.heads, num_kv_heads: att.plan.kv_heads };
    let (q, k, v) = ops::nlp_create_qkv_heads(mesh, &xqkv, heads, &Out::dram().named("attn.heads"))?;
    mesh.deallocate(&xqkv)?;
    let (q_rot, k_rot) = rotate_qk(mesh, &q, &k, cos, sin, &Out::dram(), "attn")?;
    if let Some((cache, page_table)) = fill {
        for (c, t) in [(&cache.k, &k_rot), (&cache.v, &v)] {
            match page_table {
                None => ops::fill_cache(mesh, c, t, 0)?,
                Some(table) => ops::paged_fill_cache(mesh, c, t, table, 0)?,
            }
        }
    }
    let attn = causal_sdpa(mesh, att, &q_rot, &k_rot, &v)?;
    let concat = ops::nlp_concat_heads(mesh, &attn, &Out::dram().named("attn.concat_heads"))?;
    mesh.deallocate(&attn)?;
    o_proj_allreduce(mesh, ccl_manager, att, &concat, &Out::dram(), "attn", allreduce_name)
}

/// Rotary embedding of `q` then `k` into `{prefix}.q_rot` / `{prefix}.k_rot` placed as `out`,
/// then frees `q` and `k`; prefill and decode attention both take this step.
pub(super) fn rotate_qk(
    mesh: &mut Mesh,
    q: &Tensor,
    k: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    out: &Out,
    prefix: &str,
) -> Result<(Tensor, Tensor), DeviceError> {
    let q_rot = ops::rotary_embedding(mesh, q, cos, sin, &out.clone().named(&format!("{prefix}.q_rot")))?;
    let k_rot = ops::rotary_embedding(mesh, k, cos, sin, &out.clone().named(&format!("{prefix}.k_rot")))?;
    mesh.deallocate(q)?;
    mesh.deallocate(k)?;
    Ok((q_rot, k_rot))
}

/// Causal SDPA with the sinks and the layer's window into `attn.sdpa`, then frees its inputs.
pub(super) fn causal_sdpa(
    mesh: &mut Mesh,
    att: &DeviceAttention,
    q_rot: &Tensor,
    k_rot: &Tensor,
    v: &Tensor,
) -> Result<Tensor, DeviceError> {
    let sdpa_args = SdpaArgs { is_causal: true, sliding_window: att.window, scale: Some(att.scale) };
    let attn = ops::scaled_dot_product_attention(
        mesh,
        q_rot,
        k_rot,
        v,
        Some(&att.sinks),
        sdpa_args,
        &Out::dram().named("attn.sdpa"),
    )?;
    for t in [q_rot, k_rot, v] {
        mesh.deallocate(t)?;
    }
    Ok(attn)
}

/// The o_proj matmul of the concatenated heads, its bias and the TP all-reduce named
/// `allreduce_name`; intermediates go to `{prefix}.o_proj` / `{prefix}.o_proj_bias` placed as
/// `out`. Frees `concat` and every intermediate, so only the reduced output is left.
pub(super) fn o_proj_allreduce(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    att: &DeviceAttention,
    concat: &Tensor,
    out: &Out,
    prefix: &str,
    allreduce_name: &str,
) -> Result<Tensor, DeviceError> {
    let o_proj_out = out.clone().named(&format!("{prefix}.o_proj"));
    let partial = ops::matmul(mesh, concat, &att.o_proj, MatmulArgs::default(), &o_proj_out)?;
    mesh.deallocate(concat)?;
    let biased = ops::add(mesh, &partial, &att.o_bias, &out.clone().named(&format!("{prefix}.o_proj_bias")))?;
    mesh.deallocate(&partial)?;
    let reduced = allreduce(mesh, ccl_manager, &biased, allreduce_name)?;
    mesh.deallocate(&biased)?;
    Ok(reduced)
}
