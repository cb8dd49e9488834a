//! `spikerl bench ...`: micro-benchmarks (figures, not pass/fail), all in this folder. Each subcommand
//! prints a small table, or one JSON object with --json:
//!
//! - `inference` ([`inference`]): plain-Rust policy inference per action, with SOPs and energy;
//! - `update` ([`update`]): one training iteration and its phases, on synthetic minibatches;
//! - `ensemble` ([`ensemble`]): S seeds as one batched ensemble against S separate learners;
//! - `actor` ([`acting`]): the real acting loop with the policy against random actions;
//! - `video` ([`video`]): rendering and encoding (GIF, MP4) one episode's video;
//! - `checkpoint` ([`checkpoint`]): a lockstep checkpoint with a full replay buffer, and its training cost;
//! - `transport` ([`transport`]): ingest, broadcast and training over loopback gRPC, the real actor and
//!   learner code on both ends (the two crates never depend on each other; this binary joins them).
//!
//! The matrix-product probe stays an example of the algo crate (`algo/examples/gemm_probe.rs`).
//!
//! This module checks the arguments (a bad one is a [`UsageError`], exit 2) and dispatches.

mod acting;
mod checkpoint;
mod ensemble;
mod inference;
mod matmul_work;
mod measure;
mod policies;
mod synthetic;
mod transport;
mod update;
mod video;

use crate::UsageError;
use crate::cli::{BaseArg, BenchCommand};
use crate::train::{algo_of, base_of, device, neuron_of};
use spikerl_algo::RunConfig;

pub use policies::BadPolicyFile;

/// Runs one `spikerl bench` subcommand and prints its report.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Inference { env, neuron, algo, batch, actions, policy, json } => {
            if batch == 0 {
                return Err(UsageError("--batch must be positive".into()).into());
            }
            let r = inference::inference(
                &env,
                algo_of(algo),
                neuron_of(neuron),
                batch,
                actions,
                policy.as_deref(),
            )?;
            if !json {
                inference::print(&r);
            }
            print_json_if(json, &r)
        }
        BenchCommand::Update {
            env,
            base,
            algo,
            neuron,
            batch,
            device: d,
            iterations,
            threads,
            policy,
            json,
        } => {
            // libtorch panics on an empty minibatch; a zero count is the user's slip, not a crash.
            if batch == 0 || iterations == 0 || threads == Some(0) {
                return Err(UsageError("--batch, --iterations and --threads must be positive".into()).into());
            }
            set_libtorch_threads(threads);
            if base == BaseArg::Sac {
                let r = update::update_sac(
                    &env,
                    algo_of(algo),
                    neuron_of(neuron),
                    batch,
                    device(d)?,
                    iterations,
                    policy.as_deref(),
                )?;
                if !json {
                    update::print_sac(&r);
                }
                return print_json_if(json, &r);
            }
            let run = RunConfig::paper(&env, algo_of(algo), neuron_of(neuron), 0).with_base(base_of(base));
            let r = update::update(&run, batch, device(d)?, iterations, policy.as_deref())?;
            if !json {
                update::print(&r);
            }
            print_json_if(json, &r)
        }
        BenchCommand::Ensemble { env, algo, neuron, batch, device: d, seeds, iterations, threads, json } => {
            check_ensemble(batch, iterations, threads, &seeds)?;
            set_libtorch_threads(threads);
            let device = device(d)?;
            let load_before = measure::load_average();
            let bench = ensemble::ensemble(
                &env,
                algo_of(algo),
                neuron_of(neuron),
                batch,
                device,
                &seeds,
                iterations,
            )?;
            let report = ensemble::EnsembleReport { bench, load_before, load_after: measure::load_average() };
            if !json {
                ensemble::print(&report);
            }
            print_json_if(json, &report)
        }
        BenchCommand::Transport {
            env,
            ingest_actors,
            batch,
            subscribers,
            train_actors,
            ingest_rate,
            seconds,
            threads,
            client_threads,
            server_nagle,
            json,
        } => {
            let opts = transport::TransportOptions {
                env,
                ingest_actors,
                batch,
                subscribers,
                train_actors,
                ingest_rate,
                seconds,
                threads,
                client_threads,
                server_nodelay: !server_nagle,
            };
            check_transport(&opts)?;
            let r = transport::transport(&opts)?;
            if !json {
                transport::print(&r);
            }
            print_json_if(json, &r)
        }
        BenchCommand::Actor { env, neuron, algo, envs, seconds, env_threads, policy, json } => {
            check_acting(&envs, seconds, env_threads)?;
            let r = acting::acting(
                &env,
                algo_of(algo),
                neuron_of(neuron),
                &envs,
                env_threads,
                seconds,
                policy.as_deref(),
            )?;
            if !json {
                acting::print(&r);
            }
            print_json_if(json, &r)
        }
        BenchCommand::Checkpoint {
            env,
            algo,
            neuron,
            replay,
            repeats,
            seconds,
            every_secs,
            threads,
            dir,
            json,
        } => {
            let positive = |x: f64| x.is_finite() && x > 0.0;
            if replay == 0
                || repeats == 0
                || threads == Some(0)
                || !positive(seconds)
                || !positive(every_secs)
            {
                return Err(UsageError(
                    "--replay, --repeats, --threads, --seconds and --every-secs must be positive".into(),
                )
                .into());
            }
            spikerl_envs::spec(&env).map_err(|e| UsageError(e.to_string()))?;
            set_libtorch_threads(threads);
            let mut cfg = spikerl_algo::RunConfig::paper(&env, algo_of(algo), neuron_of(neuron), 0);
            cfg.replay_capacity = replay;
            let opts = checkpoint::CheckpointOptions {
                cfg,
                replay,
                repeats,
                seconds,
                every_seconds: every_secs,
                dir,
            };
            let r = checkpoint::checkpoint(opts)?;
            if !json {
                checkpoint::print(&r);
            }
            print_json_if(json, &r)
        }
        BenchCommand::Video { env, steps, out, json } => {
            spikerl_envs::spec(&env).map_err(|e| UsageError(e.to_string()))?;
            let r = video::video(&env, steps, out.as_deref())?;
            if !json {
                video::print(&r);
            }
            print_json_if(json, &r)
        }
    }
}

