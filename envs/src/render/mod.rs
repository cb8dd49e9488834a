//! Videos of policies: Gymnasium's `render_mode="rgb_array"` frames and GIF/MP4 files of episodes.
//!
//! * [`Renderer`] draws an environment's current state as Gymnasium 1.4.0's `env.render()` does:
//!   MuJoCo tasks with MuJoCo's own renderer (`mjv_updateScene`, `mjr_render`, `mjr_readPixels`) in a
//!   software OpenGL context from Mesa's OSMesa (`libOSMesa.so.8`, Debian's `libosmesa6`, loaded at run
//!   time), 480x480, with Gymnasium's free camera and each environment's `DEFAULT_CAMERA_CONFIG`
//!   (module `mujoco`); Pendulum-v1 (500x500) and MountainCarContinuous-v0 (600x400) in plain Rust with
//!   the geometry and colours of Gymnasium's pygame code (module `classic`).
//! * [`VideoWriter`] encodes frames: GIF in Rust (module `encode`), MP4 (H.264, yuv420p) through an
//!   `ffmpeg` child process. The frame rate is Gymnasium's `metadata["render_fps"]` ([`render_fps`]).
//! * [`record_episode`] / [`record_episodes`] run deterministic evaluation episodes (the same loop and
//!   seeding as [`crate::evaluate_episodes`]) and write the video; `spikerl eval --video` and the
//!   trainer's periodic videos use them.
//!
//! A frame is taken after every reset and after every step, as Gymnasium's `RecordVideo` does: an
//! episode of `n` steps gives `n + 1` frames. As in Gymnasium, the MuJoCo camera's `lookat` (where the
//! environment's camera configuration does not set it) is the median geom position of the first
//! rendered state, and stays for the renderer's life.
//!
//! docs/video.md has the details (backend, camera matching, formats, environment variables, limits).

use std::path::{Path, PathBuf};

use mujoco_rs::prelude::{MjData, MjModel};
use std::sync::Arc;

use crate::{Env, EnvError, Episode};

mod classic;
mod encode;
mod mujoco;

pub use encode::{VideoFormat, ffmpeg_available, gif_frame_step};

/// Errors of rendering and encoding. Missing system pieces (libOSMesa, ffmpeg) are errors, never
/// panics.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// `libOSMesa.so.8` could not be loaded or gave no context.
    #[error(
        "MuJoCo renders videos off screen through Mesa's OSMesa, and {0}; install Debian's libosmesa6 \
         (apt-get install libosmesa6) or point SPIKERL_OSMESA at a libOSMesa.so"
    )]
    OsMesa(String),
    /// MuJoCo's renderer failed (e.g. no offscreen framebuffer).
    #[error("MuJoCo rendering: {0}")]
    Gl(String),
    /// `ffmpeg` is missing or failed while writing an MP4.
    #[error("{0}")]
    Ffmpeg(String),
    /// The path's extension names no format we write.
    #[error("{}: a video must end in .gif, .mp4 or .png (a frame strip)", .0.display())]
    UnsupportedFormat(PathBuf),
    /// The environment cannot be drawn.
    #[error("{0}: no renderer for this environment")]
    Unsupported(String),
    /// The environment failed (unknown id, bad action length, ...).
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Writing the file failed.
    #[error("writing {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// What [`Renderer`] reads from an environment: handed out by [`Env::scene`]. Opaque outside this
/// crate; the environments of this crate all give one.
pub struct Scene<'a>(pub(crate) SceneKind<'a>);

pub(crate) enum SceneKind<'a> {
    /// MuJoCo: `mjv_updateScene` needs the data mutably (it uses the data's stack for scratch).
    Mujoco(&'a mut MjData<Arc<MjModel>>),
    /// Pendulum-v1: the angle and the last (clipped) torque, `None` after a reset (no arrow).
    Pendulum { theta: f64, last_torque: Option<f32> },
    /// MountainCarContinuous-v0: the car's position.
    MountainCar { position: f64 },
}

/// Image size for the MuJoCo environments (Gymnasium's `width`/`height` arguments, 480 by default).
/// Classic control has fixed sizes (Pendulum 500x500, MountainCar 600x400), as in Gymnasium.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    pub width: u32,
    pub height: u32,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { width: 480, height: 480 }
    }
}

/// An RGB image, rows top to bottom, 3 bytes per pixel (Gymnasium's `rgb_array`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// Gymnasium's `metadata["render_fps"]` for `env_id`: `round(1 / dt)` for the MuJoCo tasks (Gymnasium
/// asserts it), 30 for Pendulum-v1 and MountainCarContinuous-v0.
pub fn render_fps(env_id: &str) -> Result<u32, EnvError> {
    let spec = crate::spec(env_id)?;
    Ok(match env_id {
        "Pendulum-v1" | "MountainCarContinuous-v0" => 30,
        _ => (1.0 / spec.dt).round() as u32,
    })
}

/// Draws one environment's states. Not `Send`: its OpenGL context belongs to the thread that made it
/// current, so a renderer stays on the thread that created it.
pub struct Renderer {
    backend: Backend,
    env_id: String,
    frame: Frame,
}

