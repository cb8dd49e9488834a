//! `--backend k8s`: the sweep as one Kubernetes Indexed Job. Completion index `i` runs the `i`-th of the
//! grid tasks the submission picked (`spikerl sweep task DIR --pick 3,5,7`, the index from the
//! `JOB_COMPLETION_INDEX` variable Kubernetes sets), on the sweep folder in a PersistentVolumeClaim.
//!
//! A pod that is evicted or preempted gets SIGTERM: its runs checkpoint and stop, the task exits 75, and
//! the pod failure policy ignores the failure (the pod carries the `DisruptionTarget` condition, or exit
//! code 75), so the Job starts the index again and it resumes. Other failures count against a retry
//! limit per index; a usage error (exit 2) fails the index at once.
//!
//! The manifest is JSON, which kubectl reads as it reads YAML.

use crate::spec::{K8sSection, RunPlan};
use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The container's name, which the pod failure policy's exit-code rules refer to.
const CONTAINER: &str = "task";
/// The user the spikerl images run as (deploy/docker/Dockerfile): owner of what the pods write.
const IMAGE_UID: i64 = 10001;

/// A DNS-1123 label (Job names, which also go into pod labels): lower-case letters, digits and '-', at
/// most 63 characters, starting and ending with a letter or digit.
pub fn label(text: &str, max: usize) -> String {
    let mut s: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    s.truncate(max);
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "sweep".into() } else { s }
}

/// What the Job needs beyond the `[k8s]` section.
pub struct JobInputs<'a> {
    /// The grid's task numbers this Job runs, completion index `i` the `i`-th.
    pub tasks: &'a [usize],
    /// The name of the sweep folder (`--out`): the default sub-path in the claim and job name.
    pub out_name: &'a str,
    /// Its number among the sweep's Kubernetes submissions, appended to the Job's name (Jobs are
    /// immutable: each submission is a new one).
    pub submission: usize,
    /// Pods at once when the spec does not say (`--jobs`).
    pub at_once: Option<usize>,
    /// Every run of the grid, for the defaults of CPU, GPU and image.
    pub plans: &'a [RunPlan],
}

/// The sweep folder as the pods see it: `{mount_path}/{sub_path}`.
pub fn pod_out(section: &K8sSection, out_name: &str) -> anyhow::Result<String> {
    let mount = section.mount_path.as_deref().unwrap_or("/sweeps").trim_end_matches('/');
    ensure!(mount.starts_with('/') && mount.len() > 1, "[k8s] mount_path {mount:?} must be an absolute path");
    let sub = section.sub_path.as_deref().unwrap_or(out_name).trim_matches('/');
    ensure!(
        !sub.is_empty() && !sub.split('/').any(|p| p == ".." || p == "." || p.is_empty()),
        "[k8s] sub_path {sub:?} must be a plain relative path inside the claim"
    );
    Ok(format!("{mount}/{sub}"))
}

/// The Job's name for this submission.
pub fn job_name(section: &K8sSection, inputs: &JobInputs<'_>) -> String {
    let base = match &section.job_name {
        Some(name) => label(name, 50),
        None => label(&format!("spikerl-sweep-{}", inputs.out_name), 50),
    };
    format!("{base}-{}", inputs.submission)
}

