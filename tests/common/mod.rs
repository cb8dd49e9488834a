//! Fixtures for the cross-crate integration tests: real `spikerl` processes on loopback ports, killed
//! when the test ends however it ends.
#![allow(dead_code)]

pub mod shipped;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn spikerl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spikerl"));
    cmd.env("OMP_NUM_THREADS", "1").stdin(Stdio::null());
    cmd
}

/// A free loopback port for a process the test starts. Taken below Linux's ephemeral range (32768 and up),
/// where the kernel never puts an outgoing connection: a port the OS picked (`bind(0)`) and released
/// could be taken by one of the test's own clients before the process binds it (seen with 32 actors
/// connecting while the next ones start). Distinct within a test binary; checked free by binding.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let base = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    for _ in 0..SPAN {
        let port = (LOW + (base + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh, empty folder under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spikerl-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Kills (SIGKILL) and reaps its processes on drop, so a failing test leaves nothing behind.
#[derive(Default)]
pub struct Processes(pub Vec<(String, Child)>);

impl Processes {
    pub fn spawn(&mut self, name: &str, mut cmd: Command, log: &Path) -> usize {
        let file = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.0.push((name.to_string(), child));
        self.0.len() - 1
    }

    pub fn kill(&mut self, i: usize) {
        let _ = self.0[i].1.kill();
        let _ = self.0[i].1.wait();
    }

    /// Waits for process `i` to exit, at most `timeout`.
    pub fn wait(&mut self, i: usize, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.0[i].1.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// GET http://addr/metrics with a plain socket (the exporter speaks HTTP/1.1).
pub fn scrape(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// The value of the first sample of `name` whose labels contain every `key="value"` in `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric_name, label_part) = match series.split_once('{') {
            Some((n, rest)) => (n, rest),
            None => (series, ""),
        };
        if metric_name != name || !labels.iter().all(|(k, v)| label_part.contains(&format!("{k}=\"{v}\""))) {
            return None;
        }
        value.parse().ok()
    })
}

/// Rows of a run folder's evals.csv as (step, avg_return).
pub fn evals(run_folder: &Path) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(run_folder.join("evals.csv")).unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let step = header.iter().position(|h| *h == "step").expect("evals.csv has a step column");
    let ret = header.iter().position(|h| *h == "avg_return").expect("evals.csv has an avg_return column");
    lines
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            (cols[step].parse().unwrap(), cols[ret].parse().unwrap())
        })
        .collect()
}

/// Args for a learner that trains for a long time on Pendulum with the ANN (cheap), on given ports.
pub fn learner_cmd(grpc: u16, metrics: u16, run_folder: &Path, extra: &[&str]) -> Command {
    let mut cmd = spikerl();
    cmd.args([
        "learner",
        "--listen",
        &format!("127.0.0.1:{grpc}"),
        "--metrics",
        &format!("127.0.0.1:{metrics}"),
    ]);
    cmd.args([
        "--run-dir",
        run_folder.to_str().unwrap(),
        "--env",
        "Pendulum-v1",
        "--algo",
        "ann",
        "--threads",
        "1",
    ]);
    cmd.args(["--log", "info"]);
    cmd.args(extra);
    cmd
}

pub fn actor_cmd(grpc: u16, name: &str, extra: &[&str]) -> Command {
    let mut cmd = spikerl();
    cmd.args(["actor", "--learner", &format!("http://127.0.0.1:{grpc}"), "--name", name, "--log", "info"]);
    cmd.args(extra);
    cmd
}

