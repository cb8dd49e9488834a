//! The shipped sweep specs parse, expand to the grids they promise, and pass only options that
//! `spikerl train` has (names checked against the list below, which mirrors `spikerl train --help`;
//! the sweep itself checks against the real binary before starting).

use spikerl_experiments::method::{Algo, Method, Neuron};
use spikerl_experiments::spec::Spec;
use std::collections::BTreeSet;
use std::path::Path;

const TRAIN_OPTIONS: [&str; 19] = [
    "random-steps",
    "steps",
    "eval-every",
    "eval-episodes",
    "batch-size",
    "replay-capacity",
    "update-ratio",
    "proxy-steps",
    "proxy-lr",
    "snn-hidden",
    "timesteps",
    "device",
    "threads",
    "actors",
    "envs",
    "sync",
    "log",
    "log-json",
    "metrics",
];

fn load(name: &str) -> Spec {
    Spec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

#[test]
fn paper_table1_is_the_papers_grid() {
    let spec = load("paper-table1.toml");
    let plans = spec.expand().unwrap();
    assert_eq!(plans.len(), 5 * 7 * 5);
    let methods: BTreeSet<Method> = plans.iter().map(|p| p.method).collect();
    assert_eq!(methods.len(), 7);
    assert!(methods.contains(&Method::new(Algo::Proxy, Neuron::Dn)));
    let envs: BTreeSet<&str> = plans.iter().map(|p| p.env.as_str()).collect();
    assert_eq!(
        envs,
        BTreeSet::from(["InvertedDoublePendulum-v4", "Ant-v4", "HalfCheetah-v4", "Hopper-v4", "Walker2d-v4"])
    );
    for p in &plans {
        assert_eq!(p.option("steps"), Some("1000000"));
        assert_eq!(p.option("random-steps"), Some("25000"));
        assert_eq!(p.option("eval-every"), Some("5000"));
        assert_eq!(p.option("eval-episodes"), Some("10"));
        assert!(p.flag("sync"));
        assert!(p.options.keys().all(|k| TRAIN_OPTIONS.contains(&k.as_str())), "{:?}", p.options);
    }
    let seeds: BTreeSet<u64> = plans.iter().map(|p| p.seed).collect();
    assert_eq!(seeds, BTreeSet::from([0, 1, 2, 3, 4]));
}

#[test]
fn small_cpu_compares_three_methods_on_a_mujoco_task() {
    let plans = load("small-cpu.toml").expand().unwrap();
    assert_eq!(plans.len(), 9);
    let keys: BTreeSet<String> = plans.iter().map(|p| p.method.key()).collect();
    assert_eq!(keys, BTreeSet::from(["ann".to_string(), "vanilla-lif".to_string(), "proxy-lif".to_string()]));
    for p in &plans {
        assert!(p.env.ends_with("-v4"));
        assert!(p.flag("sync"));
        assert_eq!(p.cores(), 1);
        assert!(p.options.keys().all(|k| TRAIN_OPTIONS.contains(&k.as_str())), "{:?}", p.options);
    }
}
