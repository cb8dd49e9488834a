//! `spikerl eval`: deterministic episodes of a trained policy in plain-Rust inference (no libtorch, so the
//! actor-only build has it too), the evaluation the trainer runs (`spikerl_envs::evaluate`: no exploration
//! noise, the first episode's reset seeded, later episodes continuing its stream). Prints returns,
//! episode lengths, per-population firing (rate, dead and saturated neurons), SOPs and energy per
//! inference, and optionally draws a spike raster (`--raster`) and records the first episodes as a
//! GIF or MP4 video (`--video`, `spikerl_envs::render::record_episodes`: the same episodes, rendered as
//! Gymnasium renders them).
//!
//! Per-neuron counts come from [`Policy::act_traced`] (allocates per inference; eval only), so the
//! actors' inference path carries no extra counters.

use crate::UsageError;
use crate::cli::EvalArgs;
use serde_json::{Value, json};
use spikerl_snn::{
    InferenceStats, MAC_ENERGY_PJ, NetworkConfig, Policy, PolicyConfig, SpikeTrace, ann_equivalent_macs,
};
use std::path::{Path, PathBuf};

/// The evaluation seed of a run with seed `run_seed` (the trainer's `seed + 100`).
const EVAL_SEED_OFFSET: u64 = 100;
/// Episodes when neither `--episodes` nor a run folder says (the paper's evaluation).
const DEFAULT_EPISODES: usize = 10;

/// Where the policy comes from and what it runs on.
struct Source {
    file: PathBuf,
    env: String,
    seed: u64,
    episodes: usize,
}

/// One population's per-neuron spike counts over every evaluated inference.
struct Population {
    name: String,
    role: &'static str,
    counts: Vec<u64>,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let source = resolve(&args)?;
    if source.episodes == 0 {
        return Err(UsageError("--episodes must be positive".into()).into());
    }
    let bytes = std::fs::read(&source.file)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", source.file.display())))?;
    let (cfg, tensors, version) = spikerl_snn::decode_policy(&bytes)
        .map_err(|e| UsageError(format!("{} is not a policy file: {e}", source.file.display())))?;
    let spec = spikerl_envs::spec(&source.env).map_err(|e| UsageError(e.to_string()))?;
    if cfg.obs_dim != spec.obs_dim || cfg.act_dim != spec.act_dim {
        return Err(UsageError(format!(
            "{}: the policy takes {} observations and gives {} actions, {} has {} and {}",
            source.file.display(),
            cfg.obs_dim,
            cfg.act_dim,
            spec.id,
            spec.obs_dim,
            spec.act_dim
        ))
        .into());
    }
    let spiking = matches!(cfg.network, NetworkConfig::Snn(_));
    if args.raster.is_some() && !spiking {
        return Err(UsageError("--raster needs a spiking policy; this one is an ANN".into()).into());
    }
    if let Some(path) = &args.raster {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("png" | "svg")) {
            return Err(UsageError(format!("--raster {}: must end in .png or .svg", path.display())).into());
        }
    }
    let video = match &args.video {
        Some(path) => {
            spikerl_envs::render::VideoFormat::from_path(path)
                .map_err(|e| UsageError(format!("--video {e}")))?;
            if args.video_episodes == 0 {
                return Err(UsageError("--video-episodes must be positive".into()).into());
            }
            Some((path.as_path(), args.video_episodes))
        }
        None => None,
    };
    let mut policy =
        Policy::new(&cfg, &tensors).map_err(|e| UsageError(format!("{}: {e}", source.file.display())))?;

    let raster_steps = if args.raster.is_some() { args.raster_steps } else { 0 };
    let outcome = episodes(&mut policy, &source, source.episodes, raster_steps, video)?;
    let stats = policy.stats().clone();
    let mut report = report_json(&source, &cfg, version, &outcome, &stats, args.raster.as_deref());
    if let Some(v) = &outcome.video {
        report["video"] = json!({
            "path": v.path.display().to_string(),
            "episodes": v.episodes,
            "frames": v.frames,
            "frames_written": v.frames_written,
            "width": v.width,
            "height": v.height,
            "fps": v.fps,
        });
    }
    if let Some(path) = &args.raster {
        raster(&source, &cfg, version, &outcome, &stats).write(path)?;
    }
    if args.json {
        println!("{report}");
    } else {
        print_table(&report);
    }
    Ok(())
}

