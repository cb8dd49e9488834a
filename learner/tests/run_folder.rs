//! A real short lockstep run leaves the run folder users look at: evals.csv and the evaluation curve
//! (evals.png, evals.svg), redrawn after every evaluation while the run goes on.

use spikerl_algo::{Algo, RunConfig};
use spikerl_learner::storage::run_folder::{Manifest, RunFolder};
use spikerl_learner::training::lockstep;
use spikerl_snn::NeuronKind;
use std::path::Path;
use std::sync::atomic::AtomicBool;

fn csv_rows(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("evals.csv")).map(|t| t.lines().count().saturating_sub(1)).unwrap_or(0)
}

/// Checks evals.png and evals.svg as a viewer would find them after `n` evaluations; returns the PNG.
fn check_curve(dir: &Path, n: usize) -> Vec<u8> {
    let png = std::fs::read(dir.join("evals.png"))
        .unwrap_or_else(|e| panic!("evals.png after {n} evaluations: {e}"));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&png[12..16], b"IHDR");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), spikerl_plot::SIZE, "PNG size");
    assert!(png.len() > 10_000, "a drawn chart, not an empty image: {} bytes", png.len());
    assert!(png.ends_with(b"IEND\xae\x42\x60\x82"), "the PNG is complete");
    let svg = std::fs::read_to_string(dir.join("evals.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "the SVG is complete");
    let count = format!("{n} evaluation{}", if n == 1 { "" } else { "s" });
    assert!(svg.contains(&count), "the SVG shows {count}");
    png
}

#[test]
fn a_lockstep_run_redraws_its_evaluation_curve_after_every_evaluation() {
    tch::set_num_threads(1);
    let mut cfg = RunConfig::paper("Pendulum-v1", Algo::Ann, NeuronKind::Lif, 2);
    cfg.steps = 244;
    cfg.random_steps = 256;
    cfg.eval_every = 100;
    cfg.eval_episodes = 2;
    let dir = std::env::temp_dir().join(format!("spikerl-run-folder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let manifest = Manifest::starting(&cfg, "curve", "sync", 1, "test").unwrap();
    let mut run_folder = RunFolder::create(&dir, manifest).unwrap();

    // The progress callback runs on the training thread right after each step (and after the final
    // evaluation): every new evals.csv row must already have its curve on disk.
    let (mut seen, mut last_png, mut redraws) = (0, Vec::new(), 0);
    let started = std::time::Instant::now();
    let trainer = lockstep::run(
        &cfg,
        tch::Device::Cpu,
        &mut run_folder,
        Default::default(),
        &AtomicBool::new(false),
        |_| {
            let rows = csv_rows(&dir);
            if rows != seen {
                assert_eq!(rows, seen + 1, "one evaluation at a time");
                let png = check_curve(&dir, rows);
                assert_ne!(png, last_png, "evaluation {rows} redrew the PNG");
                (seen, last_png, redraws) = (rows, png, redraws + 1);
            }
        },
    )
    .unwrap();

    // Evaluations at steps 0, 100, ..., 500: six rows, six redraws, and nothing else left in the folder.
    assert_eq!(trainer.evals.len(), 6, "{:?}", trainer.evals.iter().map(|e| e.step).collect::<Vec<_>>());
    assert_eq!((csv_rows(&dir), redraws), (6, 6));
    check_curve(&dir, 6);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["checkpoints", "evals.csv", "evals.png", "evals.svg", "manifest.json", "tb"]);
    eprintln!(
        "{redraws} redraws in a {:.1} s run; final PNG {} bytes",
        started.elapsed().as_secs_f64(),
        last_png.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
