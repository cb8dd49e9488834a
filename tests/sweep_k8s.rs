//! `spikerl sweep --backend k8s`: the Indexed Job a sweep submits, printed by `--dry-run`, validated
//! offline against the Kubernetes API's schemas (strict: no unknown fields; the oldest and newest versions
//! deploy/k8s/validate.py checks), for CPU and for CUDA runs; and the clear errors without a `[k8s]`
//! section or without kubectl. Needs the kubernetes-validate environment of scripts/setup_test_deps.sh
//! (`k8s-validate`); no cluster.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const GRID: &str = r#"
envs = ["Pendulum-v1"]
algos = ["ann", "proxy"]
neurons = ["lif"]
seeds = 2

[train]
steps = 2_000
sync = true

[k8s]
claim = "spikerl-sweeps"
namespace = "spikerl"
parallelism = 3
memory = "2Gi"
"#;

/// Validates `doc` with kubernetes-validate, strictly, against the versions deploy/k8s/validate.py uses.
const VALIDATE: &str = r#"
import json, sys
import kubernetes_validate
doc = json.load(sys.stdin)
versions = ["1.29.0", kubernetes_validate.utils.latest_version()]
for v in versions:
    kubernetes_validate.validate(doc, v, strict=True)
print("ok %s/%s against Kubernetes %s strict" % (doc["kind"], doc["metadata"]["name"], ", ".join(versions)))
"#;

fn sweep(spec: &Path, out: &Path, extra: &[&str]) -> Output {
    spikerl()
        .arg("sweep")
        .arg(spec)
        .arg("--out")
        .arg(out)
        .args(["--backend", "k8s"])
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn validate(job: &Value) -> String {
    let mut child = Command::new(k8s_validate_python())
        .args(["-c", VALIDATE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(job.to_string().as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "the Job does not validate:\n{}\n{job:#}", text(&o));
    text(&o)
}

#[test]
fn the_sweeps_indexed_job_validates_against_the_api_schemas() {
    if !require(Need::K8sValidate) {
        return;
    }
    let dir = temp_dir("sweep-k8s");
    let spec = dir.join("grid.toml");
    fs::write(&spec, GRID).unwrap();
    let out = dir.join("Grid");

    let o = sweep(&spec, &out, &["--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!out.exists(), "a dry run writes nothing");
    let job: Value = serde_json::from_slice(&o.stdout).expect("--dry-run prints the Job as JSON");
    eprintln!("{}", validate(&job));
    assert_eq!(job["metadata"]["name"], "spikerl-sweep-grid-1");
    assert_eq!(job["metadata"]["namespace"], "spikerl");
    let spec_of_job = &job["spec"];
    assert_eq!(spec_of_job["completionMode"], "Indexed");
    assert_eq!(spec_of_job["completions"], 4, "one index per run");
    assert_eq!(spec_of_job["parallelism"], 3);
    let rules = spec_of_job["podFailurePolicy"]["rules"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["action"] == "Ignore" && r["onPodConditions"][0]["type"] == "DisruptionTarget"),
        "an evicted or preempted pod is retried without counting as a failure: {rules:?}"
    );
    let pod = &spec_of_job["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], "spikerl-sweeps");
    assert_eq!(
        container["command"],
        serde_json::json!(["spikerl", "sweep", "task", "/sweeps/Grid", "--pick", "0,1,2,3"])
    );
    assert_eq!(container["resources"]["requests"]["memory"], "2Gi");
    assert!(container["resources"]["limits"].get("nvidia.com/gpu").is_none());
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 60, "time to checkpoint");

    // CUDA runs ask for a GPU each.
    fs::write(&spec, GRID.replace("sync = true", "sync = true\ndevice = \"cuda\"")).unwrap();
    let o = sweep(&spec, &out, &["--dry-run", "--jobs", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let gpu: Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("{}", validate(&gpu));
    let container = &gpu["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(container["image"], "spikerl-learner:latest-cuda");
    assert_eq!(gpu["spec"]["parallelism"], 2, "--jobs sets the pods at once");

    // Without kubectl, a submission says so and leaves the folder untouched.
    let empty_path = dir.join("no-tools");
    fs::create_dir_all(&empty_path).unwrap();
    let o = spikerl()
        .arg("sweep")
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .args(["--backend", "k8s"])
        .env("PATH", &empty_path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("kubectl is not on PATH"), "{}", text(&o));
    assert!(!out.exists());

    // The section is required for this backend.
    let bare = GRID.split("[k8s]").next().unwrap();
    fs::write(&spec, bare).unwrap();
    let o = sweep(&spec, &out, &["--dry-run"]);
    assert!(!o.status.success() && text(&o).contains("needs a [k8s] section"), "{}", text(&o));
    let _ = fs::remove_dir_all(&dir);
}
