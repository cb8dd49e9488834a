//! Disk full while checkpointing, for real: the learner's run folder is a small tmpfs, filled up after
//! the first checkpoint lands. The learner must keep training, log the failure clearly and count it,
//! keep attempting periodic checkpoints, leave no partial checkpoint behind, keep the last good one
//! intact, and resume from it once space is freed.
//!
//! Mounting needs root (as in CI and the dev container). Without it, or if the mount fails, the test
//! skips loudly through `common::available`, or fails where SPIKERL_REQUIRE lists `root` (CI).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn counter(text: &str, name: &str) -> f64 {
    metric(text, name, &[]).unwrap_or(0.0)
}

/// A tmpfs mounted on a folder, unmounted on drop (after the processes using it are gone: declare
/// it before the `Processes` guard so it drops after).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "spikerl-disk-full"])
            .arg(path)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            // Something still holds a file there: detach it anyway rather than leak a mount.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Complete checkpoint folders (SHA256SUMS present), oldest first.
fn checkpoints(run_folder: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(run_folder.join("checkpoints"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().unwrap().to_string_lossy().starts_with("ckpt-")
                        && p.join("SHA256SUMS").exists()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `sha256sum --check` in the checkpoint folder: every file it lists is intact.
fn verifies(ckpt: &Path) -> bool {
    Command::new("sha256sum")
        .args(["--check", "--quiet", "--strict", "SHA256SUMS"])
        .current_dir(ckpt)
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes zeros into `path` until the filesystem refuses (ENOSPC). Returns the bytes written.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 1 << 16];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC while filling, got {e}");
                break;
            }
        }
    }
    written
}

