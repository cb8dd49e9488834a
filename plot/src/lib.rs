//! Line charts with shaded bands, as PNG and SVG: the run folder's evaluation curve (written by the
//! learner after every evaluation) and the learning curves of `spikerl report` (experiments crate);
//! spike rasters with a firing-rate histogram ([`Raster`], `spikerl eval --raster`).
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

/// Draws a picture of `size` pixels with `draw` into an RGB buffer and encodes it as PNG.
fn render_png(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<u8>> {
    register_font()?;
    let (w, h) = size;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw(&root)?;
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

/// Draws a picture of `size` pixels with `draw` as an SVG document.
fn render_svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    register_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| anyhow!("drawing the SVG: {e}"))?;
    }
    Ok(svg)
}

impl Chart {
    /// The chart as an encoded PNG.
    pub fn png(&self) -> anyhow::Result<Vec<u8>> {
        render_png(SIZE, |root| self.draw(root).map_err(|e| anyhow!("drawing the PNG: {e}")))
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> anyhow::Result<String> {
        render_svg(SIZE, |root| self.draw(root).map_err(|e| anyhow!("drawing the SVG: {e}")))
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

/// One population's spike trains in a [`Raster`]: `spikes[t * neurons + j]` is nonzero if neuron `j`
/// fired at simulation step `t`.
#[derive(Clone, Debug)]
pub struct RasterPanel {
    pub title: String,
    pub neurons: usize,
    pub steps: usize,
    pub spikes: Vec<u8>,
}

/// Per-neuron firing rates (0 to 1) of one population, for the raster's histogram.
#[derive(Clone, Debug)]
pub struct RateSeries {
    pub label: String,
    pub rates: Vec<f64>,
}

/// A spike raster: one panel per population (neurons x simulation steps), stacked vertically, and a
/// histogram of the per-neuron firing rates under them. The height grows with the number of panels.
#[derive(Clone, Debug)]
pub struct Raster {
    pub title: String,
    /// Simulation steps per environment step: faint vertical lines separate environment steps.
    pub steps_per_env_step: usize,
    pub panels: Vec<RasterPanel>,
    pub rates: Vec<RateSeries>,
}

/// Width of a [`Raster`], in pixels.
pub const RASTER_WIDTH: u32 = 1100;
const RASTER_TITLE_HEIGHT: u32 = 44;
const RASTER_HIST_HEIGHT: u32 = 300;
const RASTER_BINS: usize = 20;
const PALETTE: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
];

impl Raster {
    fn panel_height(neurons: usize) -> u32 {
        110 + (neurons.min(300) as u32 * 9) / 20
    }

    /// Width and height in pixels (SVG user units).
    pub fn size(&self) -> (u32, u32) {
        let panels: u32 = self.panels.iter().map(|p| Self::panel_height(p.neurons)).sum();
        let hist = if self.rates.is_empty() { 0 } else { RASTER_HIST_HEIGHT };
        (RASTER_WIDTH, RASTER_TITLE_HEIGHT + panels + hist)
    }

    /// The raster as an encoded PNG.
    pub fn png(&self) -> anyhow::Result<Vec<u8>> {
        render_png(self.size(), |root| self.draw(root).map_err(|e| anyhow!("drawing the PNG: {e}")))
    }

    /// The raster as an SVG document.
    pub fn svg(&self) -> anyhow::Result<String> {
        render_svg(self.size(), |root| self.draw(root).map_err(|e| anyhow!("drawing the SVG: {e}")))
    }

    /// Writes the raster to `path` as PNG or SVG by its extension (`.png` / `.svg`), atomically.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let bytes = match ext.as_deref() {
            Some("png") => self.png()?,
            Some("svg") => self.svg()?.into_bytes(),
            _ => anyhow::bail!("{}: a raster file must end in .png or .svg", path.display()),
        };
        write_atomic(path, &bytes).with_context(|| format!("writing {}", path.display()))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let (title, body) = root.split_vertically(RASTER_TITLE_HEIGHT);
        title.draw(&Text::new(
            self.title.as_str(),
            (16, 12),
            ("sans-serif", 20).into_font().color(&BLACK),
        ))?;
        let mut breaks = Vec::new();
        let mut y = 0;
        for p in &self.panels {
            y += Self::panel_height(p.neurons) as i32;
            breaks.push(y);
        }
        let areas = body.split_by_breakpoints([] as [i32; 0], breaks);
        for (i, (p, area)) in self.panels.iter().zip(&areas).enumerate() {
            Self::draw_panel(p, area, self.steps_per_env_step, rgb(PALETTE[i % PALETTE.len()]))?;
        }
        if let Some(area) = areas.get(self.panels.len()).filter(|_| !self.rates.is_empty()) {
            self.draw_histogram(area)?;
        }
        Ok(())
    }

