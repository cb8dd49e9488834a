//! Videos: spikerl's rendered frames against Gymnasium's (`envs/tests/fixtures/render/`, recorded by
//! scripts/gen_render_fixtures.py), and `spikerl eval --video` writing GIF and MP4 files that decode to
//! the expected frames.
//!
//! Thresholds, as mean absolute difference per colour channel (0-255) against Gymnasium's frame:
//! MuJoCo (same MuJoCo 3.17.0, both through OSMesa's llvmpipe) [`MUJOCO_MAX_MAD`]; classic control
//! (pygame's antialiasing is approximated, the Pendulum torque arrow is redrawn) [`CLASSIC_MAX_MAD`].
//! Frames of different states must differ by more than [`MIN_STATE_MAD`].

mod common;

use common::*;
use serde_json::Value;
use spikerl_envs::render::{RenderOptions, Renderer};
use spikerl_snn::{NetworkConfig, NeuronKind, PolicyConfig, SnnConfig, encode_policy, initial_tensors};
use std::path::{Path, PathBuf};
use std::process::Command;

const MUJOCO_MAX_MAD: f64 = 0.5;
const CLASSIC_MAX_MAD: f64 = 1.5;
const MIN_STATE_MAD: f64 = 0.3;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("envs/tests/fixtures/render")
}

fn is_classic(id: &str) -> bool {
    matches!(id, "Pendulum-v1" | "MountainCarContinuous-v0")
}

/// An 8-bit RGB PNG as (width, height, rgb).
fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn mad(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| f64::from(x.abs_diff(y))).sum::<f64>() / a.len() as f64
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn frames_match_gymnasium() {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap()).unwrap();
    let osmesa = require(Need::Osmesa);
    let mut report = Vec::new();
    for (id, fixture) in manifest["envs"].as_object().unwrap() {
        if !is_classic(id) && !osmesa {
            continue;
        }
        let mut env = spikerl_envs::make_unwrapped(id).unwrap();
        let mut renderer = Renderer::new(id, RenderOptions::default()).unwrap();
        let mut ours = Vec::new();
        for frame in fixture["frames"].as_array().unwrap() {
            // A frame after a step: the state before it, then the same step (MuJoCo's positions after a
            // step lag one substep behind qpos; Pendulum's arrow shows the last action).
            if let Some(action) = frame.get("action") {
                env.set_state(&floats(&frame["prev_qpos"]), &floats(&frame["prev_qvel"])).unwrap();
                let action: Vec<f32> = floats(action).into_iter().map(|a| a as f32).collect();
                env.step(&action);
            } else {
                env.set_state(&floats(&frame["qpos"]), &floats(&frame["qvel"])).unwrap();
            }
            let file = frame["file"].as_str().unwrap();
            let (w, h, reference) = read_png(&fixtures().join(file));
            let rendered = renderer.render(env.as_mut()).unwrap();
            assert_eq!((rendered.width, rendered.height), (w, h), "{file}");
            let d = mad(&rendered.rgb, &reference);
            report.push(format!("{file}: mean |difference| {d:.3}"));
            let limit = if is_classic(id) { CLASSIC_MAX_MAD } else { MUJOCO_MAX_MAD };
            assert!(d <= limit, "{file}: mean absolute difference {d:.3} > {limit}\n{}", report.join("\n"));
            ours.push(rendered.rgb.clone());
        }
        for (i, a) in ours.iter().enumerate() {
            for b in &ours[i + 1..] {
                let d = mad(a, b);
                report.push(format!("{id}: states differ by {d:.3}"));
                assert!(d > MIN_STATE_MAD, "{id}: two states render alike ({d:.3})");
            }
        }
    }
    println!("{}", report.join("\n"));
}

fn write_policy(path: &Path, obs_dim: usize, max_action: f32) {
    let cfg = PolicyConfig {
        gaussian: None,
        obs_dim,
        act_dim: 1,
        max_action: vec![max_action],
        network: NetworkConfig::Snn(SnnConfig { hidden: vec![64, 32], ..SnnConfig::paper(NeuronKind::Lif) }),
    };
    let tensors = initial_tensors(&cfg, 1).unwrap();
    std::fs::write(path, encode_policy(&cfg, &tensors, 3).unwrap()).unwrap();
}

