//! The report on fabricated run folders whose numbers are computed by hand below.

use super::*;
use std::fs;

struct Fake<'a> {
    env: &'a str,
    algo: &'a str,
    neuron: &'a str,
    seed: u64,
    status: &'a str,
    /// (step, avg_return)
    rows: &'a [(u64, f64)],
    /// Last evaluation's (sops, firing rate, nJ).
    energy: (f64, f64, f64),
    /// `config.base`; None leaves it out, as manifests from before `--base` do.
    base: Option<&'a str>,
}

fn write_fake(root: &Path, rel: &str, f: &Fake) {
    let dir = root.join(rel);
    fs::create_dir_all(dir.join("checkpoints")).unwrap();
    let mut m = serde_json::json!({"status": f.status, "mode": "sync", "error": if f.status == "failed" { Value::from("boom\nmore") } else { Value::Null },
        "config": {"env_id": f.env, "algo": f.algo, "neuron": f.neuron, "seed": f.seed, "steps": 150, "random_steps": 50,
                   "td3": {"batch_size": 256}}});
    if let Some(base) = f.base {
        m["config"]["base"] = base.into();
    }
    fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let mut csv = String::from(run_folder_header());
    for (i, (step, ret)) in f.rows.iter().enumerate() {
        let (sops, fr, nj) = if i + 1 == f.rows.len() { f.energy } else { (1.0, 0.01, 999.0) };
        csv.push_str(&format!("{step},{ret},1.0,0,0,2,{step},0,0.1,{sops},{fr},{nj}\n"));
    }
    fs::write(dir.join("evals.csv"), csv).unwrap();
}

fn run_folder_header() -> &'static str {
    "step,avg_return,std_return,min_return,max_return,episodes,iterations,policy_version,wall_seconds,sops_per_inference,firing_rate,energy_nj_per_inference\n"
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} != {b}");
}