/// The policy file, environment and seed from `--policy` (a file or a run folder), `--env` and `--seed`.
fn resolve(args: &EvalArgs) -> Result<Source, UsageError> {
    let path = &args.policy;
    if path.is_dir() {
        if !spikerl_experiments::run_folder::manifest_path(path).is_file() {
            return Err(UsageError(format!(
                "{} is a folder without manifest.json: pass a run folder or a policy file",
                path.display()
            )));
        }
        let manifest = spikerl_experiments::run_folder::read_manifest(path)
            .map_err(|e| UsageError(format!("{}: {e:#}", path.display())))?;
        let config = manifest.get("config");
        let env = config.and_then(|c| c.get("env_id")).and_then(Value::as_str);
        let seed = config.and_then(|c| c.get("seed")).and_then(Value::as_u64);
        let run_episodes = config.and_then(|c| c.get("eval_episodes")).and_then(Value::as_u64);
        let (Some(run_env), Some(run_seed)) = (env, seed) else {
            return Err(UsageError(format!(
                "{}: manifest.json has no config.env_id and config.seed",
                path.display()
            )));
        };
        if let Some(env) = &args.env
            && env != run_env
        {
            return Err(UsageError(format!(
                "--env {env} differs from the run's environment {run_env} ({})",
                path.display()
            )));
        }
        let file = path.join("checkpoints").join("policy.safetensors");
        if !file.is_file() {
            return Err(UsageError(format!("{}: no checkpoints/policy.safetensors yet", path.display())));
        }
        Ok(Source {
            file,
            env: run_env.to_string(),
            seed: args.seed.unwrap_or(run_seed.saturating_add(EVAL_SEED_OFFSET)),
            episodes: args
                .episodes
                .or(run_episodes.filter(|&e| e > 0).map(|e| e as usize))
                .unwrap_or(DEFAULT_EPISODES),
        })
    } else {
        let Some(env) = args.env.clone() else {
            return Err(UsageError(format!(
                "--env is required with a policy file ({}); a run folder names its own",
                path.display()
            )));
        };
        Ok(Source {
            file: path.clone(),
            env,
            seed: args.seed.unwrap_or(EVAL_SEED_OFFSET),
            episodes: args.episodes.unwrap_or(DEFAULT_EPISODES),
        })
    }
}

struct Outcome {
    returns: Vec<f64>,
    lengths: Vec<u64>,
    /// Per population (encoder first); empty for an ANN.
    populations: Vec<Population>,
    /// The first environment steps of the first episode, for the raster.
    traces: Vec<SpikeTrace>,
    /// What `--video` wrote.
    video: Option<spikerl_envs::render::VideoSummary>,
}

/// Runs the trainer's evaluation (`spikerl_envs::evaluate_episodes`), also counting every neuron's
/// spikes and keeping the first environment steps of the first episode for the raster. With `video`
/// (path, episodes) the same episodes run through `record_episodes`, which also renders the first ones.
fn episodes(
    policy: &mut Policy,
    source: &Source,
    episodes: usize,
    raster_steps: usize,
    video: Option<(&Path, usize)>,
) -> anyhow::Result<Outcome> {
    let cfg = policy.config().clone();
    let mut populations = population_names(&cfg);
    let mut obs32 = vec![0.0f32; cfg.obs_dim];
    let mut traces = Vec::new();
    let act = |obs: &[f64], action: &mut [f32]| {
        for (o, &x) in obs32.iter_mut().zip(obs) {
            *o = x as f32;
        }
        if populations.is_empty() {
            policy.act(&obs32, action);
        } else if let Some(trace) = policy.act_traced(&obs32, action) {
            count_spikes(&mut populations, &trace);
            if traces.len() < raster_steps {
                traces.push(trace);
            }
        }
    };
    let (run, video) = match video {
        None => (spikerl_envs::evaluate_episodes(&source.env, episodes, source.seed, act)?, None),
        Some((path, video_episodes)) => {
            let opts = spikerl_envs::render::VideoOptions::default();
            let (run, summary) = spikerl_envs::render::record_episodes(
                &source.env,
                episodes,
                source.seed,
                video_episodes,
                act,
                path,
                opts,
            )?;
            (run, Some(summary))
        }
    };
    // The first calls are the first episode's steps; a shorter episode leaves only its own.
    traces.truncate(run.first().map_or(0, |e| e.length as usize));
    let (returns, lengths) = run.iter().map(|e| (e.ret, e.length)).unzip();
    Ok(Outcome { returns, lengths, populations, traces, video })
}