/// The number after the last ` key=` in a log (tracing's plain `key=value` fields).
pub fn log_field(log: &str, key: &str) -> Option<u64> {
    let pat = format!(" {key}=");
    let at = log.rfind(&pat)? + pat.len();
    log[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The delivery ledger of an actor that stopped with `status` (after SIGTERM), from its `log`'s
/// `actor stopped produced=N acked=M` line, against `spikerl_learner_transitions_inserted_total{actor}` of
/// the learner whose metrics are at `maddr`: produced == acked == inserted (docs/runtime.md, "The
/// delivery ledger"). Returns (produced, acked, inserted).
pub fn assert_stopped_actor_balanced(
    status: std::process::ExitStatus,
    log: &Path,
    maddr: &str,
) -> (u64, u64, f64) {
    let text = std::fs::read_to_string(log).unwrap();
    assert!(status.success(), "a stopped actor exits 0:\n{text}");
    let id = log_field(&text, "actor_id").expect("the actor logged its id").to_string();
    let stopped = &text[text.rfind("actor stopped").expect("the actor logged its stop")..];
    let produced = log_field(stopped, "produced").expect("produced in the stop line");
    let acked = log_field(stopped, "acked").expect("acked in the stop line");
    let inserted =
        metric(&scrape(maddr).unwrap(), "spikerl_learner_transitions_inserted_total", &[("actor", &id)])
            .unwrap_or(0.0);
    eprintln!("ledger of actor {id}: produced {produced}, acked {acked}, inserted {inserted}");
    assert!(produced > 0, "the actor produced transitions:\n{text}");
    // The data first (the replay buffer holds each produced transition once), then the actor's account of it.
    assert_eq!(inserted, produced as f64, "the learner inserted each produced transition once:\n{text}");
    assert_eq!(acked, produced, "the actor counts everything it produced as acknowledged:\n{text}");
    (produced, acked, inserted)
}

/// Polls the metrics endpoint until `pred` holds on the scraped text, or panics after `timeout`.
pub fn wait_metrics(addr: &str, timeout: Duration, what: &str, mut pred: impl FnMut(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(text) = scrape(addr)
            && pred(&text)
        {
            return text;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what} on {addr}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Resident memory of a process in KiB (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------------
// What a test needs from the machine, and the one way a test skips.

/// Something a test needs from the machine that `cargo test` cannot provide. A test that lacks it skips
/// through [`require`] or [`available`]: loudly, and as a failure where `SPIKERL_REQUIRE` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// A Docker engine that answers, with Compose (`docker compose` or `docker-compose`).
    Docker,
    /// A Docker engine that is not part of a swarm yet (the swarm test makes and leaves its own).
    Swarm,
    /// `prometheus` and `promtool` on PATH (scripts/setup_test_deps.sh installs Debian's package).
    Prometheus,
    /// Root, to mount a tmpfs.
    Root,
    /// Root with `ip` and `tc` (network namespaces, netem).
    Netns,
    /// The kubernetes-validate virtual environment scripts/setup_test_deps.sh makes under target/.
    K8sValidate,
    /// The nir virtual environment scripts/setup_test_deps.sh makes under target/ (`nir` and NumPy).
    NirPython,
    /// The tensorboard virtual environment scripts/setup_test_deps.sh makes under target/ (its event reader).
    TensorboardPython,
    /// Mesa's off-screen OpenGL (`libOSMesa.so.8`, Debian's libosmesa6): MuJoCo renders videos through it.
    Osmesa,
    /// `ffmpeg` on PATH (MP4 videos).
    Ffmpeg,
    /// Root, and Slurm's daemons and commands with MUNGE (Debian's slurm-wlm and munge, which
    /// scripts/setup_test_deps.sh installs): tests/slurm.rs starts a one-node cluster of its own.
    Slurm,
}

/// Every name `SPIKERL_REQUIRE` may hold: the [`Need`]s, and `cuda` (the CUDA test in the algo crate reads
/// the same variable).
pub const REQUIRE_NAMES: [&str; 12] = [
    "docker",
    "swarm",
    "prometheus",
    "root",
    "netns",
    "k8s-validate",
    "nir-python",
    "tensorboard-python",
    "osmesa",
    "ffmpeg",
    "slurm",
    "cuda",
];

impl Need {
    /// Its name in `SPIKERL_REQUIRE`.
    pub fn name(self) -> &'static str {
        match self {
            Need::Docker => "docker",
            Need::Swarm => "swarm",
            Need::Prometheus => "prometheus",
            Need::Root => "root",
            Need::Netns => "netns",
            Need::K8sValidate => "k8s-validate",
            Need::NirPython => "nir-python",
            Need::TensorboardPython => "tensorboard-python",
            Need::Osmesa => "osmesa",
            Need::Ffmpeg => "ffmpeg",
            Need::Slurm => "slurm",
        }
    }

    /// Looks for it on this machine: Ok, or why it is not there. Never installs anything.
    pub fn probe(self) -> Result<(), String> {
        match self {
            Need::Docker => {
                let engine = Command::new("docker")
                    .args(["version", "--format", "{{.Server.Version}}"])
                    .stdin(Stdio::null())
                    .output();
                match engine {
                    Err(e) => return Err(format!("cannot run `docker`: {e}")),
                    Ok(o) if !o.status.success() => {
                        return Err(format!(
                            "no Docker engine answers (`docker version` failed: {})",
                            String::from_utf8_lossy(&o.stderr).trim()
                        ));
                    }
                    Ok(_) => {}
                }
                let works = |program: &str, args: &[&str]| {
                    Command::new(program)
                        .args(args)
                        .stdin(Stdio::null())
                        .output()
                        .is_ok_and(|o| o.status.success())
                };
                if works("docker", &["compose", "version"]) || works("docker-compose", &["version"]) {
                    Ok(())
                } else {
                    Err("a Docker engine answers but neither `docker compose` nor `docker-compose` works"
                        .into())
                }
            }
            Need::Swarm => {
                Need::Docker.probe()?;
                let out = Command::new("docker")
                    .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("docker info: {e}"))?;
                let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if state == "inactive" {
                    Ok(())
                } else {
                    Err(format!(
                        "this engine is already in a swarm ({state}); not deploying a test stack onto it"
                    ))
                }
            }
            Need::Prometheus => {
                let missing: Vec<&str> =
                    ["prometheus", "promtool"].into_iter().filter(|t| !on_path(t)).collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} not on PATH (scripts/setup_test_deps.sh installs Debian's prometheus package)",
                        missing.join(" and ")
                    ))
                }
            }
            Need::Root => match effective_uid() {
                Some(0) => Ok(()),
                uid => Err(format!("not root (effective uid {uid:?})")),
            },
            Need::Netns => {
                Need::Root.probe()?;
                let missing: Vec<&str> = ["ip", "tc"].into_iter().filter(|t| !on_path(t)).collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{} not on PATH", missing.join(" and ")))
                }
            }
            Need::K8sValidate => python_imports(&k8s_validate_python(), &["kubernetes_validate", "yaml"]),
            Need::NirPython => python_imports(&nir_python(), &["nir", "numpy"]),
            Need::TensorboardPython => python_imports(
                &tensorboard_python(),
                &["tensorboard.backend.event_processing.event_accumulator"],
            ),
            Need::Osmesa => {
                let cache = Command::new("ldconfig").arg("-p").stdin(Stdio::null()).output();
                match cache {
                    Ok(o) if String::from_utf8_lossy(&o.stdout).contains("libOSMesa.so.8") => Ok(()),
                    Ok(_) => Err("libOSMesa.so.8 is not in the linker cache (scripts/setup_test_deps.sh \
                                  installs Debian's libosmesa6)"
                        .into()),
                    Err(e) => Err(format!("cannot run `ldconfig -p`: {e}")),
                }
            }
            Need::Ffmpeg => {
                if on_path("ffmpeg") {
                    Ok(())
                } else {
                    Err("ffmpeg not on PATH (scripts/setup_test_deps.sh installs Debian's ffmpeg)".into())
                }
            }
            Need::Slurm => {
                Need::Root.probe()?;
                let missing: Vec<&str> =
                    SLURM_TOOLS.into_iter().filter(|t| system_tool(t).is_none()).collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} not found (scripts/setup_test_deps.sh installs Debian's slurm-wlm and munge)",
                        missing.join(", ")
                    ))
                }
            }
        }
    }
}

