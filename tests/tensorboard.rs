//! Every run folder holds TensorBoard event files under `tb/`, read here with TensorBoard's own reader
//! (`EventAccumulator`, in the virtual environment scripts/setup_test_deps.sh makes): a short lockstep
//! run of a spiking policy and a short `spikerl learner` + actor run of an ANN. The evaluation scalars
//! must equal evals.csv's figures at the same env steps, the training scalars must be there and finite,
//! and evals.csv must carry a spiking policy's per-population columns.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

/// Reads every scalar of `dir`'s TensorBoard files as {tag: [[step, value], ...]} (values that are not
/// finite come back as strings, since JSON has no NaN).
const READER: &str = r#"
import json, math, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
out = {}
for tag in acc.Tags()["scalars"]:
    out[tag] = [[e.step, e.value if math.isfinite(e.value) else str(e.value)] for e in acc.Scalars(tag)]
print(json.dumps(out))
"#;

type Scalars = BTreeMap<String, Vec<(u64, f64)>>;

fn read_tensorboard(run: &Path) -> Scalars {
    let tb = run.join("tb");
    let files: Vec<String> = std::fs::read_dir(&tb)
        .unwrap_or_else(|e| panic!("{}: {e}", tb.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !files.is_empty() && files.iter().all(|f| f.starts_with("events.out.tfevents.")),
        "event files: {files:?}"
    );
    let out =
        std::process::Command::new(tensorboard_python()).args(["-c", READER]).arg(&tb).output().unwrap();
    assert!(out.status.success(), "the reader failed: {}", String::from_utf8_lossy(&out.stderr));
    let json: BTreeMap<String, Vec<Vec<Value>>> = serde_json::from_slice(&out.stdout).unwrap();
    json.into_iter()
        .map(|(tag, points)| {
            let points = points
                .iter()
                .map(|p| {
                    let value = p[1].as_f64().unwrap_or_else(|| panic!("{tag}: {} is not finite", p[1]));
                    (p[0].as_u64().unwrap(), value)
                })
                .collect();
            (tag, points)
        })
        .collect()
}

/// evals.csv as rows of column name -> cell.
fn evals_csv(run: &Path) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let text = std::fs::read_to_string(run.join("evals.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines.map(|l| header.iter().cloned().zip(l.split(',').map(String::from)).collect()).collect();
    (header, rows)
}

fn cell(row: &HashMap<String, String>, column: &str) -> f64 {
    row[column].parse().unwrap_or_else(|e| panic!("{column} = {:?}: {e}", row[column]))
}

/// `tag`'s points equal evals.csv's `column` at every evaluation's step (as f32, which TensorBoard keeps).
fn check_against_csv(tb: &Scalars, rows: &[HashMap<String, String>], tag: &str, column: &str) {
    let points = tb.get(tag).unwrap_or_else(|| panic!("no {tag} in {:?}", tb.keys()));
    let want: Vec<(u64, f64)> = rows.iter().map(|r| (cell(r, "step") as u64, cell(r, column))).collect();
    assert_eq!(points.len(), want.len(), "{tag}: {points:?} vs evals.csv {want:?}");
    for (&(step, value), &(csv_step, csv_value)) in points.iter().zip(&want) {
        assert_eq!(step, csv_step, "{tag}");
        // evals.csv rounds to 6 decimals (4 for energy), TensorBoard to f32.
        let tolerance = 1e-6 * csv_value.abs().max(1.0) + 1e-4;
        assert!((value - csv_value).abs() <= tolerance, "{tag} at {step}: {value} vs evals.csv {csv_value}");
    }
}

fn check_training_scalars(tb: &Scalars, tags: &[&str]) {
    for tag in tags {
        let points = tb.get(*tag).unwrap_or_else(|| panic!("no {tag} in {:?}", tb.keys()));
        assert!(!points.is_empty(), "{tag}");
        // `read_tensorboard` already refused values that are not finite.
        if *tag == "train/iterations_per_second" {
            assert!(points.iter().all(|p| p.1 > 0.0), "{tag}: {points:?}");
        }
    }
}

#[test]
fn a_lockstep_spiking_run_writes_evaluations_losses_and_activity() {
    if !require(Need::TensorboardPython) {
        return;
    }
    let dir = temp_dir("tensorboard-sync");
    let run = dir.join("run");
    let started = std::time::Instant::now();
    let out = spikerl()
        .args(["train", "--env", "Pendulum-v1", "--algo", "proxy", "--neuron", "lif", "--sync"])
        .args(["--proxy-steps", "1", "--steps", "200", "--random-steps", "256", "--eval-every", "150"])
        .args(["--eval-episodes", "2", "--threads", "1", "--seed", "3", "--no-progress", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("lockstep run: {:.1} s", started.elapsed().as_secs_f64());

    // evals.csv: the columns every run has, then the spiking populations' (encoder, 2 hidden, output).
    let (header, rows) = evals_csv(&run);
    let layers = ["layers.0", "layers.1", "layers.2"];
    let mut extra = vec!["firing_rate_encoder".to_string()];
    for what in ["firing_rate_", "dead_", "saturated_"] {
        extra.extend(layers.iter().map(|l| format!("{what}{l}")));
    }
    assert_eq!(header[..2], ["step", "avg_return"]);
    assert_eq!(header[header.len() - extra.len()..], extra[..], "{header:?}");
    assert_eq!(rows.iter().map(|r| cell(r, "step") as u64).collect::<Vec<_>>(), [0, 150, 300, 450, 456]);
    for row in &rows {
        let neurons = [256.0, 256.0, 10.0]; // Pendulum: 1 action x population 10
        for (l, n) in layers.iter().zip(neurons) {
            let rate = cell(row, &format!("firing_rate_{l}"));
            let (dead, saturated) = (cell(row, &format!("dead_{l}")), cell(row, &format!("saturated_{l}")));
            assert!((0.0..=1.0).contains(&rate) && dead + saturated <= n, "{l}: {row:?}");
            // All dead: rate 0; all saturated: rate 1.
            assert!(dead < n || rate == 0.0, "{l}: {row:?}");
            assert!(saturated < n || rate == 1.0, "{l}: {row:?}");
        }
    }

    let tb = read_tensorboard(&run);
    eprintln!("tags: {:?}", tb.keys().collect::<Vec<_>>());
    for (tag, column) in [
        ("eval/return_mean", "avg_return"),
        ("eval/return_std", "std_return"),
        ("eval/return_min", "min_return"),
        ("eval/return_max", "max_return"),
        ("eval/energy_nj_per_inference", "energy_nj_per_inference"),
        ("firing_rate/network", "firing_rate"),
        ("firing_rate/encoder", "firing_rate_encoder"),
    ] {
        check_against_csv(&tb, &rows, tag, column);
    }
    for l in layers {
        check_against_csv(&tb, &rows, &format!("firing_rate/{l}"), &format!("firing_rate_{l}"));
        check_against_csv(&tb, &rows, &format!("dead_neurons/{l}"), &format!("dead_{l}"));
        check_against_csv(&tb, &rows, &format!("saturated_neurons/{l}"), &format!("saturated_{l}"));
    }
    let sops = &tb["eval/sops_per_inference"];
    assert!(sops.iter().zip(&rows).all(|(p, r)| (p.1 - cell(r, "sops_per_inference")).abs() < 0.1));
    check_training_scalars(
        &tb,
        &[
            "train/critic_loss",
            "train/actor_loss",
            "train/proxy_loss",
            "train/q_mean",
            "train/td_target_mean",
            "train/iterations_per_second",
        ],
    );
    // Training starts after the random steps: the first losses come with the evaluation at step 300.
    assert_eq!(tb["train/critic_loss"].iter().map(|p| p.0).collect::<Vec<_>>(), [300, 450, 456]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_learner_with_an_actor_writes_evaluations_and_losses() {
    if !require(Need::TensorboardPython) {
        return;
    }
    let dir = temp_dir("tensorboard-learner");
    let run = dir.join("run");
    let (grpc, metrics, actor_metrics) = (free_port(), free_port(), free_port());
    let mut procs = Processes::default();
    // An ANN (cheap iterations) for more than 1000 iterations with one evaluation at the start and one
    // at the end: the losses of the 1000-iteration cadence come between them.
    let args = ["--steps", "1100", "--random-steps", "300", "--eval-every", "100000", "--eval-episodes", "2"];
    let learner = procs.spawn("learner", learner_cmd(grpc, metrics, &run, &args), &dir.join("learner.log"));
    let metrics_addr = format!("127.0.0.1:{actor_metrics}");
    let actor = actor_cmd(grpc, "tb-actor", &["--metrics", &metrics_addr]);
    procs.spawn("actor", actor, &dir.join("actor.log"));
    let status = procs.wait(learner, Duration::from_secs(300)).expect("the learner finished within 300 s");
    let log = std::fs::read_to_string(dir.join("learner.log")).unwrap_or_default();
    assert!(status.success(), "learner failed: {status}\n{log}");

    // An ANN: evals.csv has only the columns every run has.
    let (header, rows) = evals_csv(&run);
    assert_eq!(header.len(), 12, "{header:?}");
    assert_eq!(header[11], "energy_nj_per_inference");
    assert_eq!(rows.len(), 2, "{rows:?}");

    let tb = read_tensorboard(&run);
    eprintln!("tags: {:?}", tb.keys().collect::<Vec<_>>());
    for (tag, column) in [
        ("eval/return_mean", "avg_return"),
        ("eval/return_std", "std_return"),
        ("eval/return_min", "min_return"),
        ("eval/return_max", "max_return"),
        ("eval/energy_nj_per_inference", "energy_nj_per_inference"),
    ] {
        check_against_csv(&tb, &rows, tag, column);
    }
    assert!(!tb.keys().any(|t| t.starts_with("firing_rate/") || t.contains("neurons")), "{:?}", tb.keys());
    let train = ["train/critic_loss", "train/actor_loss", "train/q_mean", "train/td_target_mean"];
    check_training_scalars(&tb, &[&train[..], &["train/iterations_per_second"]].concat());
    assert!(!tb.contains_key("train/proxy_loss"), "no proxy for an ANN");
    // One write after 1000 iterations, one with the final evaluation.
    assert_eq!(tb["train/critic_loss"].len(), 2, "{:?}", tb["train/critic_loss"]);
    let _ = std::fs::remove_dir_all(&dir);
}
