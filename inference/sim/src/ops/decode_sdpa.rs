//! `ttnn.transformer.scaled_dot_product_attention_decode` and its paged form: one query row
//! per user attends over that user's KV cache up to its current position.
//!
//! The decode kernel multiplies the logits by `scale` inside the exponent
//! (`exp((q.k - max) * scale)`), and treats the attention sink as one more raw logit that the
//! same multiply scales; that is why the demo passes `sink / scale` here while the prefill
//! SDPA takes the raw sink. Both reproduce HF's "sink added to the scaled logits".

use super::{args_of, local_op, Out};
use crate::error::{SimError, SimResult};
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::Tensor;

/// Options of the decode SDPA.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SdpaDecodeArgs {
    /// Keys visible to the query at most, the query's own position included, if any.
    pub sliding_window: Option<usize>,
    /// Logit scale (`None`: `1/sqrt(head_dim)`).
    pub scale: Option<f32>,
}

/// The cache of one user and kv head as a function of the position.
struct CacheView<'a> {
    data: &'a [f32],
    shape: [usize; 4],
    table: Option<&'a HostTensor>,
}

impl CacheView<'_> {
    fn row(&self, user: usize, head: usize, pos: usize) -> Option<&[f32]> {
        let [first, heads, rows, d] = self.shape;
        let (slot, row) = match self.table {
            None => (user, pos),
            Some(t) => {
                let per_user = t.last_dim();
                let logical = pos / rows;
                if logical >= per_user {
                    return None;
                }
                (*t.data.get(user * per_user + logical)? as usize, pos % rows)
            }
        };
        if slot >= first || row >= rows {
            return None;
        }
        let at = ((slot * heads + head) * rows + row) * d;
        self.data.get(at..at + d)
    }
}

/// Decode attention of `q` (`[1, B, heads, d]`) over the caches; `positions` (`[B]`) is each
/// user's current position (its new key is already in the cache); `sinks` (`[heads, w]`)
/// holds each head's sink divided by the scale in column 0.
fn sdpa_decode_host(
    name: &str,
    ins: &[HostTensor],
    paged: bool,
    has_sinks: bool,
    args: SdpaDecodeArgs,
) -> SimResult<HostTensor> {
    let (q, k, v, pos) = (&ins[0], &ins[1], &ins[2], &ins[3]);
    let table = paged.then(|| &ins[4]);
    let sinks = has_sinks.then(|| &ins[if paged { 5 } else { 4 }]);
    let (&[1, users, nh, d], Ok(shape)) = (q.shape.as_slice(), <[usize; 4]>::try_from(k.shape.as_slice())) else {
        return Err(SimError::invalid(name, format!("q {:?} / cache {:?} are not rank 4", q.shape, k.shape)));
    };
    let nkv = shape[1];
    if nh == 0
        || shape.contains(&0)
        || shape[3] != d
        || v.shape != k.shape
        || nkv == 0
        || nh % nkv != 0
        || pos.len() != users
    {
        return Err(SimError::invalid(
            name,
            format!("q {:?}, cache {:?}, positions {:?} do not match", q.shape, k.shape, pos.shape),
        ));
    }
    if let Some(s) = sinks {
        if s.len() < nh || s.len() % nh != 0 {
            return Err(SimError::invalid(name, format!("sinks {:?} for {nh} heads", s.shape)));
        }
    }
    let keys = CacheView { data: &k.data, shape, table };
    let values = CacheView { data: &v.data, shape, table };
    let scale = args.scale.unwrap_or(1.0 / (d as f32).sqrt());
    let group = nh / nkv;
    let mut out = vec![0f32; users * nh * d];
    for user in 0..users {
        let cur = pos.data[user] as usize;
        let first = args.sliding_window.map_or(0, |w| (cur + 1).saturating_sub(w));
        for h in 0..nh {
            let kh = h / group;
            let qh = &q.data[(user * nh + h) * d..][..d];
            let mut raw = Vec::with_capacity(cur + 1 - first);
            for j in first..=cur {
                let kj = keys.row(user, kh, j).ok_or_else(|| {
                    SimError::invalid(name, format!("position {j} of user {user} is outside the cache"))
                })?;
                raw.push(qh.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>());
            }
            let sink = sinks.map(|s| s.data[h * (s.len() / nh)]);
            let max = raw.iter().copied().chain(sink).fold(f32::NEG_INFINITY, f32::max);
            let mut denom = sink.map_or(0.0, |s| ((s - max) * scale).exp());
            for l in raw.iter_mut() {
                *l = ((*l - max) * scale).exp();
                denom += *l;
            }
            let o = &mut out[(user * nh + h) * d..][..d];
            for (j, p) in (first..=cur).zip(&raw) {
                if let Some(vj) = values.row(user, kh, j) {
                    for (oo, vv) in o.iter_mut().zip(vj) {
                        *oo += p / denom * vv;
                    }
                }
            }
        }
    }
    HostTensor::new(q.shape.clone(), out)
}

fn run(
    mesh: &mut Mesh,
    name: &str,
    inputs: Vec<&Tensor>,
    paged: bool,
    has_sinks: bool,
    args: SdpaDecodeArgs,
    out: &Out,
) -> SimResult<Tensor> {
    let q = inputs[0];
    let spec = out.spec(q.shape(), q);
    let text = args_of(&[
        ("sliding_window_size", format!("{:?}", args.sliding_window)),
        ("scale", format!("{:?}", args.scale)),
        ("attention_sink", has_sinks.to_string()),
    ]);
    local_op(mesh, name, text, &inputs, spec, out, |ins| sdpa_decode_host(name, ins, paged, has_sinks, args))
}

/// `ttnn.transformer.scaled_dot_product_attention_decode(q, k_cache, v_cache,
/// cur_pos_tensor=positions, sliding_window_size, attention_sink=sinks, scale)`.
///
/// `q` is `[1, B, heads, d]`, the caches `[B, kv_heads, max_seq, d]`, `positions` `[B]`
/// uint32, `sinks` `[heads, w]` with `sink / scale` in column 0. Returns `[1, B, heads, d]`.
#[allow(clippy::too_many_arguments)]
pub fn scaled_dot_product_attention_decode(
    mesh: &mut Mesh,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    positions: &Tensor,
    sinks: Option<&Tensor>,
    args: SdpaDecodeArgs,
    out: &Out,
) -> SimResult<Tensor> {
    let name = "ttnn.transformer.scaled_dot_product_attention_decode";
    let mut inputs = vec![q, k_cache, v_cache, positions];
    inputs.extend(sinks);
    run(mesh, name, inputs, false, sinks.is_some(), args, out)
}

/// `ttnn.transformer.paged_scaled_dot_product_attention_decode(q, k_cache, v_cache,
/// page_table_tensor, cur_pos_tensor=positions, ...)`: as
/// [`scaled_dot_product_attention_decode`] over `[blocks, kv_heads, block, d]` caches.
#[allow(clippy::too_many_arguments)]
pub fn paged_scaled_dot_product_attention_decode(
    mesh: &mut Mesh,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    page_table: &Tensor,
    positions: &Tensor,
    sinks: Option<&Tensor>,
    args: SdpaDecodeArgs,
    out: &Out,
) -> SimResult<Tensor> {
    let name = "ttnn.transformer.paged_scaled_dot_product_attention_decode";
    let mut inputs = vec![q, k_cache, v_cache, positions, page_table];
    inputs.extend(sinks);
    run(mesh, name, inputs, true, sinks.is_some(), args, out)
}
