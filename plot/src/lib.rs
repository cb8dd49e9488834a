//! Line charts with shaded bands, as PNG and SVG: the run folder's evaluation curve (written by the
//! learner after every evaluation) and the learning curves of `spikerl report` (experiments crate).
//! This crate knows nothing of spikerl's other crates, so the learner and the experiments crate share
//! it without depending on each other.
//!
//! PNG text is drawn from an embedded font (DejaVu Sans, `assets/`, licence beside it), so no system
//! fonts or fontconfig are needed. Both files are rendered in memory and written through a temporary
//! file and a rename: a viewer (or a browser refreshing the run folder) never sees half a file.

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Width and height of both renderings, in pixels (SVG user units).
pub const SIZE: (u32, u32) = (1000, 620);

/// One point of a curve: `y` drawn as the line, `lo..=hi` as the band around it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub lo: f64,
    pub hi: f64,
}

/// One line with its band and legend entry.
#[derive(Clone, Debug)]
pub struct Curve {
    pub label: String,
    pub color: (u8, u8, u8),
    /// Dashed instead of solid.
    pub dashed: bool,
    /// A dot at every point: with a handful of points (a young run) a bare line hides where they are,
    /// and a single point would not show at all.
    pub markers: bool,
    pub points: Vec<Point>,
}

/// A chart: title, axis descriptions and its curves. The x axis is labelled in steps (1.5k, 2M), the y
/// axis in plain numbers without trailing zeros.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub curves: Vec<Curve>,
}

impl Chart {
    /// The chart as an encoded PNG.
    pub fn png(&self) -> anyhow::Result<Vec<u8>> {
        register_font()?;
        let (w, h) = SIZE;
        let mut rgb = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
            self.draw(&root).map_err(|e| anyhow!("drawing the PNG: {e}"))?;
            root.present().map_err(|e| anyhow!("drawing the PNG: {e}"))?;
        }
        let mut png = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut png),
            &rgb,
            w,
            h,
            image::ColorType::Rgb8,
        )
        .context("encoding the PNG")?;
        Ok(png)
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> anyhow::Result<String> {
        register_font()?;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            self.draw(&root).map_err(|e| anyhow!("drawing the SVG: {e}"))?;
            root.present().map_err(|e| anyhow!("drawing the SVG: {e}"))?;
        }
        Ok(svg)
    }

    /// Writes `stem.png` and `stem.svg`, each atomically (see `write_atomic`).
    pub fn write(&self, stem: &Path) -> anyhow::Result<()> {
        let png = stem.with_extension("png");
        let svg = stem.with_extension("svg");
        write_atomic(&png, &self.png()?).with_context(|| format!("writing {}", png.display()))?;
        write_atomic(&svg, self.svg()?.as_bytes()).with_context(|| format!("writing {}", svg.display()))?;
        Ok(())
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        // Non-finite values (a diverged policy's NaN return) cannot be placed: they are left out.
        let curves: Vec<Vec<Point>> = self.curves.iter().map(|c| finite_points(&c.points)).collect();
        let (mut x0, mut x1, mut y0, mut y1) =
            (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for p in curves.iter().flatten() {
            x0 = x0.min(p.x);
            x1 = x1.max(p.x);
            y0 = y0.min(p.lo.min(p.y));
            y1 = y1.max(p.hi.max(p.y));
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-6 * y0.abs().max(1.0));
        let (y0, y1) = (y0 - pad, y1 + pad);

        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .x_label_formatter(&|x| steps_label(*x))
            .y_label_formatter(&|y| number_label(*y))
            .light_line_style(RGBColor(244, 244, 244))
            .draw()?;

        for (c, points) in self.curves.iter().zip(&curves) {
            if points.iter().all(|p| p.lo == p.y && p.hi == p.y) {
                continue;
            }
            let color = rgb(c.color);
            let mut band: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.hi)).collect();
            band.extend(points.iter().rev().map(|p| (p.x, p.lo)));
            chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.15).filled())))?;
        }
        for (c, points) in self.curves.iter().zip(&curves) {
            let color = rgb(c.color);
            let line: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.y)).collect();
            let style = color.stroke_width(2);
            if c.markers {
                chart.draw_series(line.iter().map(|&xy| Circle::new(xy, 3, color.filled())))?;
            }
            if c.dashed {
                chart
                    .draw_series(DashedLineSeries::new(line, 9, 5, style))?
                    .label(c.label.as_str())
                    .legend(move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 3, style));
            } else {
                chart
                    .draw_series(LineSeries::new(line, style))?
                    .label(c.label.as_str())
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
}

fn rgb((r, g, b): (u8, u8, u8)) -> RGBColor {
    RGBColor(r, g, b)
}

