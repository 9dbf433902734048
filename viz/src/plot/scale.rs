//! The scale plot of `docs/performance.md`: what a sanitized run costs as chips, layers and
//! sequence length grow, next to the same run with the sanitizer off.

use super::font::{self, FAMILY};
use super::plot_error;
use crate::VizError;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One measured run of a scale sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePoint {
    /// The quantity varied in this sweep: `chips`, `layers` or `seq`.
    pub axis: String,
    /// Its value in this run.
    pub value: f64,
    /// Whether the sanitizer was on.
    pub sanitized: bool,
    /// CPU seconds (user + system) of the whole command.
    pub cpu_s: f64,
}

/// Parses the CSV `scripts/bench-scale` writes: a header line, then
/// `axis,value,detect,cpu_s,...` rows (extra columns are ignored; `detect` is `none` or
/// anything else for a sanitized run). Rows of failed runs (`cpu_s` not a number) are skipped.
pub fn parse_scale_csv(text: &str) -> Result<Vec<ScalePoint>, VizError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').map(str::trim).collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| VizError::Plot(format!("scale CSV has no `{name}` column")))
    };
    let (axis, value, detect, cpu) = (column("axis")?, column("value")?, column("detect")?, column("cpu_s")?);
    let mut points = Vec::new();
    for (n, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cell = |i: usize| {
            cells.get(i).copied().ok_or_else(|| VizError::Plot(format!("scale CSV row {}: too few columns", n + 2)))
        };
        let Ok(cpu_s) = cell(cpu)?.parse::<f64>() else { continue };
        let value = cell(value)?.parse::<f64>().map_err(|_| {
            VizError::Plot(format!("scale CSV row {}: value `{}` is not a number", n + 2, cells[value]))
        })?;
        points.push(ScalePoint { axis: cell(axis)?.to_owned(), value, sanitized: cell(detect)? != "none", cpu_s });
    }
    Ok(points)
}

/// Panel order and titles.
const PANELS: [(&str, &str); 3] =
    [("chips", "chips (1x1, 1x8, 4x8)"), ("layers", "decoder layers (1x8)"), ("seq", "prefill tokens (1x8)")];
const OFF: RGBColor = RGBColor(78, 121, 167);
const ON: RGBColor = RGBColor(225, 87, 89);

/// The scale plot as SVG text: one panel per axis, CPU seconds against size with the
/// sanitizer off and on, each sanitized point labelled with its ratio.
pub fn scale_svg(points: &[ScalePoint]) -> Result<String, VizError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1500, 520)).into_drawing_area();
        let text = font::ensure();
        root.fill(&WHITE).map_err(plot_error)?;
        for (area, (axis, title)) in root.split_evenly((1, PANELS.len())).iter().zip(PANELS) {
            let mine: Vec<&ScalePoint> = points.iter().filter(|p| p.axis == axis).collect();
            panel(area, title, &mine, text)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    points: &[&ScalePoint],
    text: bool,
) -> Result<(), VizError> {
    let max = |f: fn(&ScalePoint) -> f64| points.iter().map(|p| f(p)).fold(0.0, f64::max);
    let (xmax, ymax) = (max(|p| p.value).max(1.0), max(|p| p.cpu_s).max(0.1));
    let mut builder = ChartBuilder::on(area);
    builder.margin(14);
    if text {
        builder.caption(title, (FAMILY, 20)).x_label_area_size(34).y_label_area_size(56);
    }
    let mut chart = builder.build_cartesian_2d(0.0..xmax * 1.12, 0.0..ymax * 1.2).map_err(plot_error)?;
    if text {
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .y_desc("CPU seconds")
            // Sizes are whole numbers: fractional ticks stay unlabelled rather than rounded twice.
            .x_label_formatter(&|x| if x.fract().abs() < 1e-9 { format!("{x:.0}") } else { String::new() })
            .y_label_formatter(&|y| if ymax < 5.0 { format!("{y:.1}") } else { format!("{y:.0}") })
            .label_style((FAMILY, 13))
            .draw()
            .map_err(plot_error)?;
    }
    let series = |sanitized: bool| {
        let mut s: Vec<(f64, f64)> =
            points.iter().filter(|p| p.sanitized == sanitized).map(|p| (p.value, p.cpu_s)).collect();
        s.sort_by(|a, b| a.0.total_cmp(&b.0));
        s
    };
    let (off, on) = (series(false), series(true));
    for (line, color, label) in [(&off, OFF, "sanitizer off"), (&on, ON, "sanitizer on (--detect both)")] {
        let drawn =
            chart.draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2))).map_err(plot_error)?;
        if text {
            drawn.label(label).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
        }
        chart.draw_series(line.iter().map(|&(x, y)| Circle::new((x, y), 4, color.filled()))).map_err(plot_error)?;
    }
    if text {
        // The ratio at each size is the figure the plot is for; the lines only show the trend.
        let ratios = on.iter().filter_map(|&(x, y)| {
            let base = off.iter().find(|o| o.0 == x)?.1;
            (base > 0.0).then(|| Text::new(format!("{:.2}x", y / base), (x, y), (FAMILY, 13).into_font().color(&ON)))
        });
        chart.draw_series(ratios).map_err(plot_error)?;
    }
    if text {
        chart
            .configure_series_labels()
            .label_font((FAMILY, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "axis,value,detect,cpu_s,wall_s\n\
        chips,1,none,1.0,2\nchips,1,both,1.2,2\nchips,8,none,2.0,3\nchips,8,both,2.3,3\n\
        seq,128,none,2.0,3\nseq,128,both,error,3\n";

    #[test]
    fn csv_rows_become_points_and_failed_runs_are_skipped() {
        let points = parse_scale_csv(CSV).unwrap();
        assert_eq!(points.len(), 5);
        assert_eq!(points[1], ScalePoint { axis: "chips".into(), value: 1.0, sanitized: true, cpu_s: 1.2 });
        assert!(points.iter().all(|p| !(p.axis == "seq" && p.sanitized)));
    }

    #[test]
    fn csv_without_a_needed_column_is_an_error() {
        let err = parse_scale_csv("axis,value,cpu_s\nchips,1,1.0\n").unwrap_err();
        assert!(err.to_string().contains("detect"), "{err}");
        let err = parse_scale_csv("axis,value,detect,cpu_s\nchips,x,none,1.0\n").unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");
    }

    #[test]
    fn svg_has_a_panel_per_axis_and_both_series() {
        let svg = scale_svg(&parse_scale_csv(CSV).unwrap()).unwrap();
        for title in PANELS.map(|(_, t)| t) {
            assert!(svg.contains(title), "missing panel {title}");
        }
        assert!(svg.contains("sanitizer off") && svg.contains("sanitizer on"));
        // Two chips points per series in the first panel: circles for each measured run.
        assert!(svg.matches("<circle").count() >= 5, "{}", svg.matches("<circle").count());
        assert!(svg.contains("1.20x") && svg.contains("1.15x"), "the ratio labels of the chips panel");
    }
}
