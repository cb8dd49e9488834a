//! The cluster on the real Docker Engine (docs/deploy.md): images built by deploy/build-images.sh --offline from
//! the binaries cargo already built, docker-compose.yml brought up with a learner, two actors and Prometheus;
//! training must advance, Prometheus must scrape all three, actors scale to 3 and back, a crashed actor must
//! not stop the learner, a restarted learner must resume from its checkpoint volume; then `down -v`. A
//! single-node Docker Swarm runs the same file with `docker stack deploy`. The Kubernetes manifests are
//! rendered and validated offline against the Kubernetes API schemas.
//!
//! Docker tests skip (loudly, through `common::require`) only where no Docker engine with Compose answers,
//! and fail instead where SPIKERL_REQUIRE lists `docker` (CI). They run one at a time (a lock) and clean up
//! through guards, also when they fail. The Kubernetes check needs the kubernetes-validate environment of
//! scripts/setup_test_deps.sh (`k8s-validate`).

mod common;

use common::{Need, free_port, k8s_validate_python, metric, require, scrape};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const TAG: &str = "test";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Docker tests share the engine, the images and two cores: one at a time.
fn docker_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs the command, panics with its output unless it succeeds, returns its stdout.
fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn docker(args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    cmd
}

/// Builds the images once per test process, from the binary cargo built for this test run (the actor-only
/// binary is brought up to date by the script in target/actor).
fn build_images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let started = Instant::now();
        let mut cmd = Command::new("bash");
        cmd.arg(root().join("deploy/build-images.sh"));
        cmd.args(["--offline", "--tag", TAG, "--learner-binary", env!("CARGO_BIN_EXE_spikerl")]);
        // cargo test's library path must not leak into ldd's view of the binaries.
        cmd.env_remove("LD_LIBRARY_PATH").env_remove("SPIKERL_IMAGE_PREFIX").current_dir(root());
        let out = run(&mut cmd);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "deploy/build-images.sh failed:\n{log}");
        eprintln!(
            "images built in {:.0?}:\n{}",
            started.elapsed(),
            log.lines().filter(|l| l.contains("MB")).collect::<Vec<_>>().join("\n")
        );
    });
}

/// `docker compose` where the plugin is installed, else `docker-compose`.
fn compose_program() -> Vec<String> {
    let plugin = Command::new("docker").args(["compose", "version"]).stdin(Stdio::null()).output();
    if plugin.is_ok_and(|o| o.status.success()) {
        return vec!["docker".into(), "compose".into()];
    }
    let v1 = Command::new("docker-compose").arg("version").stdin(Stdio::null()).output();
    assert!(
        v1.is_ok_and(|o| o.status.success()),
        "a Docker engine runs but neither `docker compose` nor `docker-compose` works"
    );
    vec!["docker-compose".into()]
}

/// GET http://addr/path over HTTP/1.0 (no chunked bodies); the body of a 200 answer.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.split(' ').nth(1).filter(|c| *c == "200").map(|_| body.to_string())
}

