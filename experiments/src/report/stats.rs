//! The arithmetic of the report, pure and unit-tested: the paper's metric, mean and std over seeds,
//! relative gains (APG, proxy over vanilla), and learning curves averaged over seeds.

/// Mean; `None` for no values.
pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Population standard deviation (divides by n, as `numpy.std`, which the paper's code uses).
pub fn std_pop(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    Some((xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt())
}

/// Sample standard deviation (divides by n - 1); `None` below two values. Exported for completeness.
pub fn std_sample(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs)?;
    Some((xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64).sqrt())
}

/// The paper's per-run metric: the maximum over evaluations of the average evaluation return.
pub fn max_average_return(avg_returns: &[f64]) -> Option<f64> {
    avg_returns.iter().copied().filter(|x| x.is_finite()).reduce(f64::max)
}

/// `x / base - 1`, written `(x - base) / |base|` so that it keeps its meaning ("how much better") when
/// returns are negative (Pendulum). Identical to the paper's definition for positive `base`.
pub fn relative(x: f64, base: f64) -> Option<f64> {
    (base != 0.0 && x.is_finite() && base.is_finite()).then(|| (x - base) / base.abs())
}

/// Mean over environments of `relative(method, baseline)`, over the environments both have; with the
/// number of environments used. APG is this with the ANN as baseline; the proxy's gain is this with the
/// vanilla SNN of the same neuron as baseline.
pub fn mean_relative<'a>(pairs: impl IntoIterator<Item = (f64, f64)> + 'a) -> Option<(f64, usize)> {
    let rel: Vec<f64> = pairs.into_iter().filter_map(|(x, base)| relative(x, base)).collect();
    mean(&rel).map(|m| (m, rel.len()))
}

/// Seed spread: std / |mean|.
pub fn spread(mean: f64, std: f64) -> Option<f64> {
    (mean != 0.0).then(|| std / mean.abs())
}

/// One point of a learning curve averaged over seeds.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CurvePoint {
    pub step: f64,
    pub mean: f64,
    /// Population std over the seeds at this step.
    pub std: f64,
    pub n: usize,
}

/// Averages per-seed curves `(step, value)` (each sorted by step). Runs evaluated at the same steps (the
/// lockstep protocol) are averaged point by point; otherwise each curve is interpolated linearly onto the
/// union of their steps. Points past the end of a shorter curve average the curves that reach them.
pub fn average_curves(curves: &[Vec<(f64, f64)>]) -> Vec<CurvePoint> {
    let mut steps: Vec<f64> = curves.iter().flatten().map(|p| p.0).collect();
    steps.sort_by(f64::total_cmp);
    steps.dedup();
    steps
        .into_iter()
        .filter_map(|s| {
            let vals: Vec<f64> = curves.iter().filter_map(|c| interpolate(c, s)).collect();
            Some(CurvePoint { step: s, mean: mean(&vals)?, std: std_pop(&vals)?, n: vals.len() })
        })
        .collect()
}

/// The curve's value at `step` (linear between its points), `None` outside its range.
pub fn interpolate(curve: &[(f64, f64)], step: f64) -> Option<f64> {
    let first = curve.first()?;
    let last = curve.last()?;
    if step < first.0 || step > last.0 {
        return None;
    }
    let i = curve.partition_point(|p| p.0 < step);
    let (x1, y1) = curve[i];
    if x1 == step || i == 0 {
        return Some(y1);
    }
    let (x0, y0) = curve[i - 1];
    Some(y0 + (y1 - y0) * (step - x0) / (x1 - x0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn mean_and_both_stds() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        close(mean(&xs).unwrap(), 5.0);
        close(std_pop(&xs).unwrap(), 2.0);
        close(std_sample(&xs).unwrap(), (32.0f64 / 7.0).sqrt());
        assert_eq!(std_sample(&[1.0]), None);
        assert_eq!(mean(&[]), None);
        close(std_pop(&[3.0]).unwrap(), 0.0);
    }

    #[test]
    fn max_average_return_skips_nan() {
        assert_eq!(max_average_return(&[-5.0, f64::NAN, -2.5, -7.0]), Some(-2.5));
        assert_eq!(max_average_return(&[]), None);
    }

    #[test]
    fn relative_gains_as_the_paper_defines_them() {
        close(relative(150.0, 100.0).unwrap(), 0.5);
        // Negative returns: -500 is better than -1000, so the gain is positive.
        close(relative(-500.0, -1000.0).unwrap(), 0.5);
        assert_eq!(relative(1.0, 0.0), None);
        let (m, n) = mean_relative([(110.0, 100.0), (45.0, 50.0), (7.0, 0.0)]).unwrap();
        assert_eq!(n, 2);
        close(m, (0.1 - 0.1) / 2.0);
        close(spread(-200.0, 50.0).unwrap(), 0.25);
    }

    #[test]
    fn the_papers_own_gains_come_out_of_its_table() {
        // method.md: PT over vanilla, LIF +32%, CLIF +15%, DN +5% (IDP, Ant, HalfCheetah, Hopper, Walker2d).
        let lif = mean_relative([
            (9348.0, 9347.0),
            (5383.0, 4294.0),
            (10103.0, 9404.0),
            (3385.0, 3520.0),
            (4314.0, 1862.0),
        ]);
        let clif = mean_relative([
            (9351.0, 9351.0),
            (5014.0, 4590.0),
            (9663.0, 9594.0),
            (3526.0, 2772.0),
            (4564.0, 3307.0),
        ]);
        let dn = mean_relative([
            (9350.0, 9350.0),
            (5400.0, 4800.0),
            (9347.0, 9147.0),
            (3507.0, 3446.0),
            (4277.0, 3964.0),
        ]);
        assert_eq!((lif.unwrap().0 * 100.0).round(), 32.0);
        assert_eq!((clif.unwrap().0 * 100.0).round(), 15.0);
        assert_eq!((dn.unwrap().0 * 100.0).round(), 5.0);
    }

    #[test]
    fn curves_aligned_and_interpolated() {
        let a = vec![(0.0, 0.0), (10.0, 10.0), (20.0, 20.0)];
        let b = vec![(0.0, 2.0), (10.0, 4.0), (20.0, 6.0)];
        let avg = average_curves(&[a.clone(), b]);
        assert_eq!(avg.len(), 3);
        assert_eq!(avg[1], CurvePoint { step: 10.0, mean: 7.0, std: 3.0, n: 2 });
        // c is evaluated at other steps and stops early: interpolated at 10, absent at 20.
        let c = vec![(0.0, 0.0), (5.0, 1.0), (15.0, 3.0)];
        let avg = average_curves(&[a, c]);
        let steps: Vec<f64> = avg.iter().map(|p| p.step).collect();
        assert_eq!(steps, [0.0, 5.0, 10.0, 15.0, 20.0]);
        assert_eq!(avg[2].n, 2);
        close(avg[2].mean, (10.0 + 2.0) / 2.0);
        assert_eq!(avg[4], CurvePoint { step: 20.0, mean: 20.0, std: 0.0, n: 1 });
        assert_eq!(interpolate(&[], 1.0), None);
    }
}