    fn draw_panel<DB: DrawingBackend>(
        p: &RasterPanel,
        area: &DrawingArea<DB, Shift>,
        per_env_step: usize,
        color: RGBColor,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let (steps, n) = (p.steps.max(1), p.neurons.max(1));
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, ("sans-serif", 15))
            .margin_left(16)
            .margin_right(24)
            .margin_top(4)
            .margin_bottom(4)
            .x_label_area_size(34)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..steps as f64, 0f64..n as f64)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("simulation step")
            .y_desc("neuron")
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 13))
            .x_labels(12)
            .y_labels(4)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        if per_env_step > 0 {
            let lines = (1..steps.div_ceil(per_env_step)).map(|k| {
                let x = (k * per_env_step) as f64;
                PathElement::new(vec![(x, 0.0), (x, n as f64)], RGBColor(225, 225, 225))
            });
            chart.draw_series(lines)?;
        }
        // Consecutive spikes of one neuron make one rectangle: fewer elements in the SVG.
        let mut rects = Vec::new();
        for j in 0..p.neurons {
            let fired = |t: usize| p.spikes.get(t * p.neurons + j).is_some_and(|&s| s != 0);
            let mut t = 0;
            while t < p.steps {
                if fired(t) {
                    let start = t;
                    while t < p.steps && fired(t) {
                        t += 1;
                    }
                    rects.push(((start as f64, j as f64), (t as f64, j as f64 + 1.0)));
                } else {
                    t += 1;
                }
            }
        }
        chart.draw_series(rects.into_iter().map(|(a, b)| Rectangle::new([a, b], color.filled())))?;
        Ok(())
    }

    fn draw_histogram<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let bin = |r: f64| ((r.clamp(0.0, 1.0) * RASTER_BINS as f64) as usize).min(RASTER_BINS - 1);
        let fractions: Vec<Vec<f64>> = self
            .rates
            .iter()
            .map(|s| {
                let mut h = [0.0; RASTER_BINS];
                for &r in s.rates.iter().filter(|r| r.is_finite()) {
                    h[bin(r)] += 1.0;
                }
                let total = s.rates.len().max(1) as f64;
                h.iter().map(|c| c / total).collect()
            })
            .collect();
        let top = fractions.iter().flatten().fold(0.0f64, |m, &v| m.max(v)).max(0.05) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption("Per-neuron firing rate over all evaluated inferences", ("sans-serif", 15))
            .margin_left(16)
            .margin_right(24)
            .margin_top(8)
            .margin_bottom(8)
            .x_label_area_size(38)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..1f64, 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc("firing rate (spikes per neuron and step)")
            .y_desc("fraction of neurons")
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 13))
            .x_label_formatter(&|x| number_label(*x))
            .y_label_formatter(&|y| number_label(*y))
            .light_line_style(RGBColor(244, 244, 244))
            .draw()?;
        let k = self.rates.len().max(1) as f64;
        let width = 1.0 / RASTER_BINS as f64;
        for (i, (s, h)) in self.rates.iter().zip(&fractions).enumerate() {
            let color = rgb(PALETTE[i % PALETTE.len()]);
            let bars = h.iter().enumerate().filter(|(_, f)| **f > 0.0).map(move |(b, &f)| {
                let x0 = b as f64 * width + width * i as f64 / k;
                Rectangle::new([(x0, 0.0), (x0 + width / k, f)], color.filled())
            });
            chart
                .draw_series(bars)?
                .label(s.label.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 13))
            .draw()?;
        Ok(())
    }
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

    #[test]
    fn raster_png_and_svg() {
        let steps = 20;
        let panel = |title: &str, n: usize| RasterPanel {
            title: title.into(),
            neurons: n,
            steps,
            spikes: (0..steps * n).map(|i| u8::from(i % 3 == 0)).collect(),
        };
        let r = Raster {
            title: "Pendulum-v1: spikes".into(),
            steps_per_env_step: 5,
            panels: vec![panel("encoder", 30), panel("layers.0", 256), panel("output", 10)],
            rates: vec![
                RateSeries { label: "layers.0".into(), rates: vec![0.0, 0.5, 1.0] },
                RateSeries { label: "output".into(), rates: vec![] },
            ],
        };
        let png = r.png().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), r.size().0);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), r.size().1);
        let svg = r.svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("layers.0") && svg.contains("encoder"));
        assert!(r.write(Path::new("/nonexistent/x.gif")).is_err());
    }
}