/// Polls `f` every 500 ms until it returns Some, at most `timeout`; panics with `what` and the last state.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    let started = Instant::now();
    loop {
        match f() {
            Ok(v) => {
                eprintln!("  ok after {:.1}s: {what}", started.elapsed().as_secs_f64());
                return v;
            }
            Err(state) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last state: {state}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// The learner's figures scraped from its published metrics port.
#[derive(Debug, Clone, Copy)]
struct LearnerState {
    iterations: f64,
    connected: f64,
}

fn learner_state(metrics_addr: &str) -> Result<LearnerState, String> {
    let text = scrape(metrics_addr).ok_or_else(|| format!("no answer from {metrics_addr}/metrics"))?;
    Ok(LearnerState {
        iterations: metric(&text, "spikerl_learner_train_iterations_total", &[]).unwrap_or(0.0),
        connected: metric(&text, "spikerl_learner_connected_actors", &[]).unwrap_or(0.0),
    })
}

/// Waits until `connected` actors are connected (any number when None) and training iterations advance past
/// `past`.
fn wait_training(
    metrics_addr: &str,
    connected: Option<f64>,
    past: f64,
    what: &str,
    timeout: Duration,
) -> LearnerState {
    let mut first: Option<f64> = None;
    wait_for(what, timeout, || {
        let s = learner_state(metrics_addr)?;
        if connected.is_some_and(|c| s.connected != c) || s.iterations <= past {
            first = None;
            return Err(format!("{s:?}"));
        }
        match first {
            Some(f) if s.iterations > f => Ok(s),
            _ => {
                first.get_or_insert(s.iterations);
                Err(format!("{s:?}, waiting for the next iterations"))
            }
        }
    })
}

/// Active Prometheus targets as (job, health) pairs.
fn prometheus_targets(addr: &str) -> Result<Vec<(String, String)>, String> {
    let body = http_get(addr, "/api/v1/targets?state=active")
        .ok_or_else(|| format!("no answer from {addr}/api/v1/targets"))?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    let targets = v["data"]["activeTargets"].as_array().ok_or_else(|| body.clone())?;
    Ok(targets
        .iter()
        .map(|t| {
            (
                t["labels"]["job"].as_str().unwrap_or("").to_string(),
                t["health"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

/// Waits until Prometheus reports the learner and `actors` actor targets, all up.
fn wait_prometheus(addr: &str, actors: usize, timeout: Duration) {
    wait_for(&format!("Prometheus scraping the learner and {actors} actors"), timeout, || {
        let targets = prometheus_targets(addr)?;
        let up = |job: &str| targets.iter().filter(|(j, h)| j.contains(job) && h == "up").count();
        if up("learner") >= 1 && up("actor") == actors { Ok(()) } else { Err(format!("{targets:?}")) }
    });
}

/// The settings every compose call of one test gets (the same each time, or compose recreates containers).
struct ComposeProject {
    program: Vec<String>,
    project: String,
    env_file: PathBuf,
    env: BTreeMap<String, String>,
}

impl ComposeProject {
    fn new(project: &str, env: BTreeMap<String, String>) -> ComposeProject {
        // An env file of its own: a developer's .env must not change what the test runs.
        let env_file = std::env::temp_dir().join(format!("{project}.env"));
        let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&env_file, text).unwrap();
        ComposeProject { program: compose_program(), project: project.to_string(), env_file, env }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program[0]);
        cmd.args(&self.program[1..]);
        cmd.args(["--project-name", &self.project, "--project-directory", root().to_str().unwrap()]);
        cmd.args([
            "--env-file",
            self.env_file.to_str().unwrap(),
            "-f",
            root().join("docker-compose.yml").to_str().unwrap(),
        ]);
        cmd.args(args).current_dir(root());
        clean_env(&mut cmd);
        cmd.envs(&self.env);
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        run_ok(&mut self.cmd(args))
    }

    fn containers(&self, service: &str) -> Vec<String> {
        self.ok(&["ps", "-q", service])
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    fn logs(&self) -> String {
        let out = run(&mut self.cmd(&["logs", "--no-color", "--tail", "40"]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `down -v` when the test ends, however it ends; prints the services' logs when it failed.
impl Drop for ComposeProject {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- last logs of {} ---\n{}", self.project, self.logs());
        }
        let out = run(&mut self.cmd(&["down", "-v", "--remove-orphans", "-t", "10"]));
        if !out.status.success() {
            eprintln!("cleanup: compose down failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let _ = std::fs::remove_file(&self.env_file);
    }
}

/// No SPIKERL_*, COMPOSE_* or image settings from the caller's shell reach compose or the stack.
fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("SPIKERL_")
            || k.starts_with("COMPOSE_")
            || k.starts_with("PROMETHEUS_")
            || k.starts_with("GRAFANA_")
            || k == "OMP_NUM_THREADS"
            || k == "LD_LIBRARY_PATH"
        {
            cmd.env_remove(&k);
        }
    }
}

/// The run settings of the test clusters: small and fast, one libtorch thread, frequent checkpoints.
fn cluster_env(grpc: u16, metrics: u16, prometheus: u16) -> BTreeMap<String, String> {
    // Prometheus gets the shipped configuration and rules (deploy/prometheus).
    [
        ("SPIKERL_IMAGE_TAG", TAG.to_string()),
        ("SPIKERL_GRPC_PORT", grpc.to_string()),
        ("SPIKERL_LEARNER_METRICS_PORT", metrics.to_string()),
        ("PROMETHEUS_PORT", prometheus.to_string()),
        ("SPIKERL_ENV", "Pendulum-v1".into()),
        ("SPIKERL_RANDOM_STEPS", "500".into()),
        ("SPIKERL_EVAL_EVERY", "0".into()),
        ("SPIKERL_CHECKPOINT_SECS", "5".into()),
        ("SPIKERL_THREADS", "1".into()),
        ("OMP_NUM_THREADS", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn inspect(container: &str, format: &str) -> String {
    run_ok(&mut docker(&["inspect", "-f", format, container])).trim().to_string()
}

/// Files in a folder of a running container (the images have bash but no coreutils).
fn files_in(container: &str, dir: &str) -> Vec<String> {
    let out = run_ok(&mut docker(&[
        "exec",
        container,
        "bash",
        "-c",
        &format!("shopt -s nullglob; for f in {dir}/*; do echo \"$f\"; done"),
    ]));
    out.lines().map(String::from).collect()
}

/// A file of a running container, read with bash alone.
fn read_file(container: &str, path: &str) -> String {
    let out = run(&mut docker(&["exec", container, "bash", "-c", &format!("echo \"$(<{path})\"")]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn images_run_as_non_root_with_health_checks_and_a_small_actor() {
    let _lock = docker_lock();
    if !require(Need::Docker) {
        return;
    }
    build_images();
    for (name, user) in [("learner", "10001:10001"), ("actor", "10001:10001"), ("prometheus", "65534:65534")]
    {
        let image = format!("spikerl-{name}:{TAG}");
        assert_eq!(inspect(&image, "{{.Config.User}}"), user, "{image} runs as a non-root user");
        assert!(
            inspect(&image, "{{json .Config.Healthcheck}}").contains("healthcheck"),
            "{image} has a HEALTHCHECK"
        );
        let size: f64 = inspect(&image, "{{.Size}}").parse().unwrap();
        eprintln!("{image}: {:.1} MB", size / 1e6);
        if name == "actor" {
            assert!(size < 100e6, "the actor image stays small: {:.1} MB", size / 1e6);
        }
    }
    // The actor image has no libtorch; its binary runs (MuJoCo included) without it.
    let libs = run_ok(&mut docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "bash",
        &format!("spikerl-actor:{TAG}"),
        "-c",
        "echo /opt/spikerl/lib/*",
    ]));
    assert!(!libs.contains("torch") && libs.contains("libmujoco"), "actor image libraries: {libs}");
    let info = run_ok(&mut docker(&[
        "run",
        "--rm",
        &format!("spikerl-actor:{TAG}"),
        "env",
        "info",
        "--env",
        "Hopper-v4",
    ]));
    assert!(info.contains("\"obs_dim\":11"), "{info}");
    let version = run_ok(&mut docker(&["run", "--rm", &format!("spikerl-learner:{TAG}"), "--version"]));
    assert!(version.starts_with("spikerl "), "{version}");
}

#[test]
fn compose_cluster_trains_scales_and_survives_restarts() {
    let _lock = docker_lock();
    if !require(Need::Docker) {
        return;
    }
    let started = Instant::now();
    build_images();
    let (grpc, metrics, prom) = (free_port(), free_port(), free_port());
    let metrics_addr = format!("127.0.0.1:{metrics}");
    let prom_addr = format!("127.0.0.1:{prom}");
    let project =
        ComposeProject::new(&format!("spikerltest{}", std::process::id()), cluster_env(grpc, metrics, prom));

    eprintln!("compose up: learner + 2 actors + prometheus ({})", project.project);
    project.ok(&["up", "-d", "--no-build"]);
    assert_eq!(project.containers("actor").len(), 2, "deploy.replicas starts two actors");
    let s = wait_training(&metrics_addr, Some(2.0), 0.0, "training with 2 actors", Duration::from_secs(240));
    wait_prometheus(&prom_addr, 2, Duration::from_secs(120));
    let learner = project.containers("learner").pop().expect("a learner container");
    wait_for("every container healthy (HEALTHCHECK)", Duration::from_secs(90), || {
        let mut states = vec![];
        for c in project
            .containers("learner")
            .iter()
            .chain(&project.containers("actor"))
            .chain(&project.containers("prometheus"))
        {
            states.push(inspect(c, "{{.State.Health.Status}}"));
        }
        if states.iter().all(|s| s == "healthy") { Ok(()) } else { Err(format!("{states:?}")) }
    });

    eprintln!("scale actors to 3 and back to 2");
    project.ok(&["up", "-d", "--no-build", "--no-recreate", "--scale", "actor=3"]);
    let s = wait_training(
        &metrics_addr,
        Some(3.0),
        s.iterations,
        "training with 3 actors",
        Duration::from_secs(120),
    );
    project.ok(&["up", "-d", "--no-build", "--no-recreate", "--scale", "actor=2"]);
    let s = wait_training(
        &metrics_addr,
        Some(2.0),
        s.iterations,
        "training with 2 actors again",
        Duration::from_secs(120),
    );

    eprintln!("crash an actor (SIGKILL to its process)");
    let victim = project.containers("actor").pop().unwrap();
    let pid = inspect(&victim, "{{.State.Pid}}");
    let crashed = Command::new("kill").args(["-KILL", &pid]).status().is_ok_and(|s| s.success());
    if !crashed {
        // Where the engine's processes are not ours to signal (rootless Docker), stop it through the engine.
        eprintln!("  cannot signal pid {pid}: docker kill instead");
        run_ok(&mut docker(&["kill", &victim]));
    }
    // The restart policy may bring it back within a second: any number of connected actors will do here.
    let s = wait_training(
        &metrics_addr,
        None,
        s.iterations,
        "the learner going on after the crash",
        Duration::from_secs(60),
    );
    if crashed {
        wait_for("the restart policy bringing the crashed actor back", Duration::from_secs(60), || {
            let n = inspect(&victim, "{{.RestartCount}}");
            if n != "0" && inspect(&victim, "{{.State.Running}}") == "true" {
                Ok(())
            } else {
                Err(format!("restarts {n}"))
            }
        });
    } else {
        project.ok(&["up", "-d", "--no-build", "--no-recreate", "--scale", "actor=2"]);
    }
    let s = wait_training(
        &metrics_addr,
        Some(2.0),
        s.iterations,
        "training with 2 actors after the crash",
        Duration::from_secs(120),
    );

    eprintln!("restart the learner container");
    let run_folder = "/runs/run";
    let before = wait_for("a checkpoint in the volume", Duration::from_secs(60), || {
        let files = files_in(&learner, &format!("{run_folder}/checkpoints"));
        if files.iter().any(|f| f.contains("ckpt-")) { Ok(files) } else { Err(format!("{files:?}")) }
    });
    // Checkpoint folders are named by training iteration.
    let newest: f64 =
        before.iter().filter_map(|f| f.rsplit("ckpt-").next()?.parse::<f64>().ok()).fold(0.0, f64::max);
    run_ok(&mut docker(&["restart", "-t", "30", &learner]));
    // SPIKERL_RESUME=auto (the image's entrypoint): the restarted learner resumes from the volume's checkpoint.
    let resumed = wait_for(
        "the restarted learner resuming from its checkpoint volume",
        Duration::from_secs(120),
        || {
            let manifest = read_file(&learner, &format!("{run_folder}/manifest.json"));
            let state = learner_state(&metrics_addr)?;
            if manifest.contains("\"resumed_from\": \"/runs/run/checkpoints/ckpt-")
                && state.iterations >= newest
            {
                Ok(state)
            } else {
                Err(format!(
                    "{state:?}, newest checkpoint before the restart: {newest}; manifest: {manifest}"
                ))
            }
        },
    );
    let back = wait_training(
        &metrics_addr,
        Some(2.0),
        resumed.iterations,
        "actors reconnected and training after the learner restart",
        Duration::from_secs(180),
    );
    eprintln!(
        "  {} iterations before the restart (newest checkpoint {newest}), resumed at {}, now {}",
        s.iterations, resumed.iterations, back.iterations
    );
    let files = files_in(&learner, run_folder);
    assert!(
        files.iter().any(|f| f.ends_with("manifest.json")) && files.iter().any(|f| f.ends_with("evals.csv")),
        "{files:?}"
    );

    eprintln!("compose down -v");
    drop(project);
    eprintln!("compose scenario took {:.0?} (image build included)", started.elapsed());
}

/// Leaves the swarm and removes what the stack left, when the test ends however it ends.
struct SwarmGuard {
    stack: String,
    initialised: bool,
    gwbridge_existed: bool,
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for service in ["learner", "actor", "prometheus"] {
                let out = run(&mut docker(&[
                    "service",
                    "logs",
                    "--tail",
                    "20",
                    &format!("{}_{service}", self.stack),
                ]));
                eprintln!(
                    "--- {service} ---\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let _ = run(&mut docker(&["stack", "rm", &self.stack]));
        let label = format!("label=com.docker.stack.namespace={}", self.stack);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let out = run(&mut docker(&["ps", "-aq", "--filter", &label]));
            if out.stdout.iter().all(u8::is_ascii_whitespace) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let volumes = run(&mut docker(&["volume", "ls", "-q", "--filter", &label]));
        for v in String::from_utf8_lossy(&volumes.stdout).split_whitespace() {
            let _ = run(&mut docker(&["volume", "rm", "-f", v]));
        }
        if self.initialised {
            let _ = run(&mut docker(&["swarm", "leave", "--force"]));
            if !self.gwbridge_existed {
                let _ = run(&mut docker(&["network", "rm", "docker_gwbridge"]));
            }
        }
    }
}

#[test]
fn swarm_stack_deploy_smoke() {
    let _lock = docker_lock();
    if !require(Need::Docker) {
        return;
    }
    if !require(Need::Swarm) {
        return;
    }
    let started = Instant::now();
    build_images();
    let gwbridge_existed = run(&mut docker(&["network", "inspect", "docker_gwbridge"])).status.success();
    let init = run(&mut docker(&["swarm", "init"]));
    if !init.status.success() {
        // Several interfaces and no obvious address: a one-node swarm can advertise loopback.
        run_ok(&mut docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]));
    }
    let stack = format!("spikerlswarm{}", std::process::id());
    let _guard = SwarmGuard { stack: stack.clone(), initialised: true, gwbridge_existed };

    let (grpc, metrics, prom) = (free_port(), free_port(), free_port());
    let mut cmd = docker(&["stack", "deploy", "-c", "docker-compose.yml", &stack]);
    cmd.current_dir(root());
    clean_env(&mut cmd);
    cmd.envs(cluster_env(grpc, metrics, prom));
    run_ok(&mut cmd);
    let metrics_addr = format!("127.0.0.1:{metrics}");
    wait_training(
        &metrics_addr,
        Some(2.0),
        0.0,
        "the stack training with 2 actor replicas",
        Duration::from_secs(240),
    );
    wait_prometheus(&format!("127.0.0.1:{prom}"), 2, Duration::from_secs(120));
    eprintln!("swarm smoke run took {:.0?}", started.elapsed());
}

// ------------------------------------------------------------------------------------------- Kubernetes

#[test]
fn kubernetes_manifests_validate_against_the_api_schemas() {
    // kubernetes-validate (the Kubernetes API's JSON schemas, from PyPI) lives in a virtual environment that
    // scripts/setup_test_deps.sh makes; the test never installs it.
    if !require(Need::K8sValidate) {
        return;
    }
    let python = k8s_validate_python();
    let validate = |extra: &[&str]| -> String {
        let mut cmd = Command::new(&python);
        cmd.arg(root().join("deploy/k8s/validate.py")).args(extra).current_dir(root());
        clean_env(&mut cmd);
        let out = run(&mut cmd);
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "deploy/k8s/validate.py {extra:?} failed:\n{text}");
        text
    };
    // Defaults, then the GPU learner; each against the oldest and newest Kubernetes the schemas cover here.
    let plain = validate(&[]);
    eprintln!("{plain}");
    let mut kinds = vec![
        "StatefulSet/spikerl-learner",
        "Service/spikerl-learner",
        "Deployment/spikerl-actor",
        "Secret/",
        "ServiceMonitor/",
    ];
    // Rendered from the monitoring files where they exist (deploy/prometheus/rules, deploy/grafana/dashboards).
    if std::fs::read_dir(root().join("deploy/prometheus/rules")).is_ok_and(|mut d| d.next().is_some()) {
        kinds.push("PrometheusRule/");
    }
    if std::fs::read_dir(root().join("deploy/grafana/dashboards")).is_ok_and(|mut d| d.next().is_some()) {
        kinds.push("ConfigMap/spikerl-dashboard-");
    }
    for kind in kinds {
        assert!(plain.contains(&format!("ok {kind}")), "rendered manifests include {kind}:\n{plain}");
    }
    assert!(
        plain.contains("volumeClaimTemplates [('runs'"),
        "the learner keeps its run folder on a persistent volume:\n{plain}"
    );
    assert!(plain.contains(" 0 problems"), "{plain}");
    let gpu = validate(&["--set", "learner.gpu.enabled=true"]);
    assert!(gpu.contains("nvidia.com/gpu"), "the GPU values request a GPU:\n{gpu}");
}

/// The compose files parse (with the GPU and Grafana overrides) with the compose tool in use.
#[test]
fn compose_files_parse() {
    let _lock = docker_lock();
    if !require(Need::Docker) {
        return;
    }
    let program = compose_program();
    for extra in [&[][..], &["deploy/docker/compose.grafana.yml"][..], &["deploy/docker/compose.gpu.yml"][..]]
    {
        let mut cmd = Command::new(&program[0]);
        cmd.args(&program[1..]).args(["-f", "docker-compose.yml"]);
        for f in extra {
            cmd.args(["-f", f]);
        }
        cmd.args(["--env-file", root().join(".env.example").to_str().unwrap(), "config"]).current_dir(root());
        clean_env(&mut cmd);
        let out = run_ok(&mut cmd);
        assert!(out.contains("learner") && out.contains("actor") && out.contains("prometheus"), "{out}");
        if extra.iter().any(|f| f.contains("gpu")) {
            assert!(out.contains("nvidia") && out.contains("cuda"), "{out}");
        }
        if extra.iter().any(|f| f.contains("grafana")) {
            assert!(out.contains("grafana"), "{out}");
        }
    }
}
