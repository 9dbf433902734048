//! Conversions between safetensors byte buffers and f32.

use half::{bf16, f16};
use safetensors::Dtype;

/// Decodes a little-endian float buffer; `None` for dtypes that are not bf16, f16 or f32.
pub(super) fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        Dtype::BF16 => {
            Some(bytes.chunks_exact(2).map(|c| bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()).collect())
        }
        Dtype::F16 => {
            Some(bytes.chunks_exact(2).map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()).collect())
        }
        Dtype::F32 => Some(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        _ => None,
    }
}

/// Encodes f32 values as little-endian bf16 (round to nearest even, as torch's `.to(bfloat16)`).
pub(super) fn bf16_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|&v| bf16::from_f32(v).to_bits().to_le_bytes()).collect()
}

/// Encodes f32 values as little-endian f32.
pub(super) fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
