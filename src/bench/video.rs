//! `spikerl bench video`: what recording one episode costs. The same seeded random-action episode
//! (`--steps` steps of the unwrapped env, stopping early only on termination) is recorded twice, into a
//! GIF and into an MP4, through `spikerl_envs::render::VideoWriter`, the code `eval --video` and the
//! trainer's videos run. Per frame: rendering (MuJoCo through OSMesa, or the classic-control drawing)
//! and encoding (GIF: palette look-up and LZW in this process; MP4: writing into ffmpeg's pipe, plus
//! waiting for it at the end, ffmpeg encoding concurrently on the other cores); and each episode's total
//! wall time including physics.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use spikerl_envs::render::{VideoOptions, VideoWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct VideoRow {
    format: &'static str,
    path: String,
    frames: u64,
    frames_written: u64,
    bytes: u64,
    render_ms_per_frame: f64,
    encode_ms_per_frame: f64,
    /// The whole episode: physics, rendering and encoding, seconds.
    total_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct VideoReport {
    env: String,
    steps: usize,
    width: u32,
    height: u32,
    fps: u32,
    rows: Vec<VideoRow>,
}

const SEED: u64 = 1;

pub fn video(env: &str, steps: usize, out: Option<&Path>) -> anyhow::Result<VideoReport> {
    let (dir, temporary) = match out {
        Some(dir) => (dir.to_owned(), false),
        None => (std::env::temp_dir().join(format!("spikerl-bench-video-{}", std::process::id())), true),
    };
    std::fs::create_dir_all(&dir)?;
    let result = measure(env, steps, &dir);
    if temporary {
        // Best effort: a leftover temporary folder is harmless.
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn measure(env_id: &str, steps: usize, dir: &Path) -> anyhow::Result<VideoReport> {
    let mut rows = Vec::new();
    let mut size = (0, 0, 0);
    for (format, ext) in [("gif", "gif"), ("mp4", "mp4")] {
        let path: PathBuf = dir.join(format!("{env_id}.{ext}"));
        let started = Instant::now();
        let mut writer = VideoWriter::create(env_id, &path, VideoOptions::default())?;
        let mut env = spikerl_envs::make_unwrapped(env_id)?;
        let spec = env.spec().clone();
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        let mut obs = vec![0.0; spec.obs_dim];
        let mut action = vec![0.0f32; spec.act_dim];
        env.reset_into(Some(SEED), &mut obs);
        writer.capture(env.as_mut())?;
        for _ in 0..steps {
            for (a, (lo, hi)) in action.iter_mut().zip(spec.act_low.iter().zip(&spec.act_high)) {
                *a = rng.random_range(*lo..=*hi) as f32;
            }
            let t = env.step_into(&action, &mut obs)?;
            writer.capture(env.as_mut())?;
            if t.terminated {
                break;
            }
        }
        let summary = writer.finish(1)?;
        let total_seconds = started.elapsed().as_secs_f64();
        let frames = summary.frames.max(1) as f64;
        size = (summary.width, summary.height, summary.fps);
        rows.push(VideoRow {
            format,
            path: path.display().to_string(),
            frames: summary.frames,
            frames_written: summary.frames_written,
            bytes: std::fs::metadata(&path)?.len(),
            render_ms_per_frame: summary.render_seconds * 1e3 / frames,
            encode_ms_per_frame: summary.encode_seconds * 1e3 / frames,
            total_seconds,
        });
    }
    Ok(VideoReport { env: env_id.to_owned(), steps, width: size.0, height: size.1, fps: size.2, rows })
}

pub fn print(r: &VideoReport) {
    println!(
        "{}: {} steps, {}x{} at {} fps (one episode per format)",
        r.env, r.steps, r.width, r.height, r.fps
    );
    println!(
        "{:<6} {:>8} {:>8} {:>10} {:>12} {:>12} {:>9}",
        "format", "frames", "written", "bytes", "render ms/f", "encode ms/f", "total s"
    );
    for row in &r.rows {
        println!(
            "{:<6} {:>8} {:>8} {:>10} {:>12.2} {:>12.2} {:>9.1}",
            row.format,
            row.frames,
            row.frames_written,
            row.bytes,
            row.render_ms_per_frame,
            row.encode_ms_per_frame,
            row.total_seconds
        );
    }
}
