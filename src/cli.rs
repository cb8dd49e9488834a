//! The command line (../shared/docs/interface.md is the contract): every option documented, defaults
//! defined once, `SPIKERL_*` environment overrides for containers.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "spikerl",
    version,
    about = "Distributed training of spiking policies with the proxy target method"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing syntax, e.g. "info" or "spikerl_learner=debug").
    /// MuJoCo's own deprecation notices about Gymnasium's XML files are not actionable: hidden by default.
    #[arg(long, global = true, env = "SPIKERL_LOG", default_value = "warn,mujoco=error")]
    pub log: String,
    /// Write logs as JSON lines.
    #[arg(long, global = true, env = "SPIKERL_LOG_JSON")]
    pub log_json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// A whole run on this machine: the learner plus N actor processes (or the lockstep protocol with --sync).
    Train(TrainArgs),
    /// The learner role: serves actors over gRPC, trains, broadcasts weights, writes the run folder.
    #[cfg(feature = "learner")]
    Learner(LearnerArgs),
    /// The actor role: steps environments with the newest policy and streams transitions to a learner.
    Actor(ActorArgs),
    /// Environment tools: spaces, and replaying actions to compare with Gymnasium.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Run a grid of experiments (envs x algorithms x neurons x seeds) from a TOML spec; resumable.
    Sweep(SweepArgs),
    /// Aggregate run folders into the paper's Table 1 format, learning curves and energy tables.
    Report(ReportArgs),
    /// Deterministic episodes of a trained policy: returns, episode lengths, firing, SOPs and energy.
    Eval(EvalArgs),
    /// Convert a trained spiking policy to another format (NIR, the neuromorphic exchange format).
    Export(ExportArgs),
    /// Micro-benchmarks that print figures (a table, or JSON with --json).
    #[cfg(feature = "learner")]
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Plain-Rust policy inference per action (the actors' hot path), with SOPs and energy.
    Inference {
        #[arg(long, default_value = "HalfCheetah-v4")]
        env: String,
        #[arg(long, value_enum, default_value = "lif")]
        neuron: NeuronArg,
        /// Benchmark the ANN baseline actor instead of the SNN.
        #[arg(long, value_enum, default_value = "proxy")]
        algo: AlgoArg,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Actions to time.
        #[arg(long, default_value_t = 20_000)]
        actions: usize,
        /// Trained weights to measure (a run's checkpoints/policy.safetensors) instead of the initial
        /// ones: an SNN's cost follows its spike count.
        #[arg(long, value_name = "FILE")]
        policy: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// One full training iteration of an algorithm (and its phases) on synthetic minibatches.
    Update {
        #[arg(long, default_value = "HalfCheetah-v4")]
        env: String,
        /// td3, sac or ddpg.
        #[arg(long, value_enum, default_value = "td3")]
        base: BaseArg,
        #[arg(long, value_enum, default_value = "proxy")]
        algo: AlgoArg,
        #[arg(long, value_enum, default_value = "lif")]
        neuron: NeuronArg,
        #[arg(long, default_value_t = 256)]
        batch: usize,
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        /// Timed iterations (after a warm-up of a tenth as many).
        #[arg(long, default_value_t = 50)]
        iterations: usize,
        /// libtorch threads (default: every core).
        #[arg(long)]
        threads: Option<usize>,
        /// Start the actor from trained weights (a run's checkpoints/policy.safetensors, same --env, --algo
        /// and --neuron) instead of the initial ones: the SNN's event-driven paths cost more at the firing
        /// rates training reaches.
        #[arg(long, value_name = "FILE")]
        policy: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// S seeds of one config trained as one batched ensemble (stacked weights, batched matmuls) against S
    /// separate learners in the same process, for each S: seed-iterations/s of both.
    Ensemble {
        #[arg(long, default_value = "HalfCheetah-v4")]
        env: String,
        #[arg(long, value_enum, default_value = "proxy")]
        algo: AlgoArg,
        #[arg(long, value_enum, default_value = "lif")]
        neuron: NeuronArg,
        #[arg(long, default_value_t = 256)]
        batch: usize,
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        /// Seed counts S to measure, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1,4,8")]
        seeds: Vec<usize>,
        /// Timed iterations per S and side (ensemble, separate learners), after a short warm-up.
        #[arg(long, default_value_t = 20)]
        iterations: usize,
        /// libtorch threads (default: every core).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// gRPC transport on loopback: learner ingest from N actor streams, weight broadcast to M subscribers,
    /// and training iterations/s without and with ingest (the real actor and learner code).
    Transport {
        #[arg(long, default_value = "HalfCheetah-v4")]
        env: String,
        /// Concurrent actor streams for the ingest figure.
        #[arg(long, default_value_t = 8)]
        ingest_actors: usize,
        /// Transitions per batch (the actor's default: 32 steps x 1 env).
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Policy subscribers for the broadcast figure.
        #[arg(long, default_value_t = 16)]
        subscribers: usize,
        /// Actors whose production is ingested while training (the training figure).
        #[arg(long, default_value_t = 16)]
        train_actors: usize,
        /// Total transitions/s ingested while training; default: --train-actors times one acting loop's
        /// measured rate (HalfCheetah with the PT-LIF policy, 1 env).
        #[arg(long)]
        ingest_rate: Option<f64>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// libtorch threads of the training figure.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Tokio worker threads of the actor clients (all in this process); the learner gets 2, as in a run.
        #[arg(long, default_value_t = 1)]
        client_threads: usize,
        /// Leave Nagle's algorithm on for the learner's accepted connections (the learner sets TCP_NODELAY;
        /// this shows what delayed ACKs cost the latency figures).
        #[arg(long)]
        server_nagle: bool,
        #[arg(long)]
        json: bool,
    },
    /// Env steps/s of the real acting loop with the plain-Rust policy vs random actions (no learner).
    Actor {
        #[arg(long, default_value = "HalfCheetah-v4")]
        env: String,
        #[arg(long, value_enum, default_value = "lif")]
        neuron: NeuronArg,
        #[arg(long, value_enum, default_value = "proxy")]
        algo: AlgoArg,
        /// Environments per acting loop, comma separated (each measured).
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        envs: Vec<usize>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 4.0)]
        seconds: f64,
        /// Threads stepping each loop's environments (as `spikerl actor --env-threads`).
        #[arg(long, default_value_t = 1)]
        env_threads: usize,
        /// Act with trained weights (a run's checkpoints/policy.safetensors) instead of the initial ones.
        #[arg(long, value_name = "FILE")]
        policy: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Milliseconds per frame to render and to encode (GIF, MP4) one episode, and the episode's total.
    /// What lockstep checkpoints cost with a full replay buffer: size, seconds per checkpoint, and
    /// training it/s without and with periodic checkpoints (measured, and projected to 5 and 10 minutes).
    Checkpoint {
        #[arg(long, default_value = "HalfCheetah-v4")]
        env: String,
        #[arg(long, value_enum, default_value = "proxy")]
        algo: AlgoArg,
        #[arg(long, value_enum, default_value = "lif")]
        neuron: NeuronArg,
        /// Transitions in the replay buffer (its capacity too).
        #[arg(long, default_value_t = 1_000_000)]
        replay: usize,
        /// Checkpoints timed on their own.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Seconds of training without checkpoints, and again with them.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Seconds between checkpoints while training.
        #[arg(long, default_value_t = 20.0)]
        every_secs: f64,
        /// libtorch threads (default: every core).
        #[arg(long)]
        threads: Option<usize>,
        /// Folder for the checkpoints (default: a temporary folder, removed afterwards; put it on the disk
        /// runs write to).
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    Video {
        #[arg(long, default_value = "HalfCheetah-v4")]
        env: String,
        /// Environment steps (frames = steps + 1; the episode is cut at Gymnasium's time limit).
        #[arg(long, default_value_t = 1000)]
        steps: usize,
        /// Folder for the videos written (default: a temporary folder, removed afterwards).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

// `spikerl sweep SPEC --out DIR` runs a sweep; `spikerl sweep status DIR` (and the hidden `task`) look
// at or work in one. SPEC and --out are required only without a subcommand.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub command: Option<SweepCommand>,
    /// The sweep specification (TOML; see experiments/).
    #[arg(required = true)]
    pub spec: Option<PathBuf>,
    /// Folder holding one run folder per grid point (and, for cluster backends, the spec's copy and the
    /// scheduler's files).
    #[arg(long, env = "SPIKERL_OUT", required = true)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub options: spikerl_experiments::sweep::SweepOptions,
}

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// Each run of a sweep, whatever ran it: state, steps done, last and best return.
    ///
    /// One line per run of the sweep folder: its state, env steps at its last evaluation out of all of its
    /// steps, last and best average evaluation return, attempts and resumes, and for a sweep given to Slurm
    /// its task's state in the queue.
    Status {
        /// The sweep folder (`--out` of `spikerl sweep`).
        dir: PathBuf,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One task of a sweep given to a cluster engine: what the sbatch script and the Kubernetes Job run.
    /// Starts, resumes or skips its runs; exits 75 when they stopped early (requeued under Slurm).
    #[command(hide = true)]
    Task {
        /// The sweep folder.
        dir: PathBuf,
        /// The task's position (default: SLURM_ARRAY_TASK_ID, else JOB_COMPLETION_INDEX).
        #[arg(long)]
        index: Option<usize>,
        /// The grid's task numbers the submission picked; --index selects one of them (default: --index is
        /// the task number itself).
        #[arg(long, value_delimiter = ',')]
        pick: Option<Vec<usize>>,
    },
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Folder of run folders (as written by `spikerl sweep` or `spikerl train --out`).
    pub runs_dir: PathBuf,
    /// Output folder: report.md, report.html, table1.csv, JSON exports, plots.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A spiking policy's weight file (a run's checkpoints/policy.safetensors).
    #[arg(long)]
    pub policy: PathBuf,
    /// Output format: `nir`, an HDF5 file that `nir.read` loads (docs/nir.md).
    #[arg(long, value_enum, default_value = "nir")]
    pub format: ExportFormat,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// The Neuromorphic Intermediate Representation (https://github.com/neuromorphs/NIR).
    Nir,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A policy weight file (`policy.safetensors`), or a run folder: its newest policy
    /// (`checkpoints/policy.safetensors`) on the environment of its manifest.
    #[arg(long)]
    pub policy: PathBuf,
    /// Environment id. Required with a policy file; with a run folder optional and must match its env.
    #[arg(long)]
    pub env: Option<String>,
    /// Evaluation episodes. Default: the run's own (config.eval_episodes) for a run folder, else 10.
    #[arg(long)]
    pub episodes: Option<usize>,
    /// Seed of the first episode's reset (later episodes continue its stream, as in training).
    /// Default: the run's evaluation seed (run seed + 100; 100 for a policy file, a seed-0 run's), so
    /// that the episodes are those of the run's own evaluations in evals.csv.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write a spike raster (per population, the first environment steps of the first episode) and a
    /// per-neuron firing-rate histogram to FILE.png or FILE.svg. Spiking policies only.
    #[arg(long, value_name = "FILE")]
    pub raster: Option<PathBuf>,
    /// Environment steps the raster shows.
    #[arg(long, default_value_t = 20)]
    pub raster_steps: usize,
    /// Record the first evaluated episodes as a video, FILE.gif or FILE.mp4 (MP4 needs ffmpeg; MuJoCo
    /// tasks need libOSMesa.so.8, Debian's libosmesa6), or as a still strip of 8 frames a tenth of a
    /// second apart, FILE.png. Gymnasium's rgb_array frames, one after each reset and each step, at the
    /// environment's render_fps (docs/video.md).
    #[arg(long, value_name = "FILE")]
    pub video: Option<PathBuf>,
    /// Episodes the video shows (the first ones; capped at --episodes).
    #[arg(long, default_value_t = 1, requires = "video")]
    pub video_episodes: usize,
}

/// The off-policy algorithm under the actor (docs/bases.md).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BaseArg {
    /// TD3, the paper's.
    #[default]
    Td3,
    /// SAC (CleanRL's), with a Gaussian actor.
    Sac,
    /// DDPG (Fujimoto et al.'s "OurDDPG").
    Ddpg,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImitationArg {
    Mse,
    Kl,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlgoArg {
    Ann,
    Vanilla,
    Proxy,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeuronArg {
    Lif,
    Clif,
    Dn,
    Plif,
    If,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedBatchingArg {
    Auto,
    Stacked,
    Separate,
}

/// The seeds of `--seeds`: distinct, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seeds(pub Vec<u64>);

/// `0-3`, `0,1,7` or a mix (`0-2,10`): ranges include both ends; no seed twice.
pub fn parse_seeds(text: &str) -> Result<Seeds, String> {
    let number = |t: &str| {
        t.trim().parse::<u64>().map_err(|_| format!("{t:?} is not a seed (a non-negative integer)"))
    };
    let mut seeds = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b {
                    return Err(format!("{part:?}: the range runs backwards"));
                }
                if b - a >= 1024 {
                    return Err(format!("{part:?}: more than 1024 seeds"));
                }
                seeds.extend(a..=b);
            }
            None => seeds.push(number(part)?),
        }
    }
    let mut sorted = seeds.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("seed {} is given twice", w[0]));
    }
    Ok(Seeds(seeds))
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceArg {
    Cpu,
    Cuda,
}

/// What defines a run (method.md's values are the defaults).
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Gymnasium environment id (see `spikerl env info`).
    #[arg(long, env = "SPIKERL_ENV", default_value = "Pendulum-v1")]
    pub env: String,
    /// Base algorithm: td3 (the paper's), sac (CleanRL's SAC, Gaussian actor) or ddpg ("OurDDPG").
    #[arg(long, env = "SPIKERL_BASE", value_enum, default_value = "td3")]
    pub base: BaseArg,
    /// Algorithm: ann (TD3, ANN actor), vanilla (SNN actor, Polyak SNN target), proxy (SNN actor, proxy target).
    #[arg(long, env = "SPIKERL_ALGO", value_enum, default_value = "proxy")]
    pub algo: AlgoArg,
    /// Spiking neuron model (accepted and ignored for --algo ann).
    #[arg(long, env = "SPIKERL_NEURON", value_enum, default_value = "lif")]
    pub neuron: NeuronArg,
    /// Master seed: every random stream of the run derives from it.
    #[arg(long, env = "SPIKERL_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Training env steps after the random ones (one training iteration each).
    #[arg(long, env = "SPIKERL_STEPS", default_value_t = 1_000_000)]
    pub steps: u64,
    /// Uniform-random env steps before training starts.
    #[arg(long, env = "SPIKERL_RANDOM_STEPS", default_value_t = 25_000)]
    pub random_steps: u64,
    /// Evaluate every N env steps (random ones included); 0 disables.
    #[arg(long, env = "SPIKERL_EVAL_EVERY", default_value_t = 5_000)]
    pub eval_every: u64,
    /// Deterministic episodes per evaluation (eval env seeded with seed + 100).
    #[arg(long, env = "SPIKERL_EVAL_EPISODES", default_value_t = 10)]
    pub eval_episodes: usize,
    /// Record an evaluation episode into the run folder's videos/ every N env steps (at the first
    /// evaluation at or after each multiple; MP4 with ffmpeg, else GIF; MuJoCo tasks need libOSMesa); 0: never.
    #[arg(long, env = "SPIKERL_VIDEO_EVERY", default_value_t = 0)]
    pub video_every: u64,
    /// Minibatch size.
    #[arg(long, env = "SPIKERL_BATCH_SIZE", default_value_t = 256)]
    pub batch_size: usize,
    /// Replay buffer capacity (transitions).
    #[arg(long, env = "SPIKERL_REPLAY_CAPACITY", default_value_t = 1_000_000)]
    pub replay_capacity: usize,
    /// Training iterations per inserted transition.
    #[arg(long, env = "SPIKERL_UPDATE_RATIO", default_value_t = 1.0)]
    pub update_ratio: f64,
    /// Proxy imitation steps per iteration (K); default: the paper's 3.
    #[arg(long, env = "SPIKERL_PROXY_STEPS")]
    pub proxy_steps: Option<usize>,
    /// How a SAC proxy imitates the spiking actor's Gaussian: mse (mean and log-std) or kl.
    #[arg(long, env = "SPIKERL_PROXY_IMITATION", value_enum, default_value = "mse")]
    pub proxy_imitation: ImitationArg,
    /// Proxy learning rate; default: the paper's value for the neuron type.
    #[arg(long, env = "SPIKERL_PROXY_LR")]
    pub proxy_lr: Option<f64>,
    /// Spiking network hidden widths, comma separated; default 256,256.
    #[arg(long, env = "SPIKERL_SNN_HIDDEN", value_delimiter = ',')]
    pub snn_hidden: Option<Vec<usize>>,
    /// SNN simulation time steps T; default 5.
    #[arg(long, env = "SPIKERL_TIMESTEPS")]
    pub timesteps: Option<usize>,
    /// Training device of the learner.
    #[arg(long, env = "SPIKERL_DEVICE", value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// libtorch threads of the learner; default: the cores not used by actors.
    #[arg(long, env = "SPIKERL_THREADS")]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Actor processes to start (ignored with --sync).
    #[arg(long, env = "SPIKERL_ACTORS", default_value_t = 2)]
    pub actors: usize,
    /// Environments per actor.
    #[arg(long, env = "SPIKERL_ENVS", default_value_t = 1)]
    pub envs: usize,
    /// Threads per actor stepping its environments (ignored with --sync).
    #[arg(long, env = "SPIKERL_ENV_THREADS", default_value_t = 1)]
    pub env_threads: usize,
    /// The paper's lockstep protocol: one actor, one training iteration per env step, in one process
    /// (`--lockstep` is the same flag).
    #[arg(long, visible_alias = "lockstep", env = "SPIKERL_SYNC")]
    pub sync: bool,
    /// Train several seeds of this configuration in this one process (with --sync), e.g. 0-3 or 0,1,7:
    /// each seed acts as a single run with that seed would and writes its own run folder OUT/seed{N}.
    #[arg(long, env = "SPIKERL_SEEDS", value_parser = parse_seeds, conflicts_with = "seed")]
    pub seeds: Option<Seeds>,
    /// How --seeds train: stacked (one ensemble, every network with a seed dimension, batched matmuls),
    /// separate (each seed's own learner in turn, bit for bit what a single run computes), or auto:
    /// stacked on CUDA, separate on CPU, where the hand-written CPU paths make it the faster one.
    #[arg(long, env = "SPIKERL_SEED_BATCHING", value_enum, default_value = "auto")]
    pub seed_batching: SeedBatchingArg,
    /// Run folder (manifest.json, evals.csv, checkpoints/).
    #[arg(long, env = "SPIKERL_OUT")]
    pub out: PathBuf,
    /// Serve Prometheus metrics of the learner on this address.
    #[arg(long, env = "SPIKERL_METRICS")]
    pub metrics: Option<SocketAddr>,
    /// No progress bar (for scripts and CI logs).
    #[arg(long)]
    pub no_progress: bool,
    /// Continue the run in --out from its newest valid checkpoint (every seed's, with --seeds); its
    /// configuration wins over the run options. Lockstep runs continue bit for bit.
    #[arg(long, env = "SPIKERL_RESUME")]
    pub resume: bool,
    /// Seconds between periodic checkpoints (0: only at the end and on SIGTERM/SIGINT/--stop-after).
    #[arg(long, env = "SPIKERL_CHECKPOINT_SECS", default_value_t = 300)]
    pub checkpoint_secs: u64,
    /// Checkpoint and stop after this long (e.g. 90s, 3h50m: a scheduler's wall-time limit), exiting with
    /// code 75, "incomplete: resume me" (as on SIGTERM/SIGINT).
    #[arg(long, env = "SPIKERL_STOP_AFTER", value_parser = parse_duration)]
    pub stop_after: Option<Duration>,
}

/// A duration such as `90s`, `45m` or `3h50m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 90s or 3h50m: {e}"))
}

#[derive(Args, Debug)]
pub struct LearnerArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// gRPC listen address.
    #[arg(long, env = "SPIKERL_LISTEN", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    /// Prometheus metrics address (/metrics).
    #[arg(long, env = "SPIKERL_METRICS", default_value = "0.0.0.0:9100")]
    pub metrics: SocketAddr,
    /// Run folder (manifest.json, evals.csv, checkpoints/).
    #[arg(long = "run-dir", visible_alias = "run-folder", env = "SPIKERL_RUN_DIR")]
    pub run_folder: PathBuf,
    /// Continue the run in --run-dir from its newest valid checkpoint (its configuration wins over the run options).
    #[arg(long, env = "SPIKERL_RESUME")]
    pub resume: bool,
    /// Seconds between periodic checkpoints (0: only at the end and on SIGTERM/SIGINT).
    #[arg(long, env = "SPIKERL_CHECKPOINT_SECS", default_value_t = 300)]
    pub checkpoint_secs: u64,
    /// Run id actors must present; default: derived from the run folder's name.
    #[arg(long, env = "SPIKERL_RUN_ID")]
    pub run_id: Option<String>,
    #[command(flatten)]
    pub token: TokenArgs,
    /// Serve TLS with this certificate (PEM); needs --tls-key.
    #[arg(long, env = "SPIKERL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "SPIKERL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mutual TLS); needs --tls-cert.
    #[arg(long, env = "SPIKERL_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Largest transition batch accepted from an actor.
    #[arg(long, env = "SPIKERL_MAX_BATCH_TRANSITIONS", default_value_t = 4096)]
    pub max_batch_transitions: usize,
    /// Largest gRPC message accepted, in bytes.
    #[arg(long, env = "SPIKERL_MAX_MESSAGE_BYTES", default_value_t = 64 << 20)]
    pub max_message_bytes: usize,
}

