//! Peak L1 use of every Tensix core (the maximum over chips), as a heat map over the worker grid.

use super::font::FAMILY;
use super::plot_error;
use crate::map::MapData;
use crate::VizError;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Draws the per-core heat map into `area`.
pub fn draw<DB: DrawingBackend>(map: &MapData, area: &DrawingArea<DB, Shift>, text: bool) -> Result<(), VizError> {
    let Some(capture) = map.capture() else { return Ok(()) };
    let g = &capture.geometry;
    let (gx, gy) = (i32::from(g.worker_grid.x.max(1)), i32::from(g.worker_grid.y.max(1)));
    let capacity = g.l1_size.saturating_sub(g.l1_unreserved_base + g.l1_small_size).max(1) as f64;
    let peaks = map.usage().core_peaks();
    let mut builder = ChartBuilder::on(area);
    builder.margin(16);
    if text {
        builder
            .caption("peak L1 per core, max over chips (% of allocatable L1)", (FAMILY, 22))
            .x_label_area_size(30)
            .y_label_area_size(40);
    }
    let mut chart = builder.build_cartesian_2d(0..gx, gy..0).map_err(plot_error)?;
    if text {
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("core x")
            .y_desc("core y")
            .label_style((FAMILY, 13))
            .draw()
            .map_err(plot_error)?;
    }
    let cells: Vec<(i32, i32, f64)> = g
        .l1_bank_cores
        .iter()
        .zip(peaks.iter().chain(std::iter::repeat(&0)))
        .map(|(c, &p)| (i32::from(c.x), i32::from(c.y), p as f64 / capacity))
        .collect();
    chart
        // A square-root scale, so a core at a few percent is visibly warmer than an idle one.
        .draw_series(cells.iter().map(|&(x, y, f)| Rectangle::new([(x, y), (x + 1, y + 1)], heat(f.sqrt()).filled())))
        .map_err(plot_error)?;
    chart
        .draw_series(cells.iter().map(|&(x, y, _)| Rectangle::new([(x, y), (x + 1, y + 1)], WHITE.stroke_width(1))))
        .map_err(plot_error)?;
    if text {
        chart
            .draw_series(cells.iter().map(|&(x, y, f)| {
                let color = if f.sqrt() > 0.55 { WHITE } else { BLACK };
                EmptyElement::at((x, y))
                    + Text::new(format!("{:.0}%", f * 100.0), (6, 6), (FAMILY, 13).into_font().color(&color))
            }))
            .map_err(plot_error)?;
    }
    Ok(())
}

/// White through orange to dark red as `f` goes from 0 to 1 (clamped).
fn heat(f: f64) -> RGBColor {
    let f = f.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64, t: f64| (a + (b - a) * t).round() as u8;
    if f < 0.5 {
        let t = f / 0.5;
        RGBColor(lerp(247.0, 242.0, t), lerp(247.0, 142.0, t), lerp(247.0, 43.0, t))
    } else {
        let t = (f - 0.5) / 0.5;
        RGBColor(lerp(242.0, 140.0, t), lerp(142.0, 20.0, t), lerp(43.0, 20.0, t))
    }
}
