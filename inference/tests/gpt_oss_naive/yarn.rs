//! YaRN cos/sin recomputed from the formulas (f64), in the `cat(freqs, freqs)` layout.

use ttsan_inference::gpt_oss::config::GptOssConfig;

/// cos and sin tables `[positions, head_dim]` (each half repeated), scaled by YaRN's mscale.
pub fn yarn_cos_sin(config: &GptOssConfig, positions: usize) -> (Vec<f64>, Vec<f64>) {
    let dim = config.head_dim;
    let base = config.rope_theta().unwrap_or(150000.0);
    let rs = &config.rope_scaling;
    let is_yarn = rs.rope_type == "yarn";
    let s = if is_yarn { rs.factor.unwrap_or(1.0) } else { 1.0 };
    let orig = rs.original_max_position_embeddings.unwrap_or(config.max_position_embeddings) as f64;
    // A frequency index whose wavelength fits `r` times into the original context.
    let index_for_rotations = |r: f64| {
        let wavelength = orig / r;
        let theta_index = (wavelength / (2.0 * std::f64::consts::PI)).ln() / base.ln();
        theta_index * dim as f64 / 2.0
    };
    let mut lo = index_for_rotations(rs.beta_fast.unwrap_or(32.0));
    let mut hi = index_for_rotations(rs.beta_slow.unwrap_or(1.0));
    if rs.truncate.unwrap_or(true) {
        lo = lo.floor();
        hi = hi.ceil();
    }
    lo = lo.max(0.0);
    hi = hi.min((dim - 1) as f64);
    if hi == lo {
        hi += 0.001;
    }
    let mscale = match (rs.attention_factor, rs.mscale, rs.mscale_all_dim) {
        (Some(a), _, _) => a,
        _ if !is_yarn || s <= 1.0 => 1.0,
        (None, Some(m), Some(ma)) if m != 0.0 && ma != 0.0 => (0.1 * m * s.ln() + 1.0) / (0.1 * ma * s.ln() + 1.0),
        _ => 0.1 * s.ln() + 1.0,
    };
    let half = dim / 2;
    let theta: Vec<f64> = (0..half)
        .map(|i| {
            let original = base.powf(-(2.0 * i as f64) / dim as f64);
            if !is_yarn {
                return original;
            }
            // gamma = 1 keeps the original frequency (fast dims), gamma = 0 interpolates by s.
            let gamma = 1.0 - ((i as f64 - lo) / (hi - lo)).clamp(0.0, 1.0);
            original / s * (1.0 - gamma) + original * gamma
        })
        .collect();
    let mut cos = vec![0.0; positions * dim];
    let mut sin = vec![0.0; positions * dim];
    for p in 0..positions {
        for j in 0..dim {
            let angle = p as f64 * theta[j % half];
            cos[p * dim + j] = angle.cos() * mscale;
            sin[p * dim + j] = angle.sin() * mscale;
        }
    }
    (cos, sin)
}
