//! The self-contained HTML page.
//!
//! One file: the style, the script and the data are inline, so the page opens from disk with no
//! server, and its Content-Security-Policy allows no network at all. The data block of
//! [`crate::encode`] is gzip-compressed and base64-encoded into a non-executable
//! `<script type="application/octet-stream">` element; the page inflates it with the browser's
//! own `DecompressionStream`.

mod escape;

pub use escape::{html_text, json_in_script};

use crate::map::MapData;
use crate::VizError;
use base64::engine::general_purpose::STANDARD;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;
use std::io::Write;
use ttsan_sanitizer::Analysis;

const PAGE: &str = include_str!("page.html");
const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("app.js");

/// What the page shows before the data is decoded, kept in plain JSON for tools that scrape it.
#[derive(Debug, Serialize)]
struct PageSummary<'a> {
    producer: &'a str,
    command: &'a str,
    allocations: usize,
    ops: usize,
    findings: usize,
    errors: &'a [String],
}

/// Writes the page for `map` and `analysis` to `out`.
///
/// The output is buffered by the caller's writer; pass a `BufWriter` for files.
pub fn write_html<W: Write>(map: &MapData, analysis: &Analysis, mut out: W) -> Result<(), VizError> {
    let capture = map.capture().ok_or(VizError::NoCapture)?;
    let block = crate::encode::encode(map, analysis)?;
    let summary = PageSummary {
        producer: &capture.producer,
        command: &capture.command,
        allocations: map.allocs().len(),
        ops: map.ops().len(),
        findings: analysis.findings.len(),
        errors: &analysis.errors,
    };
    let title = format!("ttsan map: {}", capture.command);
    let capture_line = format!("{} · {}", capture.producer, capture.command);
    let mut rest = PAGE;
    while let Some(start) = rest.find("{{") {
        out.write_all(&rest.as_bytes()[..start])?;
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.write_all(&rest.as_bytes()[start..])?;
            rest = "";
            break;
        };
        match &after[..end] {
            "TITLE" => out.write_all(html_text(&title).as_bytes())?,
            "CAPTURE" => out.write_all(html_text(&capture_line).as_bytes())?,
            "STYLE" => out.write_all(STYLE.as_bytes())?,
            "SCRIPT" => out.write_all(SCRIPT.as_bytes())?,
            "SUMMARY" => out.write_all(json_in_script(&serde_json::to_string(&summary)?).as_bytes())?,
            "DATA" => write_block(&block, &mut out)?,
            other => out.write_all(format!("{{{{{other}}}}}").as_bytes())?,
        }
        rest = &after[end + 2..];
    }
    out.write_all(rest.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// gzip, then base64, streamed: the compressed block is never held whole in memory.
fn write_block<W: Write>(block: &[u8], out: &mut W) -> Result<(), VizError> {
    let b64 = base64::write::EncoderWriter::new(out, &STANDARD);
    let mut gz = GzEncoder::new(b64, Compression::new(6));
    gz.write_all(block)?;
    let mut b64 = gz.finish()?;
    b64.finish()?;
    Ok(())
}

/// Writes the page to the file at `path` (created or truncated).
pub fn write_html_file(map: &MapData, analysis: &Analysis, path: &std::path::Path) -> Result<(), VizError> {
    let file = std::fs::File::create(path)?;
    write_html(map, analysis, std::io::BufWriter::new(file))
}
