//! PNG and SVG plots: memory in use per space over ops, the peak L1 use of every core, and
//! the benchmarks' scale plot.
//!
//! Drawn with `plotters` without its system-font features; text is rendered with `ab_glyph`
//! from a font embedded in the binary, so the plots look the same on every machine.

mod cores;
mod font;
mod scale;
mod usage;

pub use scale::{parse_scale_csv, scale_svg, ScalePoint};

use crate::map::MapData;
use crate::VizError;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Width of the plot images in pixels.
pub const WIDTH: u32 = 1200;
/// Height of the plot images in pixels.
pub const HEIGHT: u32 = 900;

/// Writes the plots as a PNG file.
pub fn write_png(map: &MapData, path: &Path) -> Result<(), VizError> {
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    draw(map, &root)?;
    root.present().map_err(plot_error)
}

/// Writes the plots as an SVG file.
pub fn write_svg(map: &MapData, path: &Path) -> Result<(), VizError> {
    let svg = svg_string(map)?;
    std::fs::write(path, svg)?;
    Ok(())
}

/// The plots as SVG text.
pub fn svg_string(map: &MapData) -> Result<String, VizError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        draw(map, &root)?;
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

fn draw<DB: DrawingBackend>(map: &MapData, root: &DrawingArea<DB, Shift>) -> Result<(), VizError> {
    let text = font::ensure();
    root.fill(&WHITE).map_err(plot_error)?;
    let (upper, lower) = root.split_vertically(HEIGHT * 11 / 20);
    usage::draw(map, &upper, text)?;
    cores::draw(map, &lower, text)?;
    Ok(())
}

fn plot_error(e: impl std::fmt::Display) -> VizError {
    VizError::Plot(e.to_string())
}