/// The Python of the virtual environment with kubernetes-validate that scripts/setup_test_deps.sh makes.
pub fn k8s_validate_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/k8s-validate-venv/bin/python3")
}

/// The Python of the virtual environment with nir and NumPy that scripts/setup_test_deps.sh makes.
pub fn nir_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/nir-venv/bin/python3")
}

/// The Python of the virtual environment with tensorboard that scripts/setup_test_deps.sh makes.
pub fn tensorboard_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tb-venv/bin/python3")
}

/// Ok when `python` (a virtual environment scripts/setup_test_deps.sh makes) imports every module.
pub fn python_imports(python: &Path, modules: &[&str]) -> Result<(), String> {
    let ok = Command::new(python)
        .args(["-c", &format!("import {}", modules.join(", "))])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} cannot import {} (scripts/setup_test_deps.sh makes that virtual environment)",
            python.display(),
            modules.join(" and ")
        ))
    }
}

/// What a one-node Slurm cluster needs: the daemons and the commands a sweep and its test use.
pub const SLURM_TOOLS: [&str; 8] =
    ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo"];

/// `tool` on PATH or in the system folders daemons live in (/usr/sbin is not on every PATH).
pub fn system_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// True when `tool` is an executable file on PATH.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("Uid:"))?.split_whitespace().nth(2)?.parse().ok()
}

