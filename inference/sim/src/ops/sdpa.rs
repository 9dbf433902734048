//! `ttnn.transformer.scaled_dot_product_attention` with attention sinks and a sliding window.

use super::{args_of, local_op, Out};
use crate::error::{SimError, SimResult};
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::Tensor;

/// Options of the SDPA op.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SdpaArgs {
    /// Causal mask (`j <= i`, queries aligned to the end of the keys).
    pub is_causal: bool,
    /// Keys visible to a query at most (`i - j < window`), if any.
    pub sliding_window: Option<usize>,
    /// Logit scale (`None`: `1/sqrt(head_dim)`).
    pub scale: Option<f32>,
}

/// Attention of `q [B,NH,S,D]` over `k, v [B,NKV,Skv,D]` (grouped heads), with one optional
/// sink logit per head added, unscaled, as an extra softmax column that is then dropped.
pub(crate) fn sdpa_host(
    q: &HostTensor,
    k: &HostTensor,
    v: &HostTensor,
    sinks: Option<&HostTensor>,
    args: SdpaArgs,
) -> SimResult<HostTensor> {
    let name = "ttnn.transformer.scaled_dot_product_attention";
    let (&[b, nh, s, d], &[bk, nkv, skv, dk]) = (q.shape.as_slice(), k.shape.as_slice()) else {
        return Err(SimError::invalid(name, "q, k and v must be rank 4"));
    };
    if bk != b || dk != d || v.shape != k.shape || nkv == 0 || nh % nkv != 0 {
        return Err(SimError::invalid(name, format!("q {:?} and k/v {:?} do not match", q.shape, k.shape)));
    }
    if let Some(sk) = sinks {
        if sk.len() != nh {
            return Err(SimError::invalid(name, format!("{} sink values for {nh} heads", sk.len())));
        }
    }
    let scale = args.scale.unwrap_or(1.0 / (d as f32).sqrt());
    let group = nh / nkv;
    let offset = skv.saturating_sub(s);
    let mut out = vec![0f32; b * nh * s * d];
    let mut logits = vec![0f32; skv];
    for bi in 0..b {
        for h in 0..nh {
            let kh = h / group;
            for i in 0..s {
                let qi = &q.data[((bi * nh + h) * s + i) * d..][..d];
                let pos = i + offset;
                let mut max = sinks.map(|sk| sk.data[h]).unwrap_or(f32::NEG_INFINITY);
                for (j, l) in logits.iter_mut().enumerate() {
                    let visible = (!args.is_causal || j <= pos) && args.sliding_window.is_none_or(|w| pos < j + w);
                    *l = if visible {
                        let kj = &k.data[((bi * nkv + kh) * skv + j) * d..][..d];
                        qi.iter().zip(kj).map(|(a, c)| a * c).sum::<f32>() * scale
                    } else {
                        f32::NEG_INFINITY
                    };
                    max = max.max(*l);
                }
                if max == f32::NEG_INFINITY {
                    continue;
                }
                let mut denom = sinks.map(|sk| (sk.data[h] - max).exp()).unwrap_or(0.0);
                for l in logits.iter_mut() {
                    *l = (*l - max).exp();
                    denom += *l;
                }
                let o = &mut out[((bi * nh + h) * s + i) * d..][..d];
                for (j, p) in logits.iter().enumerate() {
                    if *p == 0.0 {
                        continue;
                    }
                    let vj = &v.data[((bi * nkv + kh) * skv + j) * d..][..d];
                    for (oo, vv) in o.iter_mut().zip(vj) {
                        *oo += p / denom * vv;
                    }
                }
            }
        }
    }
    HostTensor::new(q.shape.clone(), out)
}

/// `ttnn.transformer.scaled_dot_product_attention(q, k, v, is_causal, sliding_window_size,
/// attention_sink=sinks, scale)`.
pub fn scaled_dot_product_attention(
    mesh: &mut Mesh,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    sinks: Option<&Tensor>,
    args: SdpaArgs,
    out: &Out,
) -> SimResult<Tensor> {
    let name = "ttnn.transformer.scaled_dot_product_attention";
    let spec = out.spec(q.shape(), q);
    let mut inputs = vec![q, k, v];
    inputs.extend(sinks);
    let text = args_of(&[
        ("is_causal", args.is_causal.to_string()),
        ("sliding_window_size", format!("{:?}", args.sliding_window)),
        ("attention_sink", sinks.is_some().to_string()),
    ]);
    local_op(mesh, name, text, &inputs, spec, out, |ins| sdpa_host(&ins[0], &ins[1], &ins[2], ins.get(3), args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_takes_probability_mass_and_the_window_hides_old_keys() {
        let q = HostTensor::new(vec![1, 1, 2, 2], vec![0.0; 4]).unwrap();
        let k = q.clone();
        let v = HostTensor::new(vec![1, 1, 2, 2], vec![1.0, 1.0, 3.0, 3.0]).unwrap();
        let causal = SdpaArgs { is_causal: true, ..Default::default() };
        let plain = sdpa_host(&q, &k, &v, None, causal).unwrap();
        // Row 1 sees both keys equally.
        assert_eq!(plain.data[2], 2.0);
        let sink = HostTensor::new(vec![1], vec![0.0]).unwrap();
        let with_sink = sdpa_host(&q, &k, &v, Some(&sink), causal).unwrap();
        // One sink column of equal logit: row 0 keeps half the mass, row 1 two thirds.
        assert!((with_sink.data[0] - 0.5).abs() < 1e-6);
        assert!((with_sink.data[2] - 4.0 / 3.0).abs() < 1e-6);
        let windowed = sdpa_host(&q, &k, &v, None, SdpaArgs { sliding_window: Some(1), ..causal }).unwrap();
        assert_eq!(windowed.data[2], 3.0);
    }
}