/// Runs `spikerl eval ... --video path --json`; returns the report.
fn eval_video(policy: &Path, env: &str, episodes: usize, video_episodes: usize, video: &Path) -> Value {
    let out = spikerl()
        .args(["eval", "--policy"])
        .arg(policy)
        .args(["--env", env, "--episodes", &episodes.to_string(), "--video-episodes"])
        .arg(video_episodes.to_string())
        .arg("--video")
        .arg(video)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{env} {}: {}", video.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Frames the video of the first `n` episodes holds: a reset frame and one per step.
fn expected_frames(report: &Value, n: usize) -> u64 {
    report["lengths"].as_array().unwrap().iter().take(n).map(|l| l.as_u64().unwrap() + 1).sum()
}

/// (frames, width, height) of a GIF.
fn gif_frames(path: &Path) -> (u64, u32, u32) {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options.read_info(std::fs::File::open(path).unwrap()).unwrap();
    let (w, h) = (u32::from(decoder.width()), u32::from(decoder.height()));
    let mut frames = 0;
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        assert_eq!((u32::from(frame.width), u32::from(frame.height)), (w, h));
        frames += 1;
    }
    (frames, w, h)
}

/// (frames, width, height) of an MP4, counted by ffprobe.
fn mp4_frames(path: &Path) -> (u64, u32, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames,width,height,pix_fmt,codec_name", "-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    assert_eq!(s["codec_name"], "h264", "{v}");
    assert_eq!(s["pix_fmt"], "yuv420p", "{v}");
    let frames = s["nb_read_frames"].as_str().unwrap().parse().unwrap();
    (frames, s["width"].as_u64().unwrap() as u32, s["height"].as_u64().unwrap() as u32)
}

#[test]
fn eval_writes_gif_and_mp4() {
    let dir = temp_dir("video-eval");
    let pendulum = dir.join("pendulum.safetensors");
    write_policy(&pendulum, 3, 2.0);

    // Pendulum: drawn in Rust, no system library. Two of three episodes recorded.
    let gif = dir.join("pendulum.gif");
    let report = eval_video(&pendulum, "Pendulum-v1", 3, 2, &gif);
    let expected = expected_frames(&report, 2);
    assert_eq!(expected, 2 * 201);
    assert_eq!(report["video"]["frames"].as_u64(), Some(expected), "{report}");
    assert_eq!(gif_frames(&gif), (expected, 500, 500));
    assert_eq!(report["video"]["fps"].as_u64(), Some(30));

    // A still strip: 8 frames (Pendulum: 30 fps, every 3rd frame), halved to 250x250, 4-pixel gaps.
    let strip = dir.join("pendulum-strip.png");
    let report = eval_video(&pendulum, "Pendulum-v1", 1, 1, &strip);
    assert_eq!(report["video"]["frames_written"].as_u64(), Some(8), "{report}");
    let (w, h, rgb) = read_png(&strip);
    assert_eq!((w, h), (8 * 250 + 7 * 4, 250));
    let tile = |k: usize| -> Vec<u8> {
        (0..250).flat_map(|y| rgb[(y * w as usize + k * 254) * 3..][..250 * 3].to_vec()).collect()
    };
    assert!(mad(&tile(0), &tile(7)) > MIN_STATE_MAD, "the pendulum moved between the first and last tile");

    if require(Need::Ffmpeg) {
        let mp4 = dir.join("pendulum.mp4");
        let report = eval_video(&pendulum, "Pendulum-v1", 1, 1, &mp4);
        assert_eq!(mp4_frames(&mp4), (expected_frames(&report, 1), 500, 500));
    }

    if require(Need::Osmesa) {
        let policy = dir.join("inverted.safetensors");
        write_policy(&policy, 4, 3.0);
        let gif = dir.join("inverted.GIF");
        let report = eval_video(&policy, "InvertedPendulum-v4", 2, 5, &gif);
        let expected = expected_frames(&report, 2);
        assert_eq!(report["video"]["episodes"].as_u64(), Some(2), "capped at --episodes: {report}");
        assert_eq!(gif_frames(&gif), (expected, 480, 480));
        if require(Need::Ffmpeg) {
            let mp4 = dir.join("inverted.mp4");
            let report = eval_video(&policy, "InvertedPendulum-v4", 1, 1, &mp4);
            assert_eq!(mp4_frames(&mp4), (expected_frames(&report, 1), 480, 480));
            assert_eq!(report["video"]["fps"].as_u64(), Some(25));
        }
    }
}