/// The shared secret between learner and actors.
#[derive(Args, Debug, Clone)]
pub struct TokenArgs {
    /// Shared token actors must present (prefer --auth-token-file or a container secret).
    #[arg(long, env = "SPIKERL_AUTH_TOKEN", hide_env_values = true, conflicts_with = "auth_token_file")]
    pub auth_token: Option<String>,
    /// File holding the shared token (e.g. /run/secrets/spikerl_token); surrounding whitespace is ignored.
    #[arg(long, env = "SPIKERL_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
}

impl TokenArgs {
    pub fn resolve(&self) -> anyhow::Result<Option<String>> {
        let token = match (&self.auth_token, &self.auth_token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| {
                        crate::UsageError(format!("cannot read --auth-token-file {}: {e}", f.display()))
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if token.as_ref().is_some_and(|t| t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic())) {
            return Err(crate::UsageError(
                "the auth token must be non-empty printable ASCII without spaces".into(),
            )
            .into());
        }
        Ok(token)
    }
}

#[derive(Args, Debug)]
pub struct ActorArgs {
    /// Learner URL.
    #[arg(long, env = "SPIKERL_LEARNER", default_value = "http://127.0.0.1:50051")]
    pub learner: String,
    /// Prometheus metrics address (/metrics); none if absent.
    #[arg(long, env = "SPIKERL_METRICS")]
    pub metrics: Option<SocketAddr>,
    /// Environments stepped by this actor (inference batched across them).
    #[arg(long, env = "SPIKERL_ENVS", default_value_t = 1)]
    pub envs: usize,
    /// Threads stepping the environments (the acting thread plus N - 1 workers, at most --envs); the
    /// transitions are the same for every N.
    #[arg(long, env = "SPIKERL_ENV_THREADS", default_value_t = 1)]
    pub env_threads: usize,
    /// Stable actor name (a restarted actor with the same name continues its sequence); default host-pid.
    #[arg(long, env = "SPIKERL_ACTOR_NAME")]
    pub name: Option<String>,
    /// Env steps per transition batch.
    #[arg(long, env = "SPIKERL_STEPS_PER_BATCH", default_value_t = 32)]
    pub steps_per_batch: usize,
    #[command(flatten)]
    pub token: TokenArgs,
    /// CA (PEM) that signed the learner's certificate; use with an https:// --learner URL.
    #[arg(long, env = "SPIKERL_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for learners that require mutual TLS; needs --tls-key.
    #[arg(long, env = "SPIKERL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "SPIKERL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name to verify in the learner's certificate (default: the URL's host).
    #[arg(long, env = "SPIKERL_TLS_DOMAIN")]
    pub tls_domain: Option<String>,
    /// Acknowledged transition data kept to resend if the learner restarts from an older checkpoint (MiB).
    #[arg(long, env = "SPIKERL_RETAIN_MIB", default_value_t = 64)]
    pub retain_mib: usize,
    /// On SIGTERM/SIGINT, seconds to go on delivering what was produced before exiting (raise it when
    /// many actors stop at once against a learner whose rate limiter admits them slowly).
    #[arg(long, env = "SPIKERL_FLUSH_SECS", default_value_t = 5.0, value_parser = parse_flush_secs)]
    pub flush_secs: f64,
}

fn parse_flush_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds from 0 to 3600")),
    }
}

#[derive(Subcommand, Debug)]
pub enum EnvCommand {
    /// Print the environment's spaces, dt, frame skip and time limit as JSON.
    Info {
        /// Gymnasium environment id.
        #[arg(long)]
        env: String,
    },
    /// Replay an initial state and actions; print one JSON line per step (obs, reward, flags).
    Replay {
        /// Gymnasium environment id.
        #[arg(long)]
        env: String,
        /// JSON file {"qpos": [...], "qvel": [...], "actions": [[...], ...]} ("-" for stdin).
        #[arg(long)]
        input: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_as_lists_and_ranges() {
        assert_eq!(parse_seeds("3"), Ok(Seeds(vec![3])));
        assert_eq!(parse_seeds("0-3"), Ok(Seeds(vec![0, 1, 2, 3])));
        assert_eq!(parse_seeds("0-2, 10,7"), Ok(Seeds(vec![0, 1, 2, 10, 7])));
        for bad in ["", "a", "1,,2", "3-1", "-1", "0-2,2", "0-5000"] {
            assert!(parse_seeds(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_seeds("0-2,2").unwrap_err().contains("seed 2 is given twice"));
    }
}
