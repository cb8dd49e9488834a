//! The sweep state file, `DIR/sweep.json`, and the lock that serialises everything that writes it.
//!
//! A local sweep holds the lock for as long as it runs. A cluster sweep has many writers instead: the
//! command that submits it and every task running on a cluster node; each holds the lock only while it
//! reads, changes and writes the file, so their updates never overwrite one another.

use crate::spec::TrainOptions;
use crate::time::now_rfc3339;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The sweep state file, `DIR/sweep.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SweepState {
    pub spec: String,
    pub description: String,
    /// The spec's text when the sweep last started.
    pub spec_toml: String,
    pub exe: String,
    pub jobs: usize,
    pub started_at: String,
    pub updated_at: String,
    /// By run id (`{env}/{method}/seed{N}`, the folder under DIR).
    pub runs: BTreeMap<String, RunRecord>,
    /// What was handed to a cluster engine (`--backend slurm|k8s`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub submissions: Vec<Submission>,
}

/// One run as the sweep saw it last.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    /// pending | queued | running | completed | failed | interrupted
    pub status: String,
    pub options: TrainOptions,
    pub command: Vec<String>,
    /// Times the sweep started it (resumes and restarts included).
    pub attempts: u32,
    /// Of the attempts, those that continued from a checkpoint (`spikerl train --resume`).
    #[serde(default)]
    pub resumes: u32,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub wall_seconds: Option<f64>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// Max over evaluations of the average return (the paper's metric), when completed.
    pub max_avg_return: Option<f64>,
    /// Where its last attempt ran when a cluster engine ran it: `slurm 1234_5 on node17`, `k8s pod NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
}

/// One submission to a cluster engine.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Submission {
    /// `slurm` or `k8s`.
    pub backend: String,
    /// The Slurm array job id, or the Kubernetes Job's name.
    pub job: String,
    /// The grid's task numbers it runs (`DIR/slurm/tasks.tsv`; Slurm array indices).
    pub tasks: Vec<usize>,
    pub submitted_at: String,
}

pub fn state_path(out: &Path) -> PathBuf {
    out.join("sweep.json")
}

pub fn load_state(out: &Path) -> anyhow::Result<SweepState> {
    let path = state_path(out);
    if !path.exists() {
        return Ok(SweepState::default());
    }
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Writes the state atomically (temporary file, then rename): a reader never sees half a file. Call it
/// holding the lock.
pub fn save_state(out: &Path, state: &mut SweepState) -> anyhow::Result<()> {
    state.updated_at = now_rfc3339();
    let path = state_path(out);
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(state)?)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

/// Holds `DIR/sweep.lock` (flock) while alive; released on drop and on exit, even a crash.
pub struct Lock(#[allow(dead_code)] File);

fn open_lock_file(out: &Path) -> anyhow::Result<File> {
    let path = out.join("sweep.lock");
    File::create(&path).with_context(|| format!("creating {}", path.display()))
}

fn try_flock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Takes the lock at once or fails: two sweeps must never drive the same folder.
pub fn lock(out: &Path) -> anyhow::Result<Lock> {
    let file = open_lock_file(out)?;
    if !try_flock(&file) {
        bail!(
            "another sweep is running in {} (it holds {})",
            out.display(),
            out.join("sweep.lock").display()
        );
    }
    Ok(Lock(file))
}

/// Takes the lock, waiting up to `patience` for a short-lived holder (a submission, another task's
/// update) to let go.
pub fn lock_waiting(out: &Path, patience: Duration) -> anyhow::Result<Lock> {
    let file = open_lock_file(out)?;
    let deadline = Instant::now() + patience;
    while !try_flock(&file) {
        if Instant::now() >= deadline {
            bail!(
                "{} stayed locked for {} s: a local `spikerl sweep` drives this folder",
                out.join("sweep.lock").display(),
                patience.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Lock(file))
}

/// Reads the state, lets `change` edit it and writes it back, all under the lock (waiting for it).
pub fn update_state<T>(out: &Path, change: impl FnOnce(&mut SweepState) -> T) -> anyhow::Result<T> {
    let _lock = lock_waiting(out, Duration::from_secs(60))?;
    let mut state = load_state(out)?;
    let result = change(&mut state);
    save_state(out, &mut state)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::OptValue;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("spikerl-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn state_file_round_trips_and_the_lock_keeps_a_second_writer_out() {
        let root = temp_dir("roundtrip");
        let mut s = SweepState { jobs: 2, ..Default::default() };
        let mut options = TrainOptions::new();
        options.insert("sync".into(), OptValue::Flag(true));
        s.runs.insert(
            "a/ann/seed0".into(),
            RunRecord { status: "failed".into(), options, error: Some("boom".into()), ..Default::default() },
        );
        s.submissions.push(Submission {
            backend: "slurm".into(),
            job: "12".into(),
            tasks: vec![0, 3],
            submitted_at: now_rfc3339(),
        });
        save_state(&root, &mut s).unwrap();
        let back = load_state(&root).unwrap();
        assert_eq!(back.runs, s.runs);
        assert_eq!(back.submissions, s.submissions);
        assert!(!back.updated_at.is_empty());
        let held = lock(&root).unwrap();
        assert!(lock(&root).is_err(), "a second sweep on the same folder is refused");
        assert!(lock_waiting(&root, Duration::from_millis(300)).is_err(), "a waiting writer gives up");
        drop(held);
        let n = update_state(&root, |s| {
            s.runs.get_mut("a/ann/seed0").unwrap().attempts += 1;
            s.runs.len()
        })
        .unwrap();
        assert_eq!(n, 1);
        assert_eq!(load_state(&root).unwrap().runs["a/ann/seed0"].attempts, 1);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn state_files_written_before_cluster_backends_still_load() {
        let root = temp_dir("old");
        fs::write(
            state_path(&root),
            r#"{"spec":"s.toml","description":"","spec_toml":"","exe":"spikerl","jobs":1,"started_at":"",
                "updated_at":"","runs":{"x/ann/seed0":{"status":"completed","options":{},"command":[],
                "attempts":1,"started_at":null,"ended_at":null,"wall_seconds":null,"exit_code":0,
                "error":null,"max_avg_return":-3.5}}}"#,
        )
        .unwrap();
        let s = load_state(&root).unwrap();
        assert_eq!(s.runs["x/ann/seed0"].resumes, 0);
        assert!(s.submissions.is_empty());
        fs::remove_dir_all(&root).unwrap();
    }
}
