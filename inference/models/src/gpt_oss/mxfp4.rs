//! MXFP4 expert weights: dequantization exactly as HF's `convert_moe_packed_tensors`, and the
//! inverse used to write MXFP4 test checkpoints.
//!
//! Layout (released checkpoints): `*_blocks` `[E, R, G, 16]` u8, two FP4 e2m1 codes per byte, low
//! nibble first; `*_scales` `[E, R, G]` u8, a power-of-two exponent biased by 127 shared by the 32
//! values of a group. Dequantized rows are `[E, R, G*32]`, then HF transposes dims 1 and 2, giving
//! the input-major `[E, G*32, R]` the experts multiply with.

use super::tensor::Tensor;

/// The FP4 e2m1 code points, indexed by the 4-bit code (sign in bit 3).
pub const FP4_VALUES: [f32; 16] =
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0];

/// Values per scale group (16 bytes of two codes each).
pub const GROUP: usize = 32;

/// Why a pair of MXFP4 tensors cannot be dequantized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mxfp4Error {
    /// Blocks must be `[E, R, G, B]`.
    #[error("blocks have rank {0}, expected 4 ([experts, rows, groups, bytes])")]
    BlocksRank(usize),
    /// Scales must equal the blocks' shape without its last dimension.
    #[error("scales shape {scales:?} does not match blocks shape {blocks:?} without its last dimension")]
    ScalesShape {
        /// Blocks shape.
        blocks: Vec<usize>,
        /// Scales shape.
        scales: Vec<usize>,
    },
    /// The byte buffers are shorter or longer than the shapes say.
    #[error("buffer of {found} bytes for a shape of {expected}")]
    BufferSize {
        /// Bytes the shape implies.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// Quantization needs the input dimension in whole groups of 32.
    #[error("input dimension {0} is not a multiple of {GROUP}")]
    NotGrouped(usize),
}

/// Dequantizes `blocks` / `scales` into the input-major `[E, G*B*2, R]` f32 tensor HF produces.
pub fn dequantize(
    blocks: &[u8],
    blocks_shape: &[usize],
    scales: &[u8],
    scales_shape: &[usize],
) -> Result<Tensor, Mxfp4Error> {
    let &[experts, rows, groups, bytes] = blocks_shape else {
        return Err(Mxfp4Error::BlocksRank(blocks_shape.len()));
    };
    if scales_shape != [experts, rows, groups] {
        return Err(Mxfp4Error::ScalesShape { blocks: blocks_shape.to_vec(), scales: scales_shape.to_vec() });
    }
    let expected = experts * rows * groups * bytes;
    if blocks.len() != expected {
        return Err(Mxfp4Error::BufferSize { expected, found: blocks.len() });
    }
    if scales.len() != experts * rows * groups {
        return Err(Mxfp4Error::BufferSize { expected: experts * rows * groups, found: scales.len() });
    }
    let cols = groups * bytes * 2;
    let mut out = Tensor::zeros(&[experts, cols, rows]);
    for e in 0..experts {
        for r in 0..rows {
            for g in 0..groups {
                let group_index = (e * rows + r) * groups + g;
                // f64 power so that 0 * 2^128 stays 0 like torch.ldexp, while 6 * 2^128 still
                // overflows to inf as it does in bf16.
                let pow = 2f64.powi(i32::from(scales[group_index]) - 127);
                let group_bytes = &blocks[group_index * bytes..(group_index + 1) * bytes];
                for (b, &byte) in group_bytes.iter().enumerate() {
                    let col = (g * bytes + b) * 2;
                    let lo = (f64::from(FP4_VALUES[usize::from(byte & 0x0F)]) * pow) as f32;
                    let hi = (f64::from(FP4_VALUES[usize::from(byte >> 4)]) * pow) as f32;
                    out.data[(e * cols + col) * rows + r] = lo;
                    out.data[(e * cols + col + 1) * rows + r] = hi;
                }
            }
        }
    }
    Ok(out)
}

/// Quantized form of an input-major `[E, C, R]` tensor: blocks `[E, R, C/32, 16]` and scales
/// `[E, R, C/32]`, returned with their shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantized {
    /// Packed FP4 codes.
    pub blocks: Vec<u8>,
    /// Shape of `blocks`.
    pub blocks_shape: Vec<usize>,
    /// Biased exponents.
    pub scales: Vec<u8>,
    /// Shape of `scales`.
    pub scales_shape: Vec<usize>,
}

/// Quantizes an input-major `[E, C, R]` tensor to MXFP4 (round to the nearest code, one
/// exponent per group chosen so the group's largest magnitude fits under 6).
pub fn quantize(t: &Tensor) -> Result<Quantized, Mxfp4Error> {
    let &[experts, cols, rows] = t.shape.as_slice() else {
        return Err(Mxfp4Error::BlocksRank(t.shape.len()));
    };
    if cols % GROUP != 0 {
        return Err(Mxfp4Error::NotGrouped(cols));
    }
    let groups = cols / GROUP;
    let bytes = GROUP / 2;
    let mut blocks = vec![0u8; experts * rows * groups * bytes];
    let mut scales = vec![0u8; experts * rows * groups];
    let mut values = [0f32; GROUP];
    for e in 0..experts {
        for r in 0..rows {
            for g in 0..groups {
                for (k, v) in values.iter_mut().enumerate() {
                    *v = t.data[(e * cols + g * GROUP + k) * rows + r];
                }
                let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
                let exp = if max > 0.0 { (f64::from(max) / 6.0).log2().ceil() as i32 } else { 0 };
                let exp = exp.clamp(-127, 128);
                let group_index = (e * rows + r) * groups + g;
                scales[group_index] = (exp + 127) as u8;
                let inv = 2f64.powi(-exp);
                for b in 0..bytes {
                    let lo = nearest_code(f64::from(values[2 * b]) * inv);
                    let hi = nearest_code(f64::from(values[2 * b + 1]) * inv);
                    blocks[group_index * bytes + b] = lo | (hi << 4);
                }
            }
        }
    }
    Ok(Quantized {
        blocks,
        blocks_shape: vec![experts, rows, groups, bytes],
        scales,
        scales_shape: vec![experts, rows, groups],
    })
}

fn nearest_code(x: f64) -> u8 {
    let mut best = 0u8;
    let mut best_err = f64::INFINITY;
    for (code, &v) in FP4_VALUES.iter().enumerate() {
        let err = (f64::from(v) - x).abs();
        if err < best_err {
            best_err = err;
            best = code as u8;
        }
    }
    best
}