enum Backend {
    Mujoco(Box<mujoco::MujocoRenderer>),
    Pendulum,
    MountainCar,
}

impl Renderer {
    /// A renderer for `env_id`. For a MuJoCo task this loads libOSMesa and creates the OpenGL context
    /// now, so a missing library is reported before any episode runs.
    pub fn new(env_id: &str, opts: RenderOptions) -> Result<Renderer, RenderError> {
        crate::spec(env_id)?;
        let (backend, width, height) = match env_id {
            "Pendulum-v1" => (Backend::Pendulum, classic::PENDULUM_SIZE, classic::PENDULUM_SIZE),
            "MountainCarContinuous-v0" => {
                (Backend::MountainCar, classic::MOUNTAIN_CAR_WIDTH, classic::MOUNTAIN_CAR_HEIGHT)
            }
            _ => {
                if opts.width == 0 || opts.height == 0 {
                    return Err(RenderError::Gl(format!("image size {}x{}", opts.width, opts.height)));
                }
                let camera = mujoco::camera_config(env_id);
                let r = mujoco::MujocoRenderer::new(opts.width, opts.height, camera)?;
                (Backend::Mujoco(Box::new(r)), opts.width, opts.height)
            }
        };
        let rgb = vec![0; width as usize * height as usize * 3];
        Ok(Renderer { backend, env_id: env_id.to_owned(), frame: Frame { width, height, rgb } })
    }

    /// Width and height of the frames.
    pub fn size(&self) -> (u32, u32) {
        (self.frame.width, self.frame.height)
    }

    /// Draws `env`'s current state (an env of the id this renderer was made for).
    pub fn render(&mut self, env: &mut dyn Env) -> Result<&Frame, RenderError> {
        if env.spec().id != self.env_id {
            return Err(RenderError::Unsupported(format!(
                "{} (this renderer draws {})",
                env.spec().id,
                self.env_id
            )));
        }
        let id = env.spec().id.clone();
        let Some(Scene(scene)) = env.scene() else { return Err(RenderError::Unsupported(id)) };
        let frame = &mut self.frame;
        match (&mut self.backend, scene) {
            (Backend::Mujoco(r), SceneKind::Mujoco(data)) => r.render(data, &mut frame.rgb)?,
            (Backend::Pendulum, SceneKind::Pendulum { theta, last_torque }) => {
                classic::draw_pendulum(theta, last_torque, &mut frame.rgb)
            }
            (Backend::MountainCar, SceneKind::MountainCar { position }) => {
                classic::draw_mountain_car(position, &mut frame.rgb)
            }
            _ => return Err(RenderError::Unsupported(id)),
        }
        Ok(&self.frame)
    }
}

/// How [`record_episodes`] writes its video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VideoOptions {
    /// Image size of the MuJoCo tasks (480x480 by default, as Gymnasium).
    pub render: RenderOptions,
}

/// What a written video holds.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoSummary {
    pub path: PathBuf,
    pub format: VideoFormat,
    /// Frames rendered (reset + steps of every recorded episode).
    pub frames: u64,
    /// Frames in the file: `frames` for MP4; for GIF every [`gif_frame_step`]-th frame.
    pub frames_written: u64,
    pub width: u32,
    pub height: u32,
    /// Frames per second of the rendered frames (Gymnasium's `render_fps`).
    pub fps: u32,
    /// Episodes in the video.
    pub episodes: usize,
    /// Seconds spent rendering and encoding (wall clock, the policy and physics excluded).
    pub render_seconds: f64,
    pub encode_seconds: f64,
}

/// Renders an environment's frames into a GIF or MP4 file as they come.
pub struct VideoWriter {
    renderer: Renderer,
    encoder: encode::Encoder,
    path: PathBuf,
    fps: u32,
    frames: u64,
    render_seconds: f64,
    encode_seconds: f64,
}

impl VideoWriter {
    /// Creates `path` (format from its extension, [`VideoFormat::from_path`]) for frames of `env_id`.
    pub fn create(env_id: &str, path: &Path, opts: VideoOptions) -> Result<VideoWriter, RenderError> {
        let format = VideoFormat::from_path(path)?;
        let fps = render_fps(env_id)?;
        let renderer = Renderer::new(env_id, opts.render)?;
        let (width, height) = renderer.size();
        let encoder = encode::Encoder::create(format, path, width, height, fps)?;
        Ok(VideoWriter {
            renderer,
            encoder,
            path: path.to_owned(),
            fps,
            frames: 0,
            render_seconds: 0.0,
            encode_seconds: 0.0,
        })
    }

    /// Renders `env`'s current state and appends it.
    pub fn capture(&mut self, env: &mut dyn Env) -> Result<(), RenderError> {
        let t0 = std::time::Instant::now();
        let frame = self.renderer.render(env)?;
        let t1 = std::time::Instant::now();
        self.encoder.push(frame)?;
        self.render_seconds += (t1 - t0).as_secs_f64();
        self.encode_seconds += t1.elapsed().as_secs_f64();
        self.frames += 1;
        Ok(())
    }

