//! Prefill attention on the mesh (`tt/attention/prefill.py`), per chip with TP over the
//! columns: fused QKV linear with bias, head split, rotary embedding, SDPA with sinks and the
//! layer's window, head concat, o_proj matmul, bias on TP rank 0 only, then the TP all-reduce
//! as reduce-scatter + all-gather.

use super::allreduce::allreduce;
use super::error::DeviceError;
use super::plan::TpPlan;
use super::upload::{host4, put, rank0_bias, transpose};
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::rope::Rope;
use crate::gpt_oss::weights::AttentionWeights;
use crate::sim::ccl::CclManager;
use crate::sim::ops::{self, MatmulArgs, Out, SdpaArgs};
use crate::sim::{Distribution, HostTensor, Mesh, Tensor};
use ttsan_events::Role;

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
        let o_bias = rank0_bias(mesh, &plan, &[1, 1, 1, h], &w.o_bias.data, &format!("{prefix}.o_proj_bias"))?;
        let sinks = HostTensor::new(vec![1, config.num_attention_heads, 1, 1], w.sinks.data.clone())?;
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

/// Splits the fused `[1, 1, S, w]` QKV output into `[1, heads, S, d]` starting at column
/// `first`. Stands in for `nlp_create_qkv_heads` (slices plus a concat over heads).
fn heads(
    mesh: &mut Mesh,
    xqkv: &Tensor,
    first: usize,
    count: usize,
    d: usize,
    name: &str,
) -> Result<Tensor, DeviceError> {
    let s = xqkv.shape()[2];
    let mut parts = Vec::with_capacity(count);
    for h in 0..count {
        let lo = first + h * d;
        parts.push(ops::slice(
            mesh,
            xqkv,
            &[0, 0, 0, lo],
            &[1, 1, s, lo + d],
            &Out::dram().named(&format!("{name}.head")),
        )?);
    }
    let refs: Vec<&Tensor> = parts.iter().collect();
    let out = ops::concat(mesh, &refs, 1, &Out::dram().named(name))?;
    for p in &parts {
        mesh.deallocate(p)?;
    }
    Ok(out)
}

/// Joins `[1, heads, S, d]` into `[1, 1, S, heads * d]`. Stands in for `nlp_concat_heads`.
fn concat_heads(mesh: &mut Mesh, x: &Tensor) -> Result<Tensor, DeviceError> {
    let (nh, s, d) = (x.shape()[1], x.shape()[2], x.shape()[3]);
    let mut parts = Vec::with_capacity(nh);
    for h in 0..nh {
        parts.push(ops::slice(mesh, x, &[0, h, 0, 0], &[1, h + 1, s, d], &Out::dram().named("attn.concat.head"))?);
    }
    let refs: Vec<&Tensor> = parts.iter().collect();
    let out = ops::concat(mesh, &refs, 3, &Out::dram().named("attn.concat_heads"))?;
    for p in &parts {
        mesh.deallocate(p)?;
    }
    Ok(out)
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
    let d = att.head_dim;
    let (nh, nkv) = (att.plan.heads, att.plan.kv_heads);
    let (q_rot, k_rot, v) = rotated_qkv(mesh, att, x, cos, sin, |mesh, xqkv| {
        let q = heads(mesh, xqkv, 0, nh, d, "attn.q")?;
        let k = heads(mesh, xqkv, nh * d, nkv, d, "attn.k")?;
        let v = heads(mesh, xqkv, (nh + nkv) * d, nkv, d, "attn.v")?;
        Ok((q, k, v))
    })?;
    let attn = causal_sdpa(mesh, att, &q_rot, &k_rot, &v)?;
    let concat = concat_heads(mesh, &attn)?;
    mesh.deallocate(&attn)?;
    let allreduce_name = format!("layer{}.attn.tp_allreduce", att.layer);
    o_proj_allreduce(mesh, ccl_manager, att, &concat, &Out::dram(), "attn", &allreduce_name)
}

/// The fused QKV linear, the head split `split` makes of its output, and rotary on q and k:
/// the prologue both prefill attentions share. Returns `(q_rot, k_rot, v)`, having freed the
/// rest in the order the traces record.
pub(super) fn rotated_qkv(
    mesh: &mut Mesh,
    att: &DeviceAttention,
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    split: impl FnOnce(&mut Mesh, &Tensor) -> Result<(Tensor, Tensor, Tensor), DeviceError>,
) -> Result<(Tensor, Tensor, Tensor), DeviceError> {
    let xqkv =
        ops::linear(mesh, x, &att.wqkv, Some(&att.wqkv_bias), MatmulArgs::default(), &Out::dram().named("attn.xqkv"))?;
    let (q, k, v) = split(mesh, &xqkv)?;
    mesh.deallocate(&xqkv)?;
    let (q_rot, k_rot) = rotate_qk(mesh, &q, &k, cos, sin, &Out::dram(), "attn")?;
    Ok((q_rot, k_rot, v))
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
