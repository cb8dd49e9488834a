//! Learning curves: per environment, the mean over seeds of each method as a line with a band of +- one
//! (population) std, written as PNG and SVG by spikerl-plot (embedded font, atomic writes).

use super::stats::CurvePoint;
use crate::method::{Algo, Base, Method, Neuron};
use spikerl_plot::{Chart, Curve, Point};
use std::path::Path;

/// One method's curve.
pub struct Series {
    pub method: Method,
    pub points: Vec<CurvePoint>,
}

/// Colour per neuron (ANN: near black); vanilla and proxy of a neuron share it, vanilla dashed. Other
/// bases than TD3 shade it (SAC lighter, DDPG darker), so that one plot can hold a neuron's rows on
/// every base and still tell them apart.
fn color(m: &Method) -> (u8, u8, u8) {
    let (r, g, b) = neuron_color(m);
    let shade = |c: u8| match m.base {
        Base::Td3 => c,
        // Halfway to white (the ANN's near black becomes mid grey).
        Base::Sac => c + (255 - c) / 2,
        Base::Ddpg => (c as u16 * 3 / 5) as u8,
    };
    (shade(r), shade(g), shade(b))
}

fn neuron_color(m: &Method) -> (u8, u8, u8) {
    match m.neuron {
        None => (40, 40, 40),
        Some(Neuron::Lif) => (31, 119, 180),
        Some(Neuron::Clif) => (255, 127, 14),
        Some(Neuron::Dn) => (44, 160, 44),
        Some(Neuron::Plif) => (148, 103, 189),
        Some(Neuron::If) => (140, 86, 75),
    }
}

/// Writes `stem.png` and `stem.svg`.
pub fn learning_curves(stem: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    let curves = series
        .iter()
        .map(|s| Curve {
            label: format!("{} (n={})", s.method.label(), s.points.iter().map(|p| p.n).max().unwrap_or(0)),
            color: color(&s.method),
            dashed: s.method.algo == Algo::Vanilla,
            markers: false,
            points: s
                .points
                .iter()
                .map(|p| Point { x: p.step, y: p.mean, lo: p.mean - p.std, hi: p.mean + p.std })
                .collect(),
        })
        .collect();
    let chart = Chart {
        title: title.to_string(),
        x_desc: "environment steps (random ones included)".into(),
        y_desc: "average evaluation return".into(),
        curves,
    };
    chart.write(stem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn writes_png_and_svg_with_text() {
        let dir = std::env::temp_dir().join(format!("spikerl-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pts = |o: f64| {
            (0..5)
                .map(|i| CurvePoint { step: i as f64 * 100.0, mean: o + i as f64, std: 0.5, n: 2 })
                .collect()
        };
        let series = [
            Series { method: Method::ANN, points: pts(0.0) },
            Series { method: Method::new(Algo::Vanilla, Neuron::Lif), points: pts(1.0) },
            Series { method: Method::new(Algo::Proxy, Neuron::Lif), points: pts(2.0) },
            Series { method: Method::new(Algo::Proxy, Neuron::Lif).on(Base::Sac), points: pts(3.0) },
        ];
        learning_curves(&dir.join("c"), "Pendulum-v1", &series).unwrap();
        let png = std::fs::read(dir.join("c.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(dir.join("c.svg")).unwrap();
        assert!(
            svg.contains("PT-LIF (n=2)") && svg.contains("SAC PT-LIF (n=2)") && svg.contains("Pendulum-v1")
        );
        // A neuron's rows on other bases keep its hue but not its exact colour.
        let pt = Method::new(Algo::Proxy, Neuron::Lif);
        let colors: BTreeSet<_> = Base::ALL.iter().map(|&b| color(&pt.on(b))).collect();
        assert_eq!(colors.len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
