//! Learning curves with plotters: per environment, the mean over seeds of each method as a line with a
//! band of +- one (population) std, written as PNG and SVG. PNG text is drawn from an embedded font
//! (DejaVu Sans, experiments/assets/), so no system fonts or fontconfig are needed.

use super::stats::CurvePoint;
use crate::method::{Algo, Method, Neuron};
use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a fixed, valid TTF compiled in: failure here is a build defect.
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            panic!("the embedded DejaVu Sans font could not be loaded");
        }
    });
}

/// One method's curve.
pub struct Series {
    pub method: Method,
    pub points: Vec<CurvePoint>,
}

/// Colour per neuron (ANN: near black); vanilla and proxy of a neuron share it, vanilla dashed.
fn color(m: &Method) -> RGBColor {
    match m.neuron {
        None => RGBColor(40, 40, 40),
        Some(Neuron::Lif) => RGBColor(31, 119, 180),
        Some(Neuron::Clif) => RGBColor(255, 127, 14),
        Some(Neuron::Dn) => RGBColor(44, 160, 44),
        Some(Neuron::Plif) => RGBColor(148, 103, 189),
        Some(Neuron::If) => RGBColor(140, 86, 75),
    }
}

/// Writes `stem.png` and `stem.svg`.
pub fn learning_curves(stem: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    register_font();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    {
        let root = BitMapBackend::new(&png, (1000, 620)).into_drawing_area();
        draw(&root, title, series).map_err(|e| anyhow!("drawing {}: {e}", png.display()))?;
        root.present()
            .map_err(|e| anyhow!("writing {}: {e}", png.display()))?;
    }
    {
        let root = SVGBackend::new(&svg, (1000, 620)).into_drawing_area();
        draw(&root, title, series).map_err(|e| anyhow!("drawing {}: {e}", svg.display()))?;
        root.present()
            .map_err(|e| anyhow!("writing {}: {e}", svg.display()))?;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for p in pts {
        x0 = x0.min(p.step);
        x1 = x1.max(p.step);
        y0 = y0.min(p.mean - p.std);
        y1 = y1.max(p.mean + p.std);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let (y0, y1) = (y0 - pad, y1 + pad);

    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("environment steps (random ones included)")
        .y_desc("average evaluation return")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .x_label_formatter(&|x| steps_label(*x))
        .y_label_formatter(&|y| return_label(*y))
        .light_line_style(RGBColor(244, 244, 244))
        .draw()?;

    for s in series {
        let c = color(&s.method);
        let mut band: Vec<(f64, f64)> = s.points.iter().map(|p| (p.step, p.mean + p.std)).collect();
        band.extend(s.points.iter().rev().map(|p| (p.step, p.mean - p.std)));
        chart.draw_series(std::iter::once(Polygon::new(band, c.mix(0.15).filled())))?;
    }
    for s in series {
        let c = color(&s.method);
        let line: Vec<(f64, f64)> = s.points.iter().map(|p| (p.step, p.mean)).collect();
        let n = s.points.iter().map(|p| p.n).max().unwrap_or(0);
        let label = format!("{} (n={n})", s.method.label());
        let style = c.stroke_width(2);
        if s.method.algo == Algo::Vanilla {
            chart
                .draw_series(DashedLineSeries::new(line, 9, 5, style))?
                .label(label)
                .legend(move |(x, y)| {
                    DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 3, style)
                });
        } else {
            chart
                .draw_series(LineSeries::new(line, style))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(("sans-serif", 15))
        .draw()?;
    Ok(())
}

/// 1500 -> "1.5k", 1000000 -> "1M".
fn steps_label(x: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if x.abs() >= 1e6 {
        format!("{}M", trim(format!("{:.2}", x / 1e6)))
    } else if x.abs() >= 1e3 {
        format!("{}k", trim(format!("{:.1}", x / 1e3)))
    } else {
        format!("{x:.0}")
    }
}

/// Axis labels without trailing zeros: -900, 12.5, 0.25.
fn return_label(y: f64) -> String {
    let s = if y.abs() >= 100.0 {
        format!("{y:.0}")
    } else {
        format!("{y:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_labels() {
        assert_eq!(steps_label(1_000_000.0), "1M");
        assert_eq!(steps_label(250_000.0), "250k");
        assert_eq!(steps_label(1_500.0), "1.5k");
        assert_eq!(steps_label(200.0), "200");
        assert_eq!(return_label(-900.0), "-900");
        assert_eq!(return_label(12.5), "12.5");
        assert_eq!(return_label(-0.001), "0");
    }

    #[test]
    fn writes_png_and_svg_with_text() {
        let dir = std::env::temp_dir().join(format!("spikerl-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pts = |o: f64| {
            (0..5)
                .map(|i| CurvePoint {
                    step: i as f64 * 100.0,
                    mean: o + i as f64,
                    std: 0.5,
                    n: 2,
                })
                .collect()
        };
        let series = [
            Series {
                method: Method::ANN,
                points: pts(0.0),
            },
            Series {
                method: Method::new(Algo::Vanilla, Neuron::Lif),
                points: pts(1.0),
            },
            Series {
                method: Method::new(Algo::Proxy, Neuron::Lif),
                points: pts(2.0),
            },
        ];
        learning_curves(&dir.join("c"), "Pendulum-v1", &series).unwrap();
        let png = std::fs::read(dir.join("c.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(dir.join("c.svg")).unwrap();
        assert!(svg.contains("PT-LIF (n=2)") && svg.contains("Pendulum-v1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
