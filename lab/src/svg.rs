//! The lab's picture: a hand-written SVG, one panel per run side by side on a shared time axis:
//! every leecher's completion over time (coloured by client), the helpers engaged as a step band
//! beneath, the fluid bound as a dashed line and the bound counted from the first byte as a dotted
//! one. Plain SVG 1.1, no script, no external resource: any browser shows it.

use crate::leecher::Kind;
use crate::trace::Trace;
use std::fmt::Write;

/// One run's panel.
pub struct Panel<'a> {
    pub title: String,
    pub trace: &'a Trace,
    /// The fluid bound, and the bound counted from the mean first byte, in seconds.
    pub bound: Option<f64>,
    pub floor: Option<f64>,
}

const PLOT_W: f64 = 440.0;
const PLOT_H: f64 = 240.0;
const BAND_H: f64 = 36.0;
const LEFT: f64 = 56.0;
const TOP: f64 = 44.0;
const PANEL_W: f64 = LEFT + PLOT_W + 24.0;
const HEIGHT: f64 = TOP + PLOT_H + 56.0 + BAND_H + 40.0;

fn colour(kind: Kind) -> &'static str {
    match kind {
        Kind::Transmission => "#1f6fb4",
        Kind::Libtorrent => "#e0700e",
    }
}

/// The seconds between ticks: at most 8 ticks over `span`.
fn tick_step(span: f64) -> f64 {
    [5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0].into_iter().find(|s| span / s <= 8.0).unwrap_or(3600.0)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// "no helpers", "1 helper", "4 helpers": a panel's title says how many helpers the run had.
pub fn helpers(n: usize) -> String {
    match n {
        0 => "no helpers".into(),
        1 => "1 helper".into(),
        n => format!("{n} helpers"),
    }
}

/// The SVG document for `panels`, side by side.
pub fn render(panels: &[Panel]) -> String {
    let last =
        |p: &Panel| p.trace.t.last().copied().unwrap_or(0.0).max(p.bound.unwrap_or(0.0)).max(p.floor.unwrap_or(0.0));
    let span = panels.iter().map(last).fold(10.0, f64::max);
    let step = tick_step(span);
    let span = (span / step).ceil() * step;
    let most_helpers = panels.iter().flat_map(|p| p.trace.helpers.iter().copied()).max().unwrap_or(0).max(1);
    let width = PANEL_W * panels.len().max(1) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{HEIGHT:.0}" viewBox="0 0 {width:.0} {HEIGHT:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{width:.0}" height="{HEIGHT:.0}" fill="white"/>"#);
    for (i, p) in panels.iter().enumerate() {
        panel(&mut s, p, PANEL_W * i as f64, span, step, most_helpers);
    }
    s.push_str("</svg>\n");
    s
}

fn panel(s: &mut String, p: &Panel, x0: f64, span: f64, step: f64, most_helpers: usize) {
    let x = |t: f64| x0 + LEFT + t.clamp(0.0, span) / span * PLOT_W;
    let y = |done: f64| TOP + (1.0 - done.clamp(0.0, 1.0)) * PLOT_H;
    let (left, right, bottom) = (x0 + LEFT, x0 + LEFT + PLOT_W, TOP + PLOT_H);
    let _ = writeln!(s, r#"<text x="{left:.1}" y="22" font-size="14" font-weight="bold">{}</text>"#, escape(&p.title));
    // Grid and axes.
    for q in 0..=4 {
        let yy = y(f64::from(q) / 4.0);
        let _ = writeln!(s, r##"<line x1="{left:.1}" y1="{yy:.1}" x2="{right:.1}" y2="{yy:.1}" stroke="#ddd"/>"##);
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}%</text>"#, left - 6.0, yy + 4.0, q * 25);
    }
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let xx = x(t);
        let _ = writeln!(s, r##"<line x1="{xx:.1}" y1="{TOP:.1}" x2="{xx:.1}" y2="{bottom:.1}" stroke="#eee"/>"##);
        let _ = writeln!(s, r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{t:.0}</text>"#, bottom + 16.0);
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{left:.1}" y="{TOP:.1}" width="{PLOT_W:.1}" height="{PLOT_H:.1}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds</text>"#,
        left + PLOT_W / 2.0,
        bottom + 30.0
    );
    // The bounds: lines across the plot, said once above it (labels in the plot would cross them).
    let mut said = Vec::new();
    for (at, dash, label) in [(p.bound, "6 4", "dashed: bound"), (p.floor, "2 3", "dotted: bound from first byte")] {
        if let Some(b) = at.filter(|b| b.is_finite() && *b > 0.0) {
            let xx = x(b);
            let _ = writeln!(
                s,
                r##"<line x1="{xx:.1}" y1="{TOP:.1}" x2="{xx:.1}" y2="{bottom:.1}" stroke="#222" stroke-dasharray="{dash}"/>"##
            );
            said.push(format!("{label} {b:.0} s"));
        }
    }
    if !said.is_empty() {
        let _ = writeln!(
            s,
            r#"<text x="{right:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"#,
            TOP - 6.0,
            said.join(", ")
        );
    }
    // One line per leecher.
    for (l, done) in p.trace.leechers.iter().zip(&p.trace.done) {
        let points: Vec<String> =
            p.trace.t.iter().zip(done).map(|(t, d)| format!("{:.1},{:.1}", x(*t), y(*d))).collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" stroke-opacity="0.85" points="{}"><title>{} ({})</title></polyline>"#,
            colour(l.1),
            points.join(" "),
            escape(&l.0),
            l.1.as_str()
        );
    }
    band(s, p, &x, left, bottom + 56.0, most_helpers);
}

/// Beneath a panel's plot: the helpers engaged, as a step band from `band_top`, and the legend.
fn band(s: &mut String, p: &Panel, x: &dyn Fn(f64) -> f64, left: f64, band_top: f64, most_helpers: usize) {
    let band_y = |h: usize| band_top + BAND_H * (1.0 - h as f64 / most_helpers as f64);
    let mut d = format!("M{left:.1},{:.1}", band_y(0));
    let mut prev = 0usize;
    for (t, h) in p.trace.t.iter().zip(&p.trace.helpers) {
        let _ = write!(d, " L{:.1},{:.1} L{:.1},{:.1}", x(*t), band_y(prev), x(*t), band_y(*h));
        prev = *h;
    }
    let end = p.trace.t.last().map_or(left, |t| x(*t));
    let _ = write!(d, " L{end:.1},{:.1} Z", band_y(0));
    let _ = writeln!(s, r##"<path d="{d}" fill="#7cb87c" stroke="#3c7c3c"/>"##);
    let _ = writeln!(
        s,
        r##"<rect x="{left:.1}" y="{band_top:.1}" width="{PLOT_W:.1}" height="{BAND_H:.1}" fill="none" stroke="#aaa"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{most_helpers}</text><text x="{:.1}" y="{:.1}" text-anchor="end">0</text>"#,
        left - 6.0,
        band_top + 10.0,
        left - 6.0,
        band_top + BAND_H
    );
    let _ = writeln!(s, r#"<text x="{left:.1}" y="{:.1}">helpers engaged</text>"#, band_top - 4.0);
    // The legend.
    let mut kinds: Vec<Kind> = p.trace.leechers.iter().map(|l| l.1).collect();
    kinds.sort();
    kinds.dedup();
    let ly = band_top + BAND_H + 24.0;
    for (i, k) in kinds.iter().enumerate() {
        let lx = left + 170.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{ly:.1}">{} leechers</text>"#,
            ly - 4.0,
            lx + 22.0,
            ly - 4.0,
            colour(*k),
            lx + 28.0,
            k.as_str()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leecher::Sample;
    use crate::trace::Servers;
    use std::net::Ipv4Addr;

    fn trace() -> Trace {
        let ip = |i| Ipv4Addr::new(10, 0, 0, i);
        let leechers = vec![("a".into(), Kind::Transmission, ip(1)), ("b<&>".into(), Kind::Libtorrent, ip(2))];
        let mut t = Trace::new(leechers, 800, 8);
        let s = |done| Some(Sample { done, ..Sample::default() });
        for (i, h) in [0, 2, 4, 4, 1].into_iter().enumerate() {
            let done = i as f64 / 4.0;
            t.record(i as f64 * 10.0, &[s(done), s(done / 2.0)], Servers { engaged: h, ..Servers::default() });
        }
        t
    }

    /// Every coordinate of `svg` that follows `attr="`.
    fn numbers(svg: &str, attr: &str) -> Vec<f64> {
        svg.split(&format!(" {attr}=\"")).skip(1).filter_map(|r| r.split('"').next()?.parse().ok()).collect()
    }

    #[test]
    fn a_panel_draws_every_leecher_the_helpers_and_the_bounds_inside_the_picture() {
        let t = trace();
        let svg = render(&[
            Panel { title: "4 helpers".into(), trace: &t, bound: Some(35.0), floor: Some(45.0) },
            Panel { title: "none & <alone>".into(), trace: &t, bound: None, floor: None },
        ]);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 4, "a line per leecher per panel");
        assert_eq!(svg.matches("stroke-dasharray").count(), 2, "the bounds of the first panel only");
        assert!(svg.contains("#1f6fb4") && svg.contains("#e0700e"), "a colour per client");
        assert!(svg.contains("none &amp; &lt;alone&gt;") && svg.contains("b&lt;&amp;&gt;"), "text is escaped");
        assert!(!svg.contains("<script"));
        let width = numbers(&svg, "width")[0];
        for n in numbers(&svg, "x1").into_iter().chain(numbers(&svg, "x2")).chain(numbers(&svg, "x")) {
            assert!((0.0..=width).contains(&n), "{n} outside 0..{width}");
        }
        let points = svg.split("points=\"").skip(1).map(|r| r.split('"').next().unwrap_or_default());
        for p in points.flat_map(|p| p.split(' ')) {
            let (px, py) = p.split_once(',').expect("x,y");
            let (px, py): (f64, f64) = (px.parse().unwrap(), py.parse().unwrap());
            assert!((0.0..=width).contains(&px) && (TOP..=TOP + PLOT_H).contains(&py), "{p}");
        }
        // The shared axis ends on a tick past the last sample and the bounds.
        assert!(svg.contains(">50</text>") && !svg.contains(">60</text>"));
    }

    #[test]
    fn ticks_are_at_most_eight() {
        for span in [1.0, 40.0, 113.0, 460.0, 900.0, 5000.0] {
            assert!(span / tick_step(span) <= 8.0 || tick_step(span) == 3600.0, "{span}");
        }
    }
}