/// Hopper-v4: ann {1000, 1400}, vanilla-lif {600, 1000}, proxy-lif {1100, 1300}.
/// Pendulum-v1: ann {-200, -400}, vanilla-lif {-600, -600}, proxy-lif {-150, -250, -350}.
fn fabricate(root: &Path) {
    let f = |env, algo, neuron, seed, max: f64, energy| Fake {
        env,
        algo,
        neuron,
        seed,
        status: "completed",
        rows: Box::leak(vec![(0, max - 500.0), (100, max), (200, max - 100.0)].into_boxed_slice()),
        energy,
        base: None,
    };
    let ann = (0.0, 0.0, 282.0);
    write_fake(root, "Hopper-v4/ann/seed0", &f("Hopper-v4", "ann", "lif", 0, 1000.0, ann));
    write_fake(root, "Hopper-v4/ann/seed1", &f("Hopper-v4", "ann", "lif", 1, 1400.0, ann));
    write_fake(
        root,
        "Hopper-v4/vanilla-lif/seed0",
        &f("Hopper-v4", "vanilla", "lif", 0, 600.0, (500.0, 0.1, 0.0385)),
    );
    write_fake(
        root,
        "Hopper-v4/vanilla-lif/seed1",
        &f("Hopper-v4", "vanilla", "lif", 1, 1000.0, (500.0, 0.1, 0.0385)),
    );
    write_fake(
        root,
        "Hopper-v4/proxy-lif/seed0",
        &f("Hopper-v4", "proxy", "lif", 0, 1100.0, (1000.0, 0.2, 0.077)),
    );
    write_fake(
        root,
        "Hopper-v4/proxy-lif/seed1",
        &f("Hopper-v4", "proxy", "lif", 1, 1300.0, (3000.0, 0.4, 0.231)),
    );
    write_fake(root, "Pendulum-v1/ann/seed0", &f("Pendulum-v1", "ann", "lif", 0, -200.0, ann));
    write_fake(root, "Pendulum-v1/ann/seed1", &f("Pendulum-v1", "ann", "lif", 1, -400.0, ann));
    write_fake(root, "Pendulum-v1/vanilla-lif/seed0", &f("Pendulum-v1", "vanilla", "lif", 0, -600.0, ann));
    write_fake(root, "Pendulum-v1/vanilla-lif/seed1", &f("Pendulum-v1", "vanilla", "lif", 1, -600.0, ann));
    for (seed, max) in [(0, -150.0), (1, -250.0), (2, -350.0)] {
        write_fake(
            root,
            &format!("Pendulum-v1/proxy-lif/seed{seed}"),
            &f("Pendulum-v1", "proxy", "lif", seed, max, ann),
        );
    }
    // Not counted: unfinished, failed, a second copy of a seed, garbage.
    let mut interrupted = f("Hopper-v4", "proxy", "lif", 2, 5000.0, ann);
    interrupted.status = "interrupted";
    write_fake(root, "Hopper-v4/proxy-lif/seed2", &interrupted);
    let mut failed = f("Hopper-v4", "ann", "lif", 2, 5000.0, ann);
    failed.status = "failed";
    write_fake(root, "Hopper-v4/ann/seed2", &failed);
    write_fake(root, "zz-copy/ann-seed0", &f("Hopper-v4", "ann", "lif", 0, 9999.0, ann));
    fs::create_dir_all(root.join("junk")).unwrap();
    fs::write(root.join("junk/manifest.json"), "{").unwrap();
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spikerl-report-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn summary_of(root: &Path) -> Summary {
    let folders = find_run_folders(root).unwrap();
    let (runs, excluded) = load_runs(root, &folders);
    summarize(root, &runs, excluded)
}

#[test]
fn table1_numbers_by_hand() {
    let root = temp_dir("t1");
    fabricate(&root);
    let s = summary_of(&root);
    assert_eq!(s.envs, ["Hopper-v4", "Pendulum-v1"]);
    assert_eq!(s.methods, ["ann", "vanilla-lif", "proxy-lif"]);
    assert_eq!(s.completed_runs, 13);
    let cell = |env: &str, m: &str| s.table1.iter().find(|c| c.env == env && c.method == m).unwrap();

    let c = cell("Hopper-v4", "ann");
    assert_eq!(c.max_avg_returns, [1000.0, 1400.0]);
    assert_eq!((c.mean, c.std), (1200.0, 200.0));
    close(c.std_sample.unwrap(), 200.0 * 2f64.sqrt());
    close(c.seed_spread.unwrap(), 1.0 / 6.0);
    assert_eq!((c.train_steps_min, c.train_steps_max, c.env_steps_max), (150.0, 150.0, 200.0));
    assert_eq!((c.paper_mean, c.paper_std), (Some(3410.0), Some(164.0)));
    // Final evaluation is 100 below the max in every fabricated run.
    assert_eq!(c.final_avg_return_mean, 1100.0);

    let p = cell("Pendulum-v1", "proxy-lif");
    assert_eq!(p.seeds, [0, 1, 2]);
    assert_eq!(p.mean, -250.0);
    close(p.std, (20_000.0f64 / 3.0).sqrt());
    close(p.std_sample.unwrap(), 100.0);
    assert_eq!(p.paper_mean, None);
    assert_eq!(cell("Pendulum-v1", "vanilla-lif").std, 0.0);

    let m = |k: &str| s.method_summaries.iter().find(|m| m.method == k).unwrap();
    // APG: Hopper (800 - 1200) / 1200 = -1/3; Pendulum (-600 + 300) / 300 = -1.
    close(m("vanilla-lif").apg.unwrap(), -2.0 / 3.0);
    assert_eq!(m("vanilla-lif").apg_envs, 2);
    // Hopper 0; Pendulum (-250 + 300) / 300 = 1/6.
    close(m("proxy-lif").apg.unwrap(), 1.0 / 12.0);
    assert_eq!(m("ann").apg, None);
    // Gain over vanilla LIF: Hopper (1200 - 800) / 800 = 0.5; Pendulum (-250 + 600) / 600 = 7/12.
    close(m("proxy-lif").gain_over_vanilla.unwrap(), (0.5 + 7.0 / 12.0) / 2.0);
    assert_eq!(m("vanilla-lif").gain_over_vanilla, None);
    // Spread of the ANN: Hopper 200/1200, Pendulum 100/300.
    close(m("ann").mean_seed_spread.unwrap(), 0.25);
    assert_eq!((m("proxy-lif").seeds_min, m("proxy-lif").seeds_max), (2, 3));
    // The paper's figures over the same cells (Hopper-v4 only).
    close(m("vanilla-lif").paper_apg.unwrap(), 3520.0 / 3410.0 - 1.0);
    close(m("proxy-lif").paper_gain_over_vanilla.unwrap(), 3385.0 / 3520.0 - 1.0);
    close(m("ann").paper_mean_seed_spread.unwrap(), 164.0 / 3410.0);
    assert!(!s.paper_protocol);

    // Excluded: interrupted, failed, a duplicate of Hopper ann seed 0, an unreadable manifest.
    let ex: Vec<(&str, &str)> = s.excluded.iter().map(|e| (e.dir.as_str(), e.status.as_str())).collect();
    assert_eq!(
        ex,
        [
            ("Hopper-v4/ann/seed2", "failed"),
            ("Hopper-v4/proxy-lif/seed2", "interrupted"),
            ("junk", "unreadable"),
            ("zz-copy/ann-seed0", "completed")
        ]
    );
    assert!(s.excluded[0].reason.contains("boom"));
    assert!(s.excluded[3].reason.contains("Hopper-v4/ann/seed0"));
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn energy_and_curves_by_hand() {
    let root = temp_dir("energy");
    fabricate(&root);
    let s = summary_of(&root);
    let e = |m: &str| s.energy.iter().find(|r| r.env == "Hopper-v4" && r.method == m).unwrap();
    let pt = e("proxy-lif");
    assert_eq!((pt.sops_per_inference, pt.firing_rate), (Some(2000.0), Some(0.30000000000000004)));
    close(pt.energy_nj_per_inference.unwrap(), 0.154);
    close(pt.ann_energy_ratio.unwrap(), 282.0 / 0.154);
    assert_eq!(pt.macs_per_inference, None);
    let ann = e("ann");
    close(ann.macs_per_inference.unwrap(), 282_000.0 / 3.97);
    assert_eq!((ann.sops_per_inference, ann.firing_rate, ann.ann_energy_ratio), (None, None, Some(1.0)));

    let curve = s.curves.iter().find(|c| c.env == "Hopper-v4" && c.method == "vanilla-lif").unwrap();
    let pts: Vec<(f64, f64, f64, usize)> =
        curve.points.iter().map(|p| (p.step, p.mean, p.std, p.n)).collect();
    assert_eq!(pts, [(0.0, 300.0, 200.0, 2), (100.0, 800.0, 200.0, 2), (200.0, 700.0, 200.0, 2)]);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn files_written() {
    let root = temp_dir("files");
    fabricate(&root);
    let out = root.join("report");
    run(&root, &out).unwrap();
    for f in [
        "report.md",
        "report.html",
        "table1.csv",
        "methods.csv",
        "energy.csv",
        "curves.csv",
        "runs.csv",
        "summary.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    for env in ["Hopper-v4", "Pendulum-v1"] {
        assert!(out.join(format!("plots/{env}.png")).is_file());
        assert!(out.join(format!("plots/{env}.svg")).is_file());
    }
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| ANN (TD3) | 1200 ± 200 | -300 ± 100 | — | — | 25.0% | 2 | 150 |"), "{md}");
    assert!(md.contains("| PT-LIF | 1200 ± 100 | -250 ± 82 | +8.3% | +54.2% |"), "{md}");
    assert!(md.contains("| PT-LIF (paper) | 3385 ± 157 | -0.7% | -3.8% |"), "{md}");
    assert!(md.contains("![learning curves on Hopper-v4](plots/Hopper-v4.png)"));
    assert!(md.contains("`junk` (unreadable)"));
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<img src=\"plots/Pendulum-v1.png\""));
    let t1 = fs::read_to_string(out.join("table1.csv")).unwrap();
    assert!(t1.lines().any(|l| l == "Pendulum-v1,proxy-lif,PT-LIF,3,0;1;2,-150;-250;-350,-250,81.64965809277261,100,0.32659863237109044,-350,150,150,,"), "{t1}");
    let runs = fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 14);
    assert!(runs.contains("Hopper-v4/proxy-lif/seed1,Hopper-v4,proxy-lif,1,1300,1200,200,150,3"));
    let json: Value = serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["table1"].as_array().unwrap().len(), 6);
    assert_eq!(json["std"], "population (ddof = 0, as numpy.std in the paper's code)");
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn differing_configs_are_noted_and_empty_dirs_refused() {
    let diffs = config_differences(&[
        &serde_json::json!({"seed": 1, "steps": 10, "td3": {"batch_size": 256, "tau": 0.005}}),
        &serde_json::json!({"seed": 2, "steps": 10, "td3": {"batch_size": 64, "tau": 0.005}}),
    ]);
    assert_eq!(diffs, ["td3.batch_size"]);
    let root = temp_dir("empty");
    assert!(format!("{:#}", run(&root, &root.join("out")).unwrap_err()).contains("no run folders"));
    fs::remove_dir_all(&root).unwrap();
}

