//! Pearson correlation as tt-metal's `comp_pcc` (`models/common/utility_functions.py`) reports it.

use super::error::{CommonError, Result};

/// PCC of `golden` and `calculated`, following `comp_pcc`'s special cases: NaN/inf entries are
/// zeroed first; both all-NaN gives 1 and one all-NaN gives 0; one all-zero and the other not
/// gives 0; identical arrays give 1; a constant array (undefined correlation, which numpy masks)
/// gives 1. Accumulates in f64.
pub fn pcc(golden: &[f32], calculated: &[f32]) -> Result<f64> {
    if golden.len() != calculated.len() {
        return Err(CommonError::LengthMismatch { left: golden.len(), right: calculated.len() });
    }
    let all_nan = |v: &[f32]| !v.is_empty() && v.iter().all(|x| x.is_nan());
    match (all_nan(golden), all_nan(calculated)) {
        (true, true) => return Ok(1.0),
        (true, false) | (false, true) => return Ok(0.0),
        (false, false) => {}
    }
    let any_nonzero = |v: &[f32]| v.iter().any(|&x| x != 0.0);
    if any_nonzero(golden) != any_nonzero(calculated) {
        return Ok(0.0);
    }
    let clean = |x: f32| if x.is_finite() { f64::from(x) } else { 0.0 };
    if golden.iter().zip(calculated).all(|(&a, &b)| clean(a) == clean(b)) {
        return Ok(1.0);
    }
    if golden.len() == 1 {
        return Ok(0.0);
    }
    let n = golden.len() as f64;
    let mean_a = golden.iter().map(|&x| clean(x)).sum::<f64>() / n;
    let mean_b = calculated.iter().map(|&x| clean(x)).sum::<f64>() / n;
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (&a, &b) in golden.iter().zip(calculated) {
        let (da, db) = (clean(a) - mean_a, clean(b) - mean_b);
        cov += da * db;
        var_a += da * da;
        var_b += db * db;
    }
    if var_a == 0.0 || var_b == 0.0 {
        return Ok(1.0);
    }
    // numpy's corrcoef clips to [-1, 1]; so do we.
    Ok((cov / (var_a.sqrt() * var_b.sqrt())).clamp(-1.0, 1.0))
}

/// The largest absolute difference (NaN if either side has a NaN where the other does not).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> Result<f32> {
    if a.len() != b.len() {
        return Err(CommonError::LengthMismatch { left: a.len(), right: b.len() });
    }
    Ok(a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, |m, d| if d.is_nan() { f32::NAN } else { m.max(d) }))
}