    /// Appends an already rendered frame (the size this writer's renderer makes).
    pub fn push(&mut self, frame: &Frame) -> Result<(), RenderError> {
        let t = std::time::Instant::now();
        self.encoder.push(frame)?;
        self.encode_seconds += t.elapsed().as_secs_f64();
        self.frames += 1;
        Ok(())
    }

    /// The renderer (to render frames without appending them).
    pub fn renderer(&mut self) -> &mut Renderer {
        &mut self.renderer
    }

    /// Finishes the file (GIF trailer; MP4: closes ffmpeg's input and waits for it).
    pub fn finish(self, episodes: usize) -> Result<VideoSummary, RenderError> {
        let (width, height) = self.renderer.size();
        let format = self.encoder.format();
        let t = std::time::Instant::now();
        let frames_written = self.encoder.finish()?;
        Ok(VideoSummary {
            path: self.path,
            format,
            frames: self.frames,
            frames_written,
            width,
            height,
            fps: self.fps,
            episodes,
            render_seconds: self.render_seconds,
            encode_seconds: self.encode_seconds + t.elapsed().as_secs_f64(),
        })
    }
}

/// Deterministic evaluation episodes of `env_id`, recording the first `video_episodes` of them into
/// `path` (`.gif` or `.mp4`).
///
/// The episodes are exactly [`crate::evaluate_episodes`]'s: a fresh time-limited env, the first reset
/// seeded with `seed`, later ones continuing its stream; `policy` writes the action for an observation
/// into its second argument (zeroed before each call). Returns every episode's return and length and
/// what the video holds. Nothing is written when rendering cannot start (no libOSMesa for a MuJoCo
/// task, no ffmpeg for `.mp4`): the error comes back before the first step.
pub fn record_episodes(
    env_id: &str,
    episodes: usize,
    seed: u64,
    video_episodes: usize,
    policy: impl FnMut(&[f64], &mut [f32]),
    path: &Path,
    opts: VideoOptions,
) -> Result<(Vec<Episode>, VideoSummary), RenderError> {
    let mut writer = VideoWriter::create(env_id, path, opts)?;
    let out = crate::evaluate_episodes_observed(env_id, episodes, seed, policy, |episode, env| {
        match episode < video_episodes {
            true => writer.capture(env),
            false => Ok(()),
        }
    })?;
    let summary = writer.finish(video_episodes.min(episodes))?;
    Ok((out, summary))
}

/// One recorded evaluation episode: the API for periodic videos during training.
///
/// Runs one deterministic episode of `env_id` (reset seeded with `seed`, Gymnasium's time limit) with
/// `policy` (observation in, action written into the second argument, which arrives zeroed) and writes
/// it to `path`, a `.gif` (always available) or `.mp4` (needs `ffmpeg` on PATH). MuJoCo tasks need
/// `libOSMesa.so.8` (Debian's libosmesa6); without it this returns [`RenderError::OsMesa`] before
/// stepping. Create the parent folder first. The renderer lives on the calling thread for the call.
///
/// ```no_run
/// use spikerl_envs::render::{VideoOptions, record_episode};
/// let summary = record_episode("Pendulum-v1", 7, |_obs, action| action[0] = 0.5,
///     std::path::Path::new("videos/step_1000.gif"), VideoOptions::default())?;
/// println!("{} frames, return {}", summary.0.frames, summary.1.ret);
/// # Ok::<(), spikerl_envs::render::RenderError>(())
/// ```
pub fn record_episode(
    env_id: &str,
    seed: u64,
    policy: impl FnMut(&[f64], &mut [f32]),
    path: &Path,
    opts: VideoOptions,
) -> Result<(VideoSummary, Episode), RenderError> {
    let (episodes, summary) = record_episodes(env_id, 1, seed, 1, policy, path, opts)?;
    let episode = episodes.first().copied().ok_or_else(|| RenderError::Gl("no episode ran".into()))?;
    Ok((summary, episode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fps_is_gymnasiums() {
        let fps: Vec<u32> =
            ["HalfCheetah-v4", "Hopper-v5", "Humanoid-v4", "InvertedPendulum-v4", "Reacher-v5"]
                .iter()
                .map(|id| render_fps(id).unwrap())
                .collect();
        assert_eq!(fps, [20, 125, 67, 25, 50]);
        assert_eq!(render_fps("Pendulum-v1").unwrap(), 30);
        assert_eq!(render_fps("MountainCarContinuous-v0").unwrap(), 30);
    }

    #[test]
    fn classic_frames_without_system_libraries() {
        let dir = std::env::temp_dir().join(format!("spikerl-envs-video-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pendulum.gif");
        let (summary, episode) =
            record_episode("Pendulum-v1", 3, |_, a| a[0] = 1.0, &path, VideoOptions::default()).unwrap();
        assert_eq!(episode.length, 200);
        assert_eq!((summary.frames, summary.frames_written), (201, 201));
        assert_eq!((summary.width, summary.height, summary.fps), (500, 500, 30));
        let evaluated = crate::evaluate_episodes("Pendulum-v1", 1, 3, |_, a| a[0] = 1.0).unwrap();
        assert_eq!(evaluated[0], episode, "the same episode as evaluate_episodes");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
