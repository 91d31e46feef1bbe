//! Figures as SVG text, drawn with plotters' SVG backend: [`two_panel_svg`] (learning
//! curves) and [`scatter_svg`] (accuracy against memory transactions, the paper's
//! figure 6).

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

/// One series: name, colour, points (x, y).
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// Colour as `#rrggbb`.
    pub color: &'a str,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

/// One labelled point of a scatter.
pub struct Point<'a> {
    /// Label drawn beside the point.
    pub label: String,
    /// Colour as `#rrggbb`.
    pub color: &'a str,
    /// x (memory transactions).
    pub x: f64,
    /// y (accuracy).
    pub y: f64,
}

/// The series colours, in order.
pub const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

fn rgb(hex: &str) -> RGBColor {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
    RGBColor((v >> 16) as u8, (v >> 8) as u8, v as u8)
}

/// The range of `v` with a 5% margin (a unit range when it is empty or flat).
fn range(v: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for x in v.filter(|x| x.is_finite()) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if lo > hi {
        return 0.0..1.0;
    }
    if hi - lo < 1e-12 {
        return lo - 0.5..hi + 0.5;
    }
    let pad = (hi - lo) * 0.05;
    lo - pad..hi + pad
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a figure: {e}")
}

/// Two line charts side by side (e.g. loss and accuracy), with a title.
pub fn two_panel_svg(
    title: &str,
    left: (&str, &[Series]),
    right: (&str, &[Series]),
) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (1000, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
        let (a, b) = root.split_horizontally(500);
        for (area, (label, series)) in [(a, left), (b, right)] {
            let xs = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
            let ys = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
            let mut chart = ChartBuilder::on(&area)
                .margin(12)
                .caption(label, ("sans-serif", 15))
                .x_label_area_size(32)
                .y_label_area_size(56)
                .build_cartesian_2d(xs, ys)
                .map_err(err)?;
            chart.configure_mesh().draw().map_err(err)?;
            for s in series {
                let c = rgb(s.color);
                let style = ShapeStyle::from(&c).stroke_width(2);
                chart
                    .draw_series(LineSeries::new(s.points.iter().copied(), style))
                    .map_err(err)?
                    .label(s.name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                // Markers, so that a series of one point (one epoch) shows.
                chart
                    .draw_series(
                        s.points
                            .iter()
                            .filter(|_| s.points.len() <= 20)
                            .map(|&p| Circle::new(p, 3, c.filled())),
                    )
                    .map_err(err)?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// A scatter of labelled points on a log-x axis (when x spans more than a decade).
pub fn scatter_svg(title: &str, x_desc: &str, y_desc: &str, points: &[Point]) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (760, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let xs: Vec<f64> = points.iter().map(|p| p.x).collect();
        let (lo, hi) = xs
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        let ys = range(points.iter().map(|p| p.y));
        let mut b = ChartBuilder::on(&root);
        b.margin(16)
            .caption(title, ("sans-serif", 18))
            .x_label_area_size(40)
            .y_label_area_size(56);
        if lo > 0.0 && hi / lo > 10.0 {
            let mut chart = b
                .build_cartesian_2d((lo / 1.5..hi * 1.5).log_scale(), ys)
                .map_err(err)?;
            draw_points(&mut chart, (x_desc, y_desc), points)?;
        } else {
            let xr = range(xs.iter().copied());
            let xr = xr.start.min(0.0)..xr.end * 1.15;
            let mut chart = b.build_cartesian_2d(xr, ys).map_err(err)?;
            draw_points(&mut chart, (x_desc, y_desc), points)?;
        }
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// The mesh with its axis descriptions, and the labelled points of [`scatter_svg`]
/// (on a linear or a log x axis).
fn draw_points<X, Y>(
    chart: &mut ChartContext<SVGBackend, Cartesian2d<X, Y>>,
    (x_desc, y_desc): (&str, &str),
    points: &[Point],
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    X: ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    for p in points {
        let c = rgb(p.color);
        chart
            .draw_series(std::iter::once(Circle::new((p.x, p.y), 6, c.filled())))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                p.label.clone(),
                (p.x, p.y),
                ("sans-serif", 13).into_font().color(&c),
            )))
            .map_err(err)?;
    }
    Ok(())
}