/// Points with a finite x and y; a non-finite band edge collapses onto the line.
fn finite_points(points: &[Point]) -> Vec<Point> {
    points
        .iter()
        .filter(|p| p.x.is_finite() && p.y.is_finite())
        .map(|p| Point {
            lo: if p.lo.is_finite() { p.lo } else { p.y },
            hi: if p.hi.is_finite() { p.hi } else { p.y },
            ..*p
        })
        .collect()
}

/// Registers the embedded font once. It is a fixed, valid TTF compiled in, so failing here is a build
/// defect; it is still reported as an error, because a plot must never take its caller down.
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(anyhow!("the embedded DejaVu Sans font could not be loaded")) }
}

/// Writes `bytes` to `path` through a temporary file in the same folder (fsynced), then renames it into
/// place, so a reader sees the old file or the new one, never a half-written one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Unique per process and call, so two writers of the same file never share a temporary file.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(
        ".{name}.tmp{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// 1500 -> "1.5k", 1000000 -> "1M".
pub fn steps_label(x: f64) -> String {
    if x.abs() >= 1e6 {
        format!("{}M", trim_zeros(format!("{:.2}", x / 1e6)))
    } else if x.abs() >= 1e3 {
        format!("{}k", trim_zeros(format!("{:.1}", x / 1e3)))
    } else {
        format!("{x:.0}")
    }
}

/// Axis labels without trailing zeros: -900, 12.5, 0.25.
pub fn number_label(y: f64) -> String {
    let s = if y.abs() >= 100.0 { format!("{y:.0}") } else { format!("{y:.2}") };
    let s = trim_zeros(s);
    if s == "-0" { "0".into() } else { s }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(steps_label(1_000_000.0), "1M");
        assert_eq!(steps_label(250_000.0), "250k");
        assert_eq!(steps_label(1_500.0), "1.5k");
        assert_eq!(steps_label(200.0), "200");
        assert_eq!(number_label(-900.0), "-900");
        assert_eq!(number_label(12.5), "12.5");
        assert_eq!(number_label(-0.001), "0");
    }

    fn curve(points: Vec<Point>) -> Curve {
        Curve { label: "mean".into(), color: (31, 119, 180), dashed: false, markers: true, points }
    }

    fn chart(curves: Vec<Curve>) -> Chart {
        Chart {
            title: "Pendulum-v1: 3 evaluations".into(),
            x_desc: "steps".into(),
            y_desc: "return".into(),
            curves,
        }
    }

    #[test]
    fn png_and_svg_are_complete_documents() {
        let pts = (0..3)
            .map(|i| Point { x: i as f64 * 100.0, y: -1000.0 + i as f64, lo: -1100.0, hi: -900.0 })
            .collect();
        let c = chart(vec![curve(pts)]);
        let png = c.png().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, right after the signature and chunk header.
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), SIZE.0);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), SIZE.1);
        assert!(png.ends_with(b"IEND\xae\x42\x60\x82"), "a PNG ends with its IEND chunk");
        let svg = c.svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        assert!(svg.contains("Pendulum-v1: 3 evaluations") && svg.contains("mean"));
    }

    #[test]
    fn degenerate_inputs_draw_without_error() {
        let one = vec![Point { x: 0.0, y: -5.0, lo: -5.0, hi: -5.0 }];
        let nan = vec![
            Point { x: 0.0, y: f64::NAN, lo: 0.0, hi: 0.0 },
            Point { x: 1.0, y: 2.0, lo: f64::NAN, hi: f64::INFINITY },
        ];
        for c in [chart(vec![]), chart(vec![curve(vec![])]), chart(vec![curve(one)]), chart(vec![curve(nan)])]
        {
            c.png().unwrap();
            c.svg().unwrap();
        }
    }

    #[test]
    fn write_replaces_both_files_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("spikerl-plot-write-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let stem = dir.join("evals");
        fs::write(dir.join("evals.png"), b"old").unwrap();
        chart(vec![curve(vec![Point { x: 0.0, y: 1.0, lo: 0.0, hi: 2.0 }])]).write(&stem).unwrap();
        assert_eq!(&fs::read(dir.join("evals.png")).unwrap()[1..4], b"PNG");
        assert!(fs::read_to_string(dir.join("evals.svg")).unwrap().contains("</svg>"));
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // A destination that cannot be replaced (a folder) is an error, and the temporary file is gone.
        fs::create_dir(dir.join("blocked.png")).unwrap();
        assert!(write_atomic(&dir.join("blocked.png"), b"x").is_err());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 3);
        fs::remove_dir_all(&dir).unwrap();
    }
}
