//! Element types and page layouts of device tensors.

use half::bf16;
use std::fmt;

/// The element type of a device tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// bfloat16, 2 bytes (`ttnn.bfloat16`).
    Bf16,
    /// IEEE float32, 4 bytes (`ttnn.float32`).
    F32,
    /// Unsigned 32-bit integers (`ttnn.uint32`); host values are whole numbers held as `f32`,
    /// exact up to 2^24, which covers every index a model needs.
    U32,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Bf16 => 2,
            DType::F32 | DType::U32 => 4,
        }
    }

    /// Writes `v` converted to this type at the start of `out` (little endian, as the device).
    pub fn encode(self, v: f32, out: &mut [u8]) {
        match self {
            DType::Bf16 => out[..2].copy_from_slice(&bf16::from_f32(v).to_bits().to_le_bytes()),
            DType::F32 => out[..4].copy_from_slice(&v.to_le_bytes()),
            // `as` saturates: negative or NaN indices become 0, as a device cast would clamp.
            DType::U32 => out[..4].copy_from_slice(&(v as u32).to_le_bytes()),
        }
    }

    /// Reads one element from the start of `bytes`.
    pub fn decode(self, bytes: &[u8]) -> f32 {
        match self {
            DType::Bf16 => bf16::from_bits(u16::from_le_bytes([bytes[0], bytes[1]])).to_f32(),
            DType::F32 => f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            DType::U32 => u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as f32,
        }
    }

    /// `v` as it reads back after a round trip through this type.
    pub fn round(self, v: f32) -> f32 {
        match self {
            DType::Bf16 => bf16::from_f32(v).to_f32(),
            DType::F32 => v,
            DType::U32 => (v as u32) as f32,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::Bf16 => "bfloat16",
            DType::F32 => "float32",
            DType::U32 => "uint32",
        })
    }
}

/// How a tensor's elements are cut into pages (`ttnn.TILE_LAYOUT` / `ttnn.ROW_MAJOR_LAYOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageLayout {
    /// 32x32 tiles of four 16x16 faces; the last two dims are padded to multiples of 32.
    Tile,
    /// One page per row of the last dim.
    RowMajor,
}

impl fmt::Display for PageLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageLayout::Tile => "TILE",
            PageLayout::RowMajor => "ROW_MAJOR",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut b = [0u8; 4];
        for (t, v, back) in [(DType::Bf16, 1.0f32 / 3.0, 171.0 / 512.0), (DType::F32, 0.1, 0.1), (DType::U32, 7.0, 7.0)]
        {
            t.encode(v, &mut b);
            assert_eq!(t.decode(&b), back);
            assert_eq!(t.round(v), back);
        }
    }
}