/// The Indexed Job of one submission.
pub fn job(section: &K8sSection, inputs: &JobInputs<'_>) -> anyhow::Result<Value> {
    ensure!(!inputs.tasks.is_empty(), "no task to submit");
    ensure!(
        !section.claim.is_empty() && label(&section.claim, 253) == section.claim,
        "[k8s] claim {:?} is not a PersistentVolumeClaim name (lower-case letters, digits, '-')",
        section.claim
    );
    let cuda = inputs.plans.iter().any(RunPlan::uses_cuda);
    let cores = inputs.plans.iter().map(RunPlan::cores).max().unwrap_or(1);
    let gpus = section.gpus.unwrap_or(u32::from(cuda));
    let completions = inputs.tasks.len();
    let parallelism = match (inputs.at_once, section.parallelism) {
        (Some(n), _) => n,
        (None, Some(0)) => bail!("[k8s] parallelism must be at least 1"),
        (None, Some(n)) => n as usize,
        (None, None) => completions,
    }
    .min(completions);
    let mount = section.mount_path.as_deref().unwrap_or("/sweeps").trim_end_matches('/').to_string();
    let out = pod_out(section, inputs.out_name)?;
    let image = section
        .image
        .clone()
        .unwrap_or_else(|| format!("spikerl-learner:latest{}", if cuda { "-cuda" } else { "" }));
    ensure!(!image.trim().is_empty(), "[k8s] image is empty");
    let pull = section.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
    ensure!(
        ["Always", "IfNotPresent", "Never"].contains(&pull),
        "[k8s] image_pull_policy {pull:?}: Always, IfNotPresent or Never"
    );
    let memory = section.memory.as_deref().unwrap_or("4Gi");
    let cpu = section.cpu.clone().unwrap_or_else(|| cores.to_string());
    for (field, value) in [("cpu", cpu.as_str()), ("memory", memory)] {
        ensure!(
            !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'),
            "[k8s] {field} = {value:?} is not a Kubernetes quantity (e.g. \"2\", \"1500m\", \"4Gi\")"
        );
    }

    let mut requests = json!({"cpu": cpu, "memory": memory});
    let mut limits = json!({"memory": memory});
    if gpus > 0 {
        // Extended resources are requested through limits (requests, if given, must equal them).
        requests["nvidia.com/gpu"] = json!(gpus.to_string());
        limits["nvidia.com/gpu"] = json!(gpus.to_string());
    }
    let pick = inputs.tasks.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let name = job_name(section, inputs);
    let labels = json!({
        "app.kubernetes.io/name": "spikerl",
        "app.kubernetes.io/component": "sweep-task",
        "spikerl/sweep": label(inputs.out_name, 63),
    });
    let container = json!({
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": pull,
        // The task reads its index from JOB_COMPLETION_INDEX, which the Job controller sets.
        "command": ["spikerl", "sweep", "task", out, "--pick", pick],
        "env": [{"name": "OMP_NUM_THREADS", "value": cores.to_string()}],
        "resources": {"requests": requests, "limits": limits},
        "volumeMounts": [{"name": "sweep", "mountPath": mount}],
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
        },
    });
    let mut pod = json!({
        "restartPolicy": "Never",
        // SIGTERM, then this long to checkpoint before SIGKILL.
        "terminationGracePeriodSeconds": section.termination_grace_secs.unwrap_or(300),
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": IMAGE_UID,
            "runAsGroup": IMAGE_UID,
            "fsGroup": IMAGE_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "sweep", "persistentVolumeClaim": {"claimName": section.claim}}],
    });
    if !section.node_selector.is_empty() {
        pod["nodeSelector"] = json!(section.node_selector);
    }
    if gpus > 0 {
        pod["tolerations"] = json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]);
    }
    let mut metadata = json!({"name": name, "labels": labels});
    if let Some(ns) = &section.namespace {
        ensure!(label(ns, 63) == *ns, "[k8s] namespace {ns:?} is not a namespace name");
        metadata["namespace"] = json!(ns);
    }
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "completionMode": "Indexed",
            "completions": completions,
            "parallelism": parallelism,
            // Retries count per task, so one failing run does not use up the others' retries.
            "backoffLimitPerIndex": section.retries.unwrap_or(3),
            // A replacement pod starts only once the old one has stopped writing the run folder.
            "podReplacementPolicy": "Failed",
            "podFailurePolicy": {"rules": [
                // Evicted, preempted, drained: not the run's fault. Retried without counting; it resumes.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                // The task stopped early after checkpointing ("incomplete, resume me").
                {"action": "Ignore", "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [75]}},
                // A usage error fails the same way every time.
                {"action": "FailIndex", "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [2]}},
            ]},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }))
}