/// The names in `SPIKERL_REQUIRE` (comma-separated, case-insensitive); panics on a name no test knows, so
/// that a typo cannot turn a requirement into a skip.
pub fn required() -> Vec<String> {
    let list = std::env::var("SPIKERL_REQUIRE").unwrap_or_default();
    let names: Vec<String> =
        list.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
    for n in &names {
        assert!(
            REQUIRE_NAMES.contains(&n.as_str()),
            "SPIKERL_REQUIRE={list:?} names {n:?}, which no test knows; known: {}",
            REQUIRE_NAMES.join(",")
        );
    }
    names
}

/// Probes `need` and goes on with [`available`]: true when the test can run.
pub fn require(need: Need) -> bool {
    available(need, need.probe())
}

/// The one way a test skips. `probe` says whether `need` is there (the caller's own check, e.g. a mount
/// that failed). Ok: true, the test runs. Err: where `SPIKERL_REQUIRE` lists `need`, the test fails with
/// the reason; otherwise it prints `SKIPPED <test>: ...` to the real stdout and stderr (not libtest's
/// captured streams, which hide a passing test's output) and returns false: the test must return at once.
pub fn available(need: Need, probe: Result<(), String>) -> bool {
    // Read (and checked for unknown names) also when nothing is missing: a typo must not wait for a skip.
    let required = required();
    let why = match probe {
        Ok(()) => return true,
        Err(why) => why,
    };
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    let name = need.name();
    if required.iter().any(|n| n == name) {
        panic!("{test} needs {name}, which SPIKERL_REQUIRE lists, but: {why}");
    }
    let line = format!(
        "SKIPPED {test}: needs {name}: {why}; NOTHING WAS TESTED (SPIKERL_REQUIRE={name} makes this a failure)\n"
    );
    // Straight to the file descriptors: print!/eprint! inside a test are captured and shown only on failure.
    let _ = std::io::stdout().write_all(line.as_bytes());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(line.as_bytes());
    // And in the captured output too, for `--nocapture` and failure reports of tests that share a process.
    eprint!("{line}");
    false
}

// ---------------------------------------------------------------------------------------------------
// A random policy's level, the bar for the learning tests.

/// Mean return of uniform random actions (within the action bounds) over `episodes` episodes of `env`,
/// seeded as the learner's evaluation is (`spikerl_envs::evaluate` with `eval_seed`), actions drawn from a
/// ChaCha8 stream seeded with `rng_seed` (as learner/tests/learning.rs draws them).
pub fn random_policy_return(env: &str, episodes: usize, eval_seed: u64, rng_seed: u64) -> f64 {
    use rand::{Rng, SeedableRng};
    let spec = spikerl_envs::spec(env).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(rng_seed);
    let returns = spikerl_envs::evaluate(env, episodes, eval_seed, |_, action| {
        for (i, a) in action.iter_mut().enumerate() {
            *a = rng.random_range(spec.act_low[i]..=spec.act_high[i]) as f32;
        }
    })
    .unwrap();
    returns.iter().sum::<f64>() / returns.len() as f64
}