fn population_names(cfg: &PolicyConfig) -> Vec<Population> {
    let NetworkConfig::Snn(s) = &cfg.network else { return Vec::new() };
    let mut pops = vec![Population {
        name: "encoder".into(),
        role: "encoder",
        counts: vec![0; cfg.obs_dim * s.pop_size],
    }];
    let dims = cfg.layer_dims();
    for (i, &(_, out)) in dims.iter().enumerate() {
        let role = if i + 1 == dims.len() { "output" } else { "hidden" };
        pops.push(Population { name: format!("layers.{i}"), role, counts: vec![0; out] });
    }
    pops
}

fn count_spikes(populations: &mut [Population], trace: &SpikeTrace) {
    for (pop, train) in populations.iter_mut().zip(&trace.spikes) {
        let n = pop.counts.len();
        for step in train.chunks_exact(n) {
            for (c, &s) in pop.counts.iter_mut().zip(step) {
                *c += u64::from(s);
            }
        }
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Population standard deviation, as evals.csv's `std_return`.
fn std(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

fn report_json(
    source: &Source,
    cfg: &PolicyConfig,
    version: u64,
    out: &Outcome,
    stats: &InferenceStats,
    raster: Option<&Path>,
) -> Value {
    let (rmin, rmax) = min_max(&out.returns);
    let lengths: Vec<f64> = out.lengths.iter().map(|&l| l as f64).collect();
    let (lmin, lmax) = min_max(&lengths);
    let ann_macs = ann_equivalent_macs(cfg);
    let ann_energy = ann_macs as f64 * MAC_ENERGY_PJ / 1000.0;
    let energy = stats.energy_nj_per_inference();
    let (network, neuron, timesteps) = match &cfg.network {
        NetworkConfig::Snn(s) => ("snn", Some(s.neuron.to_string()), Some(s.timesteps)),
        NetworkConfig::Ann { .. } => ("ann", None, None),
    };
    let slots = stats.timesteps as f64 * stats.inferences as f64;
    let layers: Option<Vec<Value>> = (!out.populations.is_empty()).then(|| {
        out.populations
            .iter()
            .map(|p| {
                let full = stats.timesteps as u64 * stats.inferences;
                let spikes: u64 = p.counts.iter().sum();
                json!({
                    "name": p.name,
                    "role": p.role,
                    "neurons": p.counts.len(),
                    "spikes": spikes,
                    "firing_rate": if slots > 0.0 { spikes as f64 / (slots * p.counts.len() as f64) } else { 0.0 },
                    "dead": p.counts.iter().filter(|&&c| c == 0).count(),
                    "saturated": p.counts.iter().filter(|&&c| full > 0 && c == full).count(),
                })
            })
            .collect()
    });
    json!({
        "policy": source.file.display().to_string(),
        "policy_version": version,
        "env": source.env,
        "network": network,
        "neuron": neuron,
        "timesteps": timesteps,
        "seed": source.seed,
        "episodes": out.returns.len(),
        "returns": out.returns,
        "return_mean": mean(&out.returns),
        "return_std": std(&out.returns),
        "return_min": rmin,
        "return_max": rmax,
        "lengths": out.lengths,
        "length_mean": mean(&lengths),
        "length_min": lmin as u64,
        "length_max": lmax as u64,
        "inferences": stats.inferences,
        "firing_rate": layers.as_ref().map(|_| stats.firing_rate()),
        "encoder_firing_rate": layers.as_ref().map(|_| stats.encoder_firing_rate()),
        "layers": layers,
        "sops_per_inference": (network == "snn").then(|| stats.sops_per_inference()),
        "macs_per_inference": stats.macs_per_inference(),
        "energy_nj_per_inference": energy,
        "ann_equivalent_macs": ann_macs,
        "ann_equivalent_energy_nj": ann_energy,
        "energy_ratio_vs_ann": if energy > 0.0 { Some(ann_energy / energy) } else { None },
        "raster": raster.map(|p| p.display().to_string()),
    })
}

fn print_table(r: &Value) {
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let net = match (r["network"].as_str(), r["neuron"].as_str()) {
        (Some("snn"), Some(n)) => format!("SNN ({n}, T={})", r["timesteps"]),
        _ => "ANN".into(),
    };
    println!("policy    {} (version {}, {net})", r["policy"].as_str().unwrap_or(""), r["policy_version"]);
    println!("env       {}, {} episodes, seed {}", r["env"].as_str().unwrap_or(""), r["episodes"], r["seed"]);
    println!(
        "return    mean {:.2}  std {:.2}  min {:.2}  max {:.2}",
        f("return_mean"),
        f("return_std"),
        f("return_min"),
        f("return_max")
    );
    println!("length    mean {:.1}  min {}  max {}", f("length_mean"), r["length_min"], r["length_max"]);
    if let Some(layers) = r["layers"].as_array() {
        println!();
        println!(
            "{:<12} {:<8} {:>8} {:>12} {:>6} {:>10}",
            "population", "role", "neurons", "firing rate", "dead", "saturated"
        );
        for l in layers {
            println!(
                "{:<12} {:<8} {:>8} {:>12.4} {:>6} {:>10}",
                l["name"].as_str().unwrap_or(""),
                l["role"].as_str().unwrap_or(""),
                l["neurons"].as_u64().unwrap_or(0),
                l["firing_rate"].as_f64().unwrap_or(f64::NAN),
                l["dead"].as_u64().unwrap_or(0),
                l["saturated"].as_u64().unwrap_or(0)
            );
        }
        println!(
            "firing rate (hidden + output) {:.4}, encoder {:.4}",
            f("firing_rate"),
            f("encoder_firing_rate")
        );
        println!();
        println!(
            "per inference: {:.1} SOPs, {:.4} nJ; ANN equivalent {} MACs, {:.1} nJ ({:.1}x)",
            f("sops_per_inference"),
            f("energy_nj_per_inference"),
            r["ann_equivalent_macs"],
            f("ann_equivalent_energy_nj"),
            f("energy_ratio_vs_ann")
        );
    } else {
        println!(
            "per inference: {:.0} MACs, {:.1} nJ",
            f("macs_per_inference"),
            f("energy_nj_per_inference")
        );
    }
    if let Some(p) = r["raster"].as_str() {
        println!("raster    {p}");
    }
    if let Some(v) = r["video"].as_object() {
        println!(
            "video     {} ({} episodes, {} frames, {}x{} at {} fps)",
            v["path"].as_str().unwrap_or(""),
            v["episodes"],
            v["frames_written"],
            v["width"],
            v["height"],
            v["fps"]
        );
    }
}

fn raster(
    source: &Source,
    cfg: &PolicyConfig,
    version: u64,
    out: &Outcome,
    stats: &InferenceStats,
) -> spikerl_plot::Raster {
    let (neuron, t) = match &cfg.network {
        NetworkConfig::Snn(s) => (s.neuron.to_string(), s.timesteps),
        NetworkConfig::Ann { .. } => (String::new(), 0),
    };
    let env_steps = out.traces.len();
    let slots = (stats.timesteps as u64 * stats.inferences).max(1) as f64;
    let panels = out
        .populations
        .iter()
        .enumerate()
        .map(|(p, pop)| {
            let n = pop.counts.len();
            let title = match pop.role {
                "encoder" => format!(
                    "encoder ({} observations x {} = {n} neurons)",
                    cfg.obs_dim,
                    n / cfg.obs_dim.max(1)
                ),
                "output" => {
                    format!(
                        "{} output population ({} actions x {} = {n} {neuron} neurons)",
                        pop.name,
                        cfg.act_dim,
                        n / cfg.act_dim.max(1)
                    )
                }
                _ => format!("{} hidden ({n} {neuron} neurons)", pop.name),
            };
            spikerl_plot::RasterPanel {
                title,
                neurons: n,
                steps: env_steps * t,
                spikes: out.traces.iter().flat_map(|tr| tr.spikes[p].iter().copied()).collect(),
            }
        })
        .collect();
    let rates = out
        .populations
        .iter()
        .map(|pop| spikerl_plot::RateSeries {
            label: if pop.role == "encoder" {
                pop.name.clone()
            } else {
                format!("{} ({})", pop.name, pop.role)
            },
            rates: pop.counts.iter().map(|&c| c as f64 / slots).collect(),
        })
        .collect();
    let name = source.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    spikerl_plot::Raster {
        title: format!(
            "{}: {name} (version {version}), first {env_steps} env steps of episode 1 (seed {}), T = {t}",
            source.env, source.seed
        ),
        steps_per_env_step: t,
        panels,
        rates,
    }
}
