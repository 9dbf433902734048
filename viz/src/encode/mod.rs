//! The data block embedded in the page: a small JSON header and packed columns.
//!
//! ```text
//! block   = "TTSV" meta_len:u32 meta:JSON pad-to-8 columns
//! columns = little-endian typed arrays, each 8-aligned; `meta.columns` gives type, offset, length
//! ```
//!
//! Allocations and ops are columns (one typed array per field) because a million rows as JSON
//! objects would be hundreds of megabytes and slow to parse; names, op names and stacks are
//! indices into `meta.strings`, each distinct string stored once. The page receives the block
//! gzip-compressed and base64-encoded (see [`crate::html`]).

mod columns;
mod findings;
mod meta;

pub use columns::ColumnBlock;
pub use meta::Meta;

use crate::map::{flags, MapData, OPEN};
use crate::VizError;
use ttsan_sanitizer::Analysis;

/// The first four bytes of a data block.
pub const MAGIC: &[u8; 4] = b"TTSV";
/// Version of the block layout, bumped when the page must change with it.
pub const VERSION: u32 = 1;

/// Encodes `map` and `analysis` into an uncompressed data block.
pub fn encode(map: &MapData, analysis: &Analysis) -> Result<Vec<u8>, VizError> {
    let capture = map.capture().ok_or(VizError::NoCapture)?;
    let t_end = map.end_time();
    let block = columns(map, t_end);
    let meta = Meta::new(map, capture, analysis, block.index().clone(), t_end);
    let meta_bytes = serde_json::to_vec(&meta)?;
    let columns = block.into_bytes();
    let mut out = Vec::with_capacity(8 + meta_bytes.len() + 8 + columns.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u32::try_from(meta_bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&meta_bytes);
    while out.len() % 8 != 0 {
        out.push(b' ');
    }
    out.extend_from_slice(&columns);
    Ok(out)
}

/// Splits a data block into its metadata and column bytes (the page does the same in script).
pub fn split(block: &[u8]) -> Option<(serde_json::Value, &[u8])> {
    if block.get(..4)? != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(block.get(4..8)?.try_into().ok()?) as usize;
    let meta = serde_json::from_slice(block.get(8..8 + len)?).ok()?;
    let start = (8 + len).div_ceil(8) * 8;
    Some((meta, block.get(start..)?))
}

fn columns(map: &MapData, t_end: u32) -> ColumnBlock {
    let a = map.allocs();
    let o = map.ops();
    let mut b = ColumnBlock::default();
    let close = |t: &u32| if *t == OPEN { t_end } else { *t };
    b.push("allocs.id", a.id.iter().copied());
    b.push("allocs.t0", a.t0.iter().copied());
    b.push("allocs.t1", a.t1.iter().map(close));
    b.push("allocs.addr", a.addr.iter().copied());
    b.push("allocs.size", a.size.iter().copied());
    b.push("allocs.total", a.total.iter().copied());
    b.push("allocs.name", a.name.iter().copied());
    b.push(
        "allocs.flags",
        a.flags.iter().zip(&a.t1).map(|(f, t1)| if *t1 == OPEN { f | flags::LIVE_AT_END } else { *f }),
    );
    b.push("allocs.chip", a.chip.iter().copied());
    b.push("allocs.layer", a.layer.iter().copied());
    b.push("allocs.units", a.units.iter().copied());
    b.push("allocs.aop", a.aop.iter().copied());
    b.push("allocs.fop", a.fop.iter().copied());
    b.push("allocs.astack", a.astack.iter().copied());
    b.push("allocs.fstack", a.fstack.iter().copied());
    b.push("ops.index", o.index.iter().copied());
    b.push("ops.name", o.name.iter().copied());
    b.push("ops.t0", o.t0.iter().copied());
    b.push("ops.t1", o.t1.iter().map(close));
    b.push("ops.parent", o.parent.iter().copied());
    b
}

#[cfg(test)]
mod tests;
