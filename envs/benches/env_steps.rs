//! Environment throughput with uniform random actions: `cargo bench -p spikerl-envs`.
//!
//! Prints env steps per second for every id on one thread (through `Env::step_into`, resetting when an
//! episode ends); then HalfCheetah three ways to show the wrapper costs nothing next to the physics: a
//! raw `mj_step` loop doing what one env step does, `Env::step_into`, and the allocating `Env::step`;
//! then `VecEnv` scaling: N = 2, 4, 8 HalfCheetah-v4 envs on 1 and 2 threads, total env steps per
//! second and their ratio, and the fixed cost of a threaded step (measured with Pendulum, whose step
//! is too cheap to hide it).
//!
//! `SPIKERL_BENCH_SECS` sets the time per measurement (default 1 s). Arguments after `--` select
//! sections: `ids`, `overhead`, `scaling` (default: all), e.g.
//! `cargo bench -p spikerl-envs --bench env_steps -- scaling`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mujoco_rs::prelude::{MjData, MjModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spikerl_envs::{known_ids, make, vector::VecEnv};

fn budget() -> Duration {
    let secs = std::env::var("SPIKERL_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    Duration::from_secs_f64(secs)
}

/// A pool of random actions in the box, drawn before timing.
fn actions(low: &[f64], high: &[f64], n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    (0..n)
        .flat_map(|_| low.iter().zip(high).map(|(&l, &h)| rng.random_range(l..h) as f32).collect::<Vec<_>>())
        .collect()
}

/// Runs `step` (given the step index) in batches until the budget is spent; returns steps per second.
fn rate(mut step: impl FnMut(usize)) -> f64 {
    let budget = budget();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        for _ in 0..256 {
            step(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

const POOL: usize = 4096;

fn env_rate(id: &str, allocating: bool) -> f64 {
    let mut env = make(id).unwrap();
    let spec = env.spec().clone();
    let pool = actions(&spec.act_low, &spec.act_high, POOL);
    let mut obs = vec![0.0; spec.obs_dim];
    env.reset_into(Some(0), &mut obs);
    let a = spec.act_dim;
    rate(|t| {
        let action = &pool[(t % POOL) * a..(t % POOL + 1) * a];
        let (terminated, truncated) = if allocating {
            let s = env.step(action);
            (s.terminated, s.truncated)
        } else {
            let s = env.step_into(action, &mut obs).unwrap();
            (s.terminated, s.truncated)
        };
        if terminated || truncated {
            env.reset_into(None, &mut obs);
        }
    })
}

/// What one HalfCheetah step does, without any of our code: ctrl, 5 x mj_step, mj_rnePostConstraint.
fn raw_cheetah_rate() -> f64 {
    let model = MjModel::from_xml_string(include_str!("../assets/half_cheetah.xml")).unwrap();
    let mut data = MjData::new(&model);
    let pool = actions(&[-1.0; 6], &[1.0; 6], POOL);
    rate(|t| {
        if t % 1000 == 0 {
            data.reset();
            data.forward();
        }
        let action = &pool[(t % POOL) * 6..(t % POOL + 1) * 6];
        for (c, &x) in data.ctrl_mut().iter_mut().zip(action) {
            *c = f64::from(x);
        }
        for _ in 0..5 {
            data.step();
        }
        data.rne_post_constraint();
    })
}

/// `n` envs `id` on `threads` threads: total env steps per second.
fn vec_rate(id: &str, n: usize, threads: usize) -> f64 {
    let mut v = VecEnv::with_threads(id, n, 0, threads).unwrap();
    let spec = v.spec().clone();
    let pool = actions(&spec.act_low, &spec.act_high, POOL);
    let width = n * spec.act_dim;
    let batches = POOL * spec.act_dim / width;
    // Each call steps n envs.
    n as f64
        * rate(|t| {
            let b = t % batches;
            v.step(&pool[b * width..(b + 1) * width]).unwrap();
        })
}

/// Rounds of each measurement in the overhead and scaling sections, interleaved, best kept: on a
/// shared machine, load changes between rows otherwise swamp what is being compared.
const ROUNDS: usize = 5;

fn per_id() {
    println!("{:<28} {:>14}", "environment (one thread)", "env steps/s");
    for &id in known_ids() {
        println!("{id:<28} {:>14.0}", env_rate(id, false));
    }
}

fn overhead() {
    println!("HalfCheetah-v5 overhead check  env steps/s (best of {ROUNDS}, interleaved)");
    let (mut raw, mut into, mut alloc) = (0.0f64, 0.0f64, 0.0f64);
    for _ in 0..ROUNDS {
        raw = raw.max(raw_cheetah_rate());
        into = into.max(env_rate("HalfCheetah-v5", false));
        alloc = alloc.max(env_rate("HalfCheetah-v5", true));
    }
    println!("{:<28} {raw:>14.0}", "raw mj_step loop");
    println!("{:<28} {into:>14.0}  ({:+.1}%)", "Env::step_into", 100.0 * (into / raw - 1.0));
    println!("{:<28} {alloc:>14.0}  ({:+.1}%)", "Env::step (allocating)", 100.0 * (alloc / raw - 1.0));
    println!("{:<28} {:>14.0}", "VecEnv x8 (sequential)", vec_rate("HalfCheetah-v5", 8, 1));
}

/// Iterations per second of a dependent integer multiply-add chain on each of `threads` threads,
/// summed: pure CPU, no memory traffic, no synchronisation.
fn spin_rate(threads: usize) -> f64 {
    let budget = budget();
    let total: u64 = std::thread::scope(|s| {
        let spinners: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let start = Instant::now();
                    let (mut n, mut x) = (0u64, 1u64);
                    while start.elapsed() < budget {
                        for _ in 0..10_000 {
                            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
                        }
                        n += 10_000;
                    }
                    n
                })
            })
            .collect();
        spinners.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / budget.as_secs_f64()
}

fn scaling() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "VecEnv scaling, HalfCheetah-v4, total env steps/s (best of {ROUNDS}, interleaved; {cores} cores)"
    );
    // The ceiling: what two threads of pure arithmetic get over one, measured in the same rounds. On
    // a machine that others load (or where the scheduler groups a session's threads) it is below 2,
    // and no threading of the envs can beat it.
    println!("{:<8} {:>12} {:>12} {:>8} {:>9}", "envs", "1 thread", "2 threads", "ratio", "ceiling");
    for n in [2, 4, 8] {
        let (mut one, mut two, mut spin_one, mut spin_two) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for _ in 0..ROUNDS {
            one = one.max(vec_rate("HalfCheetah-v4", n, 1));
            two = two.max(vec_rate("HalfCheetah-v4", n, 2));
            spin_one = spin_one.max(spin_rate(1));
            spin_two = spin_two.max(spin_rate(2));
        }
        println!("{n:<8} {one:>12.0} {two:>12.0} {:>7.2}x {:>8.2}x", two / one, spin_two / spin_one);
    }
    // Pendulum's step costs well under a microsecond: the caller has stepped both envs before the
    // worker is awake, so the difference between one and two threads is the fixed cost of a threaded
    // step (locks, the wake-up call, the completion check).
    let (mut one, mut two) = (0.0f64, 0.0f64);
    for _ in 0..ROUNDS {
        one = one.max(vec_rate("Pendulum-v1", 2, 1));
        two = two.max(vec_rate("Pendulum-v1", 2, 2));
    }
    // Rates count env steps; a VecEnv step is 2 of them.
    let (us_one, us_two) = (2e6 / one, 2e6 / two);
    println!(
        "fixed cost of a threaded step (Pendulum-v1 x2): {us_one:.2} us on 1 thread, {us_two:.2} us on 2: {:+.2} us",
        us_two - us_one
    );
}

fn main() {
    // `cargo test` runs benches once in test mode with `--bench` absent; keep that quick.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let sections: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let known = ["ids", "overhead", "scaling"];
    if let Some(bad) = sections.iter().find(|s| !known.contains(&s.as_str())) {
        eprintln!("unknown section '{bad}'; sections: {}", known.join(", "));
        std::process::exit(2);
    }
    let wanted = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    let mut first = true;
    for (name, section) in [("ids", per_id as fn()), ("overhead", overhead), ("scaling", scaling)] {
        if wanted(name) {
            if !first {
                println!();
            }
            first = false;
            section();
        }
    }
}