/// `kubectl apply -f -` with `manifest`; returns kubectl's output.
pub fn apply(manifest: &Value) -> anyhow::Result<String> {
    let mut child = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run kubectl ({e}): install it and point it at the cluster, or print the Job with \
                 --dry-run and apply it where kubectl reaches the cluster"
            )
        })?;
    let text = serde_json::to_vec_pretty(manifest)?;
    child.stdin.take().context("kubectl's stdin")?.write_all(&text).context("writing to kubectl")?;
    let out = child.wait_with_output().context("waiting for kubectl")?;
    if !out.status.success() {
        bail!("kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether Job `name` still runs pods, by `kubectl get job`: a new submission waits for it (or its
/// deletion), since both would work on the same runs. None when kubectl cannot tell.
pub fn job_active(name: &str, namespace: Option<&str>) -> Option<bool> {
    let mut cmd = Command::new("kubectl");
    cmd.args(["get", "job", name, "-o", "json"]).stdin(Stdio::null());
    if let Some(ns) = namespace {
        cmd.args(["--namespace", ns]);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        // Deleted, or never made: nothing of it runs.
        return String::from_utf8_lossy(&out.stderr).contains("NotFound").then_some(false);
    }
    let job: Value = serde_json::from_slice(&out.stdout).ok()?;
    let finished = job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
    });
    Some(!finished)
}

/// The sweep folder's name (the last part of `--out`), for default names.
pub fn out_name(out: &Path) -> String {
    out.file_name().map_or_else(|| "sweep".into(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Spec;

    fn plans(extra: &str) -> Vec<RunPlan> {
        let text = format!(
            "envs=[\"Pendulum-v1\"]\nalgos=[\"ann\", \"proxy\"]\nneurons=[\"lif\"]\nseeds=2\n[train]\nsync=true\n{extra}"
        );
        Spec::parse(&text).unwrap().expand().unwrap()
    }

    fn section(text: &str) -> K8sSection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn an_indexed_job_over_the_picked_tasks_on_the_claim() {
        let plans = plans("");
        let inputs =
            JobInputs { tasks: &[1, 3], out_name: "Grid_1", submission: 2, at_once: None, plans: &plans };
        let job = job(&section("claim = \"sweeps\"\nparallelism = 5"), &inputs).unwrap();
        assert_eq!(job["metadata"]["name"], "spikerl-sweep-grid-1-2");
        let spec = &job["spec"];
        assert_eq!(spec["completionMode"], "Indexed");
        assert_eq!(spec["completions"], 2);
        assert_eq!(spec["parallelism"], 2, "never more pods than tasks");
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let c = &pod["containers"][0];
        assert_eq!(c["command"], json!(["spikerl", "sweep", "task", "/sweeps/Grid_1", "--pick", "1,3"]));
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/sweeps");
        assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], "sweeps");
        assert_eq!(c["resources"]["requests"]["cpu"], "1");
        assert!(c["resources"]["limits"].get("nvidia.com/gpu").is_none());
        let rules = spec["podFailurePolicy"]["rules"].as_array().unwrap();
        assert_eq!(rules[0]["onPodConditions"][0]["type"], "DisruptionTarget");
        assert_eq!(rules[0]["action"], "Ignore");
        assert_eq!(rules[1]["onExitCodes"]["values"], json!([75]));
    }

    #[test]
    fn cuda_runs_request_gpus_and_bad_sections_are_refused() {
        let cuda = plans("device = \"cuda\"");
        let inputs = JobInputs { tasks: &[0], out_name: "g", submission: 1, at_once: Some(1), plans: &cuda };
        let job = job(&section("claim = \"sweeps\"\nmount_path = \"/data/\"\nsub_path = \"a/b\""), &inputs)
            .unwrap();
        let c = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
        assert_eq!(c["image"], "spikerl-learner:latest-cuda");
        assert_eq!(c["command"][3], "/data/a/b");
        let err = |text: &str| format!("{:#}", super::job(&section(text), &inputs).unwrap_err());
        assert!(err("claim = \"Bad Claim\"").contains("PersistentVolumeClaim"));
        assert!(err("claim = \"c\"\nsub_path = \"../x\"").contains("sub_path"));
        assert!(err("claim = \"c\"\nmemory = \"4 Gi\"").contains("quantity"));
        assert!(err("claim = \"c\"\nimage_pull_policy = \"Sometimes\"").contains("IfNotPresent"));
    }

    #[test]
    fn labels_are_dns_names() {
        assert_eq!(label("Paper_Table1.v2", 63), "paper-table1-v2");
        assert_eq!(label("--", 63), "sweep");
        assert_eq!(label(&"x".repeat(80), 63).len(), 63);
    }
}