/// [`fabricate`]'s TD3 runs (no `config.base`) with SAC and DDPG runs on Hopper-v4 beside them:
/// sac-ann {2000, 2400} (0.1 nJ), sac-proxy-lif {1100, 1100} (0.05 nJ), ddpg-proxy-lif {500}, and a copy
/// of TD3's ann seed 0 that names its base.
fn fabricate_bases(root: &Path) {
    fabricate(root);
    let f = |algo, base, seed, max: f64, energy| Fake {
        env: "Hopper-v4",
        algo,
        neuron: "lif",
        seed,
        status: "completed",
        rows: Box::leak(vec![(0, max - 500.0), (100, max), (200, max - 100.0)].into_boxed_slice()),
        energy,
        base: Some(base),
    };
    let (ann, pt) = ((0.0, 0.0, 0.1), (1000.0, 0.2, 0.05));
    write_fake(root, "Hopper-v4/sac-ann/seed0", &f("ann", "sac", 0, 2000.0, ann));
    write_fake(root, "Hopper-v4/sac-ann/seed1", &f("ann", "sac", 1, 2400.0, ann));
    write_fake(root, "Hopper-v4/sac-proxy-lif/seed0", &f("proxy", "sac", 0, 1100.0, pt));
    write_fake(root, "Hopper-v4/sac-proxy-lif/seed1", &f("proxy", "sac", 1, 1100.0, pt));
    write_fake(root, "Hopper-v4/ddpg-proxy-lif/seed0", &f("proxy", "ddpg", 0, 500.0, pt));
    // `"base": "td3"` is the same method as no base: a second copy of that seed.
    write_fake(root, "zz-copy/td3-ann-seed0", &f("ann", "td3", 0, 9999.0, ann));
}

