//! `spikerl`: one binary for every role. Thin glue over the library crates: argument parsing, process
//! orchestration, progress display. Exit codes: 0 success, 1 a run failed, 2 invalid arguments, 75 a run
//! stopped early and checkpointed (resume it with `--resume`).

#[cfg(feature = "learner")]
mod bench;
mod cli;
mod env_cmd;
mod eval;
mod export;
mod metrics;
#[cfg(feature = "learner")]
mod train;

use clap::Parser;
use cli::{Cli, Command};
pub use metrics::install as install_metrics;
use std::process::ExitCode;

/// An error in what the user asked for (exit 2), as opposed to a failure while doing it (exit 1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A run stopped before its end (SIGTERM/SIGINT, `--stop-after`) after writing its checkpoint: exit 75
/// (EX_TEMPFAIL), "incomplete: resume me", for schedulers and sweeps to requeue it with `--resume`.
#[derive(Debug)]
pub struct Incomplete(pub String);

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Incomplete {}

/// The exit code of [`Incomplete`].
const EXIT_INCOMPLETE: u8 = 75;

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "learner")]
    spikerl_algo::tune_process_for_training();
    init_logging(&cli.log, cli.log_json);
    let result = match cli.command {
        #[cfg(feature = "learner")]
        Command::Train(args) => train::train(args),
        #[cfg(not(feature = "learner"))]
        Command::Train(_) => {
            Err(UsageError("this build has no learner (built without the 'learner' feature)".into()).into())
        }
        #[cfg(feature = "learner")]
        Command::Learner(args) => train::learner(args),
        Command::Actor(args) => actor(args),
        Command::Env(cmd) => env_cmd::run(cmd),
        #[cfg(feature = "learner")]
        Command::Bench(cmd) => bench::run(cmd),
        Command::Sweep(args) => sweep(args),
        Command::Report(args) => spikerl_experiments::report::run(&args.runs_dir, &args.out),
        Command::Eval(args) => eval::run(args),
        Command::Export(args) => export::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Incomplete>().is_some() => {
            eprintln!("{e}");
            ExitCode::from(EXIT_INCOMPLETE)
        }
        Err(e) if e.downcast_ref::<UsageError>().is_some() || is_usage(&e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Errors that come from the user's input rather than the run (unknown env id, bad values, a `--policy`
/// file that does not fit).
fn is_usage(e: &anyhow::Error) -> bool {
    #[cfg(feature = "learner")]
    if e.downcast_ref::<bench::BadPolicyFile>().is_some() {
        return true;
    }
    matches!(
        e.downcast_ref::<spikerl_envs::EnvError>(),
        Some(spikerl_envs::EnvError::UnknownId { .. } | spikerl_envs::EnvError::BadInput(_))
    )
}

/// `spikerl sweep`: run or submit a sweep, show its status, or run one of its cluster tasks (exit 75 when
/// the task's runs stopped early, as `train` does, so that engines retry it).
fn sweep(args: cli::SweepArgs) -> anyhow::Result<()> {
    use spikerl_experiments::task::Outcome;
    match args.command {
        Some(cli::SweepCommand::Status { dir, json }) => spikerl_experiments::status::run(&dir, json),
        Some(cli::SweepCommand::Task { dir, index, pick }) => {
            match spikerl_experiments::task::run(&dir, index, pick.as_deref())? {
                Outcome::Completed => Ok(()),
                Outcome::Incomplete(what) => Err(Incomplete(what).into()),
                Outcome::Failed(what) => Err(anyhow::anyhow!(what)),
            }
        }
        None => match (args.spec, args.out) {
            (Some(spec), Some(out)) => spikerl_experiments::sweep::run(&spec, &out, &args.options),
            // clap requires both without a subcommand; kept as an error rather than a panic.
            _ => Err(UsageError("spikerl sweep needs SPEC and --out DIR".into()).into()),
        },
    }
}

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: actor and learner logs usually land in files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

fn actor(args: cli::ActorArgs) -> anyhow::Result<()> {
    if args.envs == 0 || args.steps_per_batch == 0 || args.env_threads == 0 {
        return Err(UsageError("--envs, --env-threads and --steps-per-batch must be positive".into()).into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    rt.block_on(async {
        if let Some(addr) = args.metrics {
            install_metrics(addr, "actor")?;
        }
        let tls = (args.tls_ca.is_some() || args.tls_cert.is_some() || args.learner.starts_with("https://"))
            .then(|| spikerl_actor::ClientTls {
                ca: args.tls_ca.clone(),
                identity: args.tls_cert.clone().zip(args.tls_key.clone()),
                domain: args.tls_domain.clone(),
            });
        let opts = spikerl_actor::ActorOptions {
            learner: args.learner.clone(),
            name: args.name.clone().unwrap_or_else(spikerl_actor::default_name),
            num_envs: args.envs,
            env_threads: args.env_threads,
            steps_per_batch: args.steps_per_batch,
            retain_bytes: args.retain_mib << 20,
            flush_timeout: std::time::Duration::from_secs_f64(args.flush_secs),
            auth_token: args.token.resolve()?,
            tls,
            ..Default::default()
        };
        spikerl_actor::run(opts, shutdown_signal()).await
    })
}