#[test]
fn bad_video_arguments_are_usage_errors() {
    let dir = temp_dir("video-bad");
    let policy = dir.join("pendulum.safetensors");
    write_policy(&policy, 3, 2.0);
    for (video, episodes, needle) in [
        ("x.avi", "1", ".gif, .mp4 or .png"),
        ("noext", "1", ".gif, .mp4 or .png"),
        ("x.gif", "0", "--video-episodes"),
    ] {
        let out = spikerl()
            .args(["eval", "--policy"])
            .arg(&policy)
            .args(["--env", "Pendulum-v1", "--episodes", "1", "--video-episodes", episodes, "--video"])
            .arg(dir.join(video))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{video}: {stderr}");
        assert!(stderr.contains(needle), "{video}: {stderr}");
        assert!(!dir.join(video).exists(), "{video} must not be created");
    }
}

/// `train --video-every`: a video of the first evaluation episode at the first evaluation at or after
/// every multiple of N steps, named by step, in lockstep and in a local cluster; a new run in the folder
/// replaces the older run's videos.
#[test]
fn training_records_videos_into_the_run_folder() {
    let dir = temp_dir("video-train");
    let ext = if require(Need::Ffmpeg) { "mp4" } else { "gif" };
    let run = dir.join("sync");
    // Evaluations at 0, 150, 300, 450 and the end (456); videos at 0 and at the first evaluation past
    // each multiple of 200 (300 and 450).
    let train = |run: &Path, extra: &[&str]| {
        let out = spikerl()
            .args(["train", "--env", "Pendulum-v1", "--algo", "proxy", "--neuron", "lif"])
            .args(["--proxy-steps", "1", "--steps", "200", "--random-steps", "256", "--eval-every", "150"])
            .args(["--eval-episodes", "1", "--video-every", "200", "--threads", "1", "--seed", "5"])
            .args(["--no-progress", "--out"])
            .arg(run)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::create_dir_all(run.join("videos")).unwrap();
    std::fs::write(run.join("videos/step-0000099999.gif"), "an older run's").unwrap();
    train(&run, &["--sync"]);
    let mut names: Vec<String> = std::fs::read_dir(run.join("videos"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let want: Vec<String> = [0, 300, 450].iter().map(|s| format!("step-{s:010}.{ext}")).collect();
    assert_eq!(names, want, "the older run's video is gone, one per multiple of 200 steps");
    // Every video is one Pendulum episode: a reset frame and 200 steps.
    for name in &names {
        let path = run.join("videos").join(name);
        let frames = if ext == "mp4" { mp4_frames(&path) } else { gif_frames(&path) };
        assert_eq!(frames, (201, 500, 500), "{name}");
    }
    // Videos of different policies differ.
    let first = std::fs::read(run.join("videos").join(&names[0])).unwrap();
    let last = std::fs::read(run.join("videos").join(&names[2])).unwrap();
    assert_ne!(first, last, "the policy changed between step 0 and 450");

    // A local cluster records the same way (the learner's training thread evaluates).
    let cluster = dir.join("cluster");
    train(&cluster, &["--actors", "1"]);
    let videos: Vec<_> = std::fs::read_dir(cluster.join("videos")).unwrap().collect();
    assert!(!videos.is_empty(), "a local-cluster run with --video-every wrote no video");
    assert!(cluster.join(format!("videos/step-0000000000.{ext}")).is_file());
}
