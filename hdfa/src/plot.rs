//! A small SVG line chart of the learning curves (no plotting dependency).

use std::fmt::Write as _;

/// One series: name, colour, points (x, y).
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// CSS colour.
    pub color: &'a str,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

/// An SVG chart with two panels side by side (e.g. accuracy and loss).
pub fn two_panel_svg(title: &str, left: (&str, &[Series]), right: (&str, &[Series])) -> String {
    let (w, h) = (960.0, 400.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="20" text-anchor="middle" font-size="15">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    panel(&mut s, 60.0, 40.0, 400.0, 300.0, left.0, left.1);
    panel(&mut s, 540.0, 40.0, 400.0, 300.0, right.0, right.1);
    s.push_str("</svg>\n");
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn panel(s: &mut String, x0: f64, y0: f64, pw: f64, ph: f64, label: &str, series: &[Series]) {
    let pts = series.iter().flat_map(|se| se.points.iter());
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if xmin > xmax {
        (xmin, xmax, ymin, ymax) = (0.0, 1.0, 0.0, 1.0);
    }
    if xmax - xmin < 1e-9 {
        xmax = xmin + 1.0;
    }
    if ymax - ymin < 1e-9 {
        ymax = ymin + 1.0;
    }
    let pad = (ymax - ymin) * 0.05;
    let (ymin, ymax) = (ymin - pad, ymax + pad);
    let px = |x: f64| x0 + (x - xmin) / (xmax - xmin) * pw;
    let py = |y: f64| y0 + ph - (y - ymin) / (ymax - ymin) * ph;
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        x0 + pw / 2.0,
        y0 + ph + 35.0,
        esc(label)
    );
    for i in 0..=4 {
        let v = ymin + (ymax - ymin) * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{v:.3}</text>"##,
            x0 + pw,
            x0 - 4.0,
            py(v) + 4.0,
            y = py(v)
        );
        let xv = xmin + (xmax - xmin) * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{xv:.1}</text>"#,
            px(xv),
            y0 + ph + 16.0
        );
    }
    for (k, se) in series.iter().enumerate() {
        let path: Vec<String> = se
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            se.color,
            path.join(" ")
        );
        let ly = y0 + 14.0 + 16.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            x0 + pw - 120.0,
            x0 + pw - 100.0,
            se.color,
            x0 + pw - 95.0,
            ly + 4.0,
            esc(se.name)
        );
    }
}
