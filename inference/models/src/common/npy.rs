//! `.npy` (format version 1.0) writing and reading for little-endian f32 C-order arrays: the
//! format of `--logits-out`, readable by `numpy.load`.

use super::error::{CommonError, Result};
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Encodes `data` with `shape` as a complete `.npy` v1.0 file image.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let count: usize = shape.iter().product();
    if count != data.len() {
        return Err(CommonError::LengthMismatch { left: count, right: data.len() });
    }
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // numpy pads with spaces and a final newline so the data starts 64-byte aligned.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| CommonError::InvalidInput(format!("npy header of {} bytes is too long for v1.0", header.len())))?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Writes `data` with `shape` to `path` as `.npy`.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let bytes = encode_f32(shape, data)?;
    std::fs::write(path, bytes).map_err(|e| CommonError::Io { path: path.to_path_buf(), source: e })
}

/// Reads a `.npy` file of little-endian f32 in C order (v1.0 to v3.0 headers); returns the
/// shape and the data.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| CommonError::Io { path: path.to_path_buf(), source: e })?;
    decode_f32(&bytes).map_err(|reason| CommonError::Npy { path: path.to_path_buf(), reason })
}

fn decode_f32(bytes: &[u8]) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("missing the \\x93NUMPY magic".to_owned());
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("format version {v}")),
    };
    let header = bytes
        .get(header_start..header_start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-UTF-8 header")?;
    if !header.contains("'descr': '<f4'") {
        return Err(format!("dtype is not '<f4': {}", header.trim()));
    }
    if !header.contains("'fortran_order': False") {
        return Err("Fortran order".to_owned());
    }
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|rest| rest.split_once('('))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inside, _)| inside)
        .ok_or("no shape in header")?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|e| format!("shape entry {s:?}: {e}")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let payload = &bytes[header_start + header_len..];
    let count: usize = shape.iter().product();
    if payload.len() != count * 4 {
        return Err(format!("{} data bytes for {count} f32 values", payload.len()));
    }
    let data = payload.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((shape, data))
}
