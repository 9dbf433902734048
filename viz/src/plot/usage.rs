//! Memory in use per space, summed over chips, one point per top-level op.

use super::font::FAMILY;
use super::plot_error;
use crate::map::MapData;
use crate::VizError;
use plotters::coord::Shift;
use plotters::prelude::*;
use ttsan_events::Space;

const MIB: f64 = 1024.0 * 1024.0;
/// Line colours per space, in [`Space::ALL`] order.
const COLORS: [RGBColor; 4] =
    [RGBColor(78, 121, 167), RGBColor(225, 87, 89), RGBColor(89, 161, 79), RGBColor(156, 117, 95)];

/// Draws the usage chart into `area`.
pub fn draw<DB: DrawingBackend>(map: &MapData, area: &DrawingArea<DB, Shift>, text: bool) -> Result<(), VizError> {
    let samples = map.usage().samples();
    let max = samples.iter().flat_map(|s| s.bytes).max().unwrap_or(0) as f64 / MIB;
    let n = samples.len().max(2) as f64;
    let mut builder = ChartBuilder::on(area);
    builder.margin(16);
    if text {
        builder
            .caption("memory in use per space, all chips (max over each op)", (FAMILY, 22))
            .x_label_area_size(36)
            .y_label_area_size(80);
    }
    let mut chart = builder.build_cartesian_2d(0f64..n - 1.0, 0f64..(max * 1.08).max(1.0)).map_err(plot_error)?;
    if text {
        chart
            .configure_mesh()
            .x_desc("top-level op (in order)")
            .y_desc("MiB")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style((FAMILY, 14))
            .draw()
            .map_err(plot_error)?;
    } else {
        chart.configure_mesh().disable_x_mesh().disable_y_mesh().draw().map_err(plot_error)?;
    }
    for (i, space) in Space::ALL.iter().enumerate() {
        if samples.iter().all(|s| s.bytes[i] == 0) {
            continue;
        }
        let color = COLORS[i];
        let series = chart
            .draw_series(LineSeries::new(
                samples.iter().enumerate().map(|(k, s)| (k as f64, s.bytes[i] as f64 / MIB)),
                color.stroke_width(2),
            ))
            .map_err(plot_error)?;
        if text {
            series
                .label(space.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
        }
    }
    if text {
        chart
            .configure_series_labels()
            .label_font((FAMILY, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}