#[test]
fn other_bases_have_rows_of_their_own_beside_td3s() {
    let root = temp_dir("bases");
    fabricate_bases(&root);
    let s = summary_of(&root);
    // Base by base, TD3's (the paper's names) first.
    assert_eq!(s.methods, ["ann", "vanilla-lif", "proxy-lif", "sac-ann", "sac-proxy-lif", "ddpg-proxy-lif"]);
    assert_eq!(s.completed_runs, 13 + 5);
    let cell = |m: &str| s.table1.iter().find(|c| c.env == "Hopper-v4" && c.method == m).unwrap();
    // Same env, algo, neuron and seeds, other base: never merged into TD3's cell.
    assert_eq!((cell("proxy-lif").mean, cell("proxy-lif").n_seeds), (1200.0, 2));
    assert_eq!((cell("sac-proxy-lif").mean, cell("sac-proxy-lif").std), (1100.0, 0.0));
    assert_eq!((cell("sac-proxy-lif").label.as_str(), cell("sac-proxy-lif").base), ("SAC PT-LIF", Base::Sac));
    assert_eq!(cell("ddpg-proxy-lif").label, "DDPG PT-LIF");
    assert_eq!(cell("sac-ann").label, "SAC ANN");
    // The paper's numbers are TD3's only.
    assert_eq!(cell("ann").paper_mean, Some(3410.0));
    assert_eq!((cell("sac-ann").paper_mean, cell("sac-proxy-lif").paper_mean), (None, None));

    let m = |k: &str| s.method_summaries.iter().find(|m| m.method == k).unwrap();
    // APG against the ANN of the same base: (1100 - 2200) / 2200; TD3's unchanged (Hopper 0, Pendulum 1/6).
    close(m("sac-proxy-lif").apg.unwrap(), -0.5);
    close(m("proxy-lif").apg.unwrap(), 1.0 / 12.0);
    // DDPG has no ANN and no vanilla rows here: nothing to compare with (not TD3's).
    assert_eq!((m("ddpg-proxy-lif").apg, m("ddpg-proxy-lif").gain_over_vanilla), (None, None));
    assert_eq!((m("sac-proxy-lif").paper_apg, m("sac-ann").paper_mean_seed_spread), (None, None));

    // Energy against the ANN of the same base.
    let e = |k: &str| s.energy.iter().find(|r| r.env == "Hopper-v4" && r.method == k).unwrap();
    close(e("sac-proxy-lif").ann_energy_ratio.unwrap(), 0.1 / 0.05);
    close(e("proxy-lif").ann_energy_ratio.unwrap(), 282.0 / 0.154);
    assert_eq!(e("ddpg-proxy-lif").ann_energy_ratio, None);
    assert!(s.curves.iter().any(|c| c.method == "sac-ann" && c.label == "SAC ANN"));

    let dup = s.excluded.iter().find(|e| e.dir == "zz-copy/td3-ann-seed0").unwrap();
    assert!(dup.reason.contains("Hopper-v4/ann/seed0"), "{}", dup.reason);

    let out = root.join("report");
    run(&root, &out).unwrap();
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    // TD3's rows read as before; SAC's and DDPG's follow them in the same table.
    let at = |line: &str| md.find(line).unwrap_or_else(|| panic!("{line:?} not in\n{md}"));
    let rows = [
        at("| ANN (TD3) | 1200 ± 200 | -300 ± 100 | — | — | 25.0% | 2 | 150 |"),
        at("| PT-LIF | 1200 ± 100 | -250 ± 82 | +8.3% | +54.2% |"),
        at("| SAC ANN | 2200 ± 200 | — | — | — | 9.1% | 2 | 150 |"),
        at("| SAC PT-LIF | 1100 ± 0 | — | -50.0% | — | 0.0% | 2 | 150 |"),
        at("| DDPG PT-LIF | 500 ± 0 | — | — | — | 0.0% | 1 | 150 |"),
    ];
    assert!(rows.is_sorted(), "TD3, then SAC, then DDPG");
    // The published numbers stand beside TD3's rows only.
    assert!(md.contains("| PT-LIF (paper) | 3385 ± 157 |"), "{md}");
    assert!(!md.contains("SAC ANN (paper)") && !md.contains("DDPG PT-LIF (paper)"), "{md}");
    let runs = fs::read_to_string(out.join("runs.csv")).unwrap();
    assert!(
        runs.contains("Hopper-v4/sac-proxy-lif/seed1,Hopper-v4,sac-proxy-lif,1,1100,1000,200,150,3"),
        "{runs}"
    );
    let json: Value = serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let bases: Vec<&str> =
        json["method_summaries"].as_array().unwrap().iter().map(|m| m["base"].as_str().unwrap()).collect();
    assert_eq!(bases, ["td3", "td3", "td3", "sac", "sac", "ddpg"]);
    fs::remove_dir_all(&root).unwrap();
}
