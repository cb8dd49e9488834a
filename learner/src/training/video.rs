//! `train --video-every N`: one evaluation episode recorded into the run folder's `videos/` at the first
//! evaluation at or after every multiple of N env steps (step 0 included), as CleanRL's `--capture-video`.
//!
//! The episode is the first evaluation episode (same seed, same deterministic policy), rendered on a
//! thread of its own so that training goes on meanwhile; at most one video renders at a time (one due
//! while another still renders waits for it: no video is lost). A video that cannot be made (no libOSMesa, no
//! ffmpeg, a full disk) is logged and never stops training. MP4 when `ffmpeg` is on PATH (about 20x
//! smaller than GIF), GIF otherwise.

use crate::storage::run_folder::video_path;
use spikerl_envs::render::{self, VideoOptions, record_episode};
use spikerl_snn::{NamedTensors, Policy, PolicyConfig};
use std::path::Path;
use std::thread::JoinHandle;

/// Whether a video is due at the evaluation at `step`, the previous evaluation having run at `previous`:
/// the first evaluation, or one that crossed a multiple of `every`.
pub fn due(every: u64, previous: Option<u64>, step: u64) -> bool {
    every > 0 && previous.is_none_or(|p| step / every > p / every)
}

/// The extension periodic videos use on this machine: mp4 where ffmpeg is found, else gif.
fn extension() -> &'static str {
    if render::ffmpeg_available() { "mp4" } else { "gif" }
}

/// The video being rendered, if any. Dropping it waits for that video, so a run that ends normally
/// leaves complete files.
#[derive(Default)]
pub struct VideoRecorder {
    rendering: Option<JoinHandle<()>>,
}

impl VideoRecorder {
    /// Starts rendering one deterministic episode of `env_id` (reset seeded with `seed`) with the policy
    /// `weights` into `run_folder/videos/step-N.(mp4|gif)`. Returns at once.
    pub fn record(
        &mut self,
        run_folder: &Path,
        step: u64,
        env_id: &str,
        seed: u64,
        policy_config: &PolicyConfig,
        weights: NamedTensors,
    ) {
        // One video at a time: a video due while the previous one still renders waits for it (training
        // pauses meanwhile) rather than being lost.
        if self.rendering.as_ref().is_some_and(|h| !h.is_finished()) {
            tracing::info!(step, "waiting for the previous video to finish rendering");
        }
        self.wait();
        let path = video_path(run_folder, step, extension());
        let (env_id, policy_config) = (env_id.to_string(), policy_config.clone());
        let spawned = std::thread::Builder::new().name("video".into()).spawn(move || {
            if let Err(e) = render(&env_id, seed, &policy_config, &weights, &path) {
                tracing::error!(error = %e, path = %path.display(), "could not record the video; training goes on");
            }
        });
        match spawned {
            Ok(handle) => self.rendering = Some(handle),
            Err(e) => tracing::error!(error = %e, "could not start the video thread; training goes on"),
        }
    }

    /// Waits for the video being rendered, if any.
    pub fn wait(&mut self) {
        if let Some(handle) = self.rendering.take()
            && handle.join().is_err()
        {
            tracing::error!("the video thread panicked; training goes on");
        }
    }
}

impl Drop for VideoRecorder {
    fn drop(&mut self) {
        self.wait();
    }
}

fn render(
    env_id: &str,
    seed: u64,
    policy_config: &PolicyConfig,
    weights: &NamedTensors,
    path: &Path,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut policy = Policy::new(policy_config, weights)?;
    let mut obs32 = Vec::new();
    let (summary, episode) = record_episode(
        env_id,
        seed,
        |obs, action| {
            obs32.clear();
            obs32.extend(obs.iter().map(|&x| x as f32));
            policy.act(&obs32, action);
        },
        path,
        VideoOptions::default(),
    )?;
    tracing::info!(
        path = %path.display(),
        frames = summary.frames,
        episode_return = episode.ret,
        seconds = summary.render_seconds + summary.encode_seconds,
        "video recorded"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_video_at_the_first_evaluation_and_after_each_multiple() {
        let steps = [0u64, 5_000, 10_000, 15_000, 20_000, 25_000];
        let mut previous = None;
        let mut at = Vec::new();
        for s in steps {
            if due(10_000, previous, s) {
                at.push(s);
            }
            previous = Some(s);
        }
        assert_eq!(at, [0, 10_000, 20_000]);
        // Evaluations that do not fall on multiples: the first one past each.
        assert!(due(10_000, Some(9_000), 12_000));
        assert!(!due(10_000, Some(12_000), 18_000));
        // A resumed run (previous evaluation from its checkpoint) does not repeat a video.
        assert!(!due(10_000, Some(10_000), 15_000));
        assert!(!due(0, None, 0), "0 disables videos");
    }

    #[test]
    fn names_sort_by_step() {
        let a = video_path(Path::new("run"), 900, "mp4");
        let b = video_path(Path::new("run"), 10_000, "mp4");
        assert!(a < b);
        assert_eq!(b, Path::new("run/videos/step-0000010000.mp4"));
    }
}