/// Names in the checkpoints folder that are not complete checkpoints or the policy file.
fn leftovers(run_folder: &Path) -> Vec<String> {
    std::fs::read_dir(run_folder.join("checkpoints"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !(n.starts_with("ckpt-") || n == "policy.safetensors"))
        .collect()
}

#[test]
fn disk_full_while_checkpointing_keeps_training_and_the_last_good_checkpoint() {
    let dir = temp_dir("disk-full");
    let run_folder = dir.join("run");
    std::fs::create_dir_all(&run_folder).unwrap();
    // A Pendulum ANN checkpoint is about 4 MB: 64 MiB holds several, and filling it is quick.
    if !require(Need::Root) {
        return;
    }
    let _mount = match Tmpfs::mount(&run_folder, "64m") {
        Ok(m) => m,
        Err(why) => {
            // Root, and still no tmpfs: a failure where `root` is required, a loud skip elsewhere.
            available(Need::Root, Err(format!("running as root, but no tmpfs: {why}")));
            return;
        }
    };
    let (grpc, metrics) = (free_port(), free_port());
    let maddr = format!("127.0.0.1:{metrics}");
    let mut procs = Processes::default();
    let run = [
        "--steps",
        "1000000",
        "--random-steps",
        "500",
        // Evaluations keep coming while the disk is full: appending to evals.csv may fail too (or not:
        // tmpfs can still have room in the file's last page), and must not end the run either.
        "--eval-every",
        "200",
        "--eval-episodes",
        "1",
        "--checkpoint-secs",
        "1",
    ];
    let l = procs.spawn("learner", learner_cmd(grpc, metrics, &run_folder, &run), &dir.join("learner.log"));
    procs.spawn("actor", actor_cmd(grpc, "a0", &[]), &dir.join("a0.log"));

    // The first checkpoint lands; then the disk fills up.
    let deadline = Instant::now() + Duration::from_secs(120);
    while checkpoints(&run_folder).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no checkpoint written:\n{}",
            std::fs::read_to_string(dir.join("learner.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let filler = run_folder.join("filler");
    let filled = fill(&filler);
    // Checkpoints that were complete when the disk filled up (a second one may have landed meanwhile).
    let good = checkpoints(&run_folder);
    let last_good = good.last().unwrap().clone();
    eprintln!("filled {filled} bytes; good checkpoints: {good:?}");
    assert!(verifies(&last_good), "{} verifies before the failures", last_good.display());

    // Training goes on; checkpoints keep being attempted and failing, each one counted. With no byte
    // free, the first file a checkpoint writes (policy.safetensors) fails.
    let text = wait_metrics(&maddr, Duration::from_secs(60), "a checkpoint failure", |t| {
        counter(t, "spikerl_learner_checkpoint_failures_total") >= 1.0
    });
    let failures = counter(&text, "spikerl_learner_checkpoint_failures_total");
    let failed_lines = |log: &str| -> Vec<String> {
        log.lines().filter(|l| l.contains("checkpoint failed")).map(String::from).collect()
    };
    let log = std::fs::read_to_string(dir.join("learner.log")).unwrap();
    let first = failed_lines(&log).into_iter().next().unwrap_or_else(|| panic!("no failure logged:\n{log}"));
    eprintln!("logged: {first}");
    assert!(first.contains("ERROR") && first.contains("No space left on device"), "a clear error: {first}");

    // Some room, enough for the policy file but not for the networks: now checkpoints fail halfway
    // through their temporary folder, the case that must not leave half a checkpoint behind.
    let policy = std::fs::metadata(run_folder.join("checkpoints/policy.safetensors")).unwrap().len();
    let room = 2 * policy + (64 << 10);
    std::fs::OpenOptions::new().write(true).open(&filler).unwrap().set_len(filled - room).unwrap();
    let text = wait_metrics(&maddr, Duration::from_secs(60), "checkpoints failing halfway", |t| {
        counter(t, "spikerl_learner_checkpoint_failures_total") >= failures + 2.0
    });
    let iters = counter(&text, "spikerl_learner_train_iterations_total");
    let log = std::fs::read_to_string(dir.join("learner.log")).unwrap();
    let halfway = failed_lines(&log).into_iter().find(|l| l.contains(".tmp-ckpt-"));
    let halfway = halfway.unwrap_or_else(|| panic!("no failure inside a checkpoint folder:\n{log}"));
    eprintln!("logged: {halfway}");
    assert!(halfway.contains("No space left on device"), "a clear error: {halfway}");
    let text = wait_metrics(&maddr, Duration::from_secs(120), "training and retried checkpoints", |t| {
        counter(t, "spikerl_learner_train_iterations_total") > iters + 500.0
            && counter(t, "spikerl_learner_checkpoint_failures_total") >= failures + 4.0
    });
    eprintln!(
        "with the disk full: iterations {iters} -> {}, checkpoint failures {}, evals.csv write failures {}",
        counter(&text, "spikerl_learner_train_iterations_total"),
        counter(&text, "spikerl_learner_checkpoint_failures_total"),
        counter(&text, "spikerl_learner_eval_write_failures_total")
    );
    assert!(procs.0[l].1.try_wait().unwrap().is_none(), "the learner is still running");
    // No new checkpoint could be written, and the good ones are untouched.
    assert_eq!(checkpoints(&run_folder), good, "checkpoints changed while the disk was full");
    for c in &good {
        assert!(verifies(c), "{} is intact", c.display());
    }

    // SIGTERM with the disk still full: the shutdown checkpoint fails too, the learner still exits.
    let pid = procs.0[l].1.id();
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let status = procs.wait(l, Duration::from_secs(30)).expect("exits within 30 s of SIGTERM");
    assert!(status.success(), "graceful shutdown exits 0 even when its checkpoint fails");
    assert!(leftovers(&run_folder).is_empty(), "partial files left behind: {:?}", leftovers(&run_folder));
    assert_eq!(checkpoints(&run_folder), good);
    assert!(verifies(&last_good), "{} is intact after shutdown", last_good.display());
    let ckpt_iters: u64 = last_good.file_name().unwrap().to_string_lossy()["ckpt-".len()..].parse().unwrap();

    // Space freed: resume from the last good checkpoint, and checkpointing works again.
    std::fs::remove_file(&filler).unwrap();
    let resume = learner_cmd(grpc, metrics, &run_folder, &["--resume", "--checkpoint-secs", "1"]);
    let l2 = procs.spawn("learner-resumed", resume, &dir.join("learner2.log"));
    let text = wait_metrics(&maddr, Duration::from_secs(60), "the resumed learner training", |t| {
        counter(t, "spikerl_learner_train_iterations_total") > ckpt_iters as f64 + 200.0
    });
    // Exported at 0 from the start (so that `increase()` sees a first failure), not absent.
    assert_eq!(metric(&text, "spikerl_learner_checkpoint_failures_total", &[]), Some(0.0), "{text}");
    let log2 = std::fs::read_to_string(dir.join("learner2.log")).unwrap();
    assert!(
        log2.contains("resumed") && log2.contains(&*last_good.file_name().unwrap().to_string_lossy()),
        "resumed from {}:\n{log2}",
        last_good.display()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoints(&run_folder).last() == Some(&last_good) {
        assert!(Instant::now() < deadline, "no new checkpoint after freeing space:\n{log2}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let newest = checkpoints(&run_folder).last().unwrap().clone();
    assert!(newest > last_good && verifies(&newest), "new checkpoint {} verifies", newest.display());
    procs.kill(l2);
    drop(procs);
    drop(_mount);
    let _ = std::fs::remove_dir_all(&dir);
}