fn check_ensemble(
    batch: usize,
    iterations: usize,
    threads: Option<usize>,
    seeds: &[usize],
) -> anyhow::Result<()> {
    if batch == 0 || iterations == 0 || threads == Some(0) {
        return Err(UsageError("--batch, --iterations and --threads must be positive".into()).into());
    }
    if seeds.is_empty() || seeds.contains(&0) {
        return Err(UsageError("--seeds must list positive seed counts".into()).into());
    }
    Ok(())
}

fn check_transport(o: &transport::TransportOptions) -> anyhow::Result<()> {
    if o.ingest_actors == 0
        || o.subscribers == 0
        || o.train_actors == 0
        || o.batch == 0
        || o.threads == 0
        || o.client_threads == 0
    {
        return Err(UsageError("actor, subscriber, batch and thread counts must be positive".into()).into());
    }
    if !(o.seconds.is_finite() && o.seconds > 0.0)
        || o.ingest_rate.is_some_and(|r| !(r.is_finite() && r > 0.0))
    {
        return Err(UsageError("--seconds and --ingest-rate must be positive numbers".into()).into());
    }
    if o.batch > 4096 {
        return Err(UsageError(
            "--batch is at most 4096 (the learner's default --max-batch-transitions)".into(),
        )
        .into());
    }
    Ok(())
}

fn check_acting(envs: &[usize], seconds: f64, env_threads: usize) -> anyhow::Result<()> {
    if env_threads == 0 {
        return Err(UsageError("--env-threads must be positive".into()).into());
    }
    if envs.is_empty() || envs.contains(&0) {
        return Err(UsageError("--envs must list positive environment counts".into()).into());
    }
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(UsageError("--seconds must be a positive number".into()).into());
    }
    Ok(())
}

/// libtorch's intra-op threads: `requested`, or every core; no inter-op pool (one training thread).
fn set_libtorch_threads(requested: Option<usize>) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    tch::set_num_threads(requested.unwrap_or(cores) as i32);
    tch::set_num_interop_threads(1);
}

/// With --json, the report as one JSON object on one line (the table was not printed).
fn print_json_if(json: bool, report: &impl serde::Serialize) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_value(report)?);
    }
    Ok(())
}
