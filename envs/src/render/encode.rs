//! Video files from RGB frames: GIF in Rust (the `gif` crate), MP4 (H.264, yuv420p) through `ffmpeg`.
//!
//! GIF: one global 256-colour palette, learnt by NeuQuant from the first frame, and a 32 x 32 x 32
//! lookup table from 15-bit colour to palette index, so that a frame costs one table look-up per pixel
//! (colours that first appear later map to their nearest palette entry). GIF delays are whole
//! hundredths of a second and players slow down delays under 2, so above 50 frames per second every
//! [`gif_frame_step`]-th frame is written (Hopper and Walker2d: 125 fps, every 3rd frame, 2 cs each).
//!
//! PNG: a frame strip, for documents and papers: [`STRIP_FRAMES`] frames a tenth of a second of simulated
//! time apart (every `fps / 10`-th frame, from the reset frame on: a gait cycle, before a fast runner leaves
//! Gymnasium's fixed camera), each halved in size, side by side.
//!
//! MP4: raw RGB frames piped to an `ffmpeg` child (`-c:v libx264 -pix_fmt yuv420p -crf 23`), which
//! encodes while the episode runs. `SPIKERL_FFMPEG` names another ffmpeg binary.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use super::{Frame, RenderError};

/// A video file format, from the file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoFormat {
    Gif,
    Mp4,
    /// A still strip of frames (`.png`).
    Strip,
}

impl VideoFormat {
    /// `.gif`, `.mp4` or `.png` (a frame strip), any case; anything else is [`RenderError::UnsupportedFormat`].
    pub fn from_path(path: &Path) -> Result<VideoFormat, RenderError> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("gif") => Ok(VideoFormat::Gif),
            Some("mp4") => Ok(VideoFormat::Mp4),
            Some("png") => Ok(VideoFormat::Strip),
            _ => Err(RenderError::UnsupportedFormat(path.to_owned())),
        }
    }
}

/// A GIF keeps every `gif_frame_step(fps)`-th frame: `ceil(fps / 50)`, so that each lasts at least
/// 2 hundredths of a second.
pub fn gif_frame_step(fps: u32) -> u32 {
    fps.div_ceil(50).max(1)
}

pub(crate) enum Encoder {
    Gif(Box<GifEncoder>),
    Mp4(Mp4Encoder),
    Strip(StripEncoder),
}

impl Encoder {
    pub(crate) fn create(
        format: VideoFormat,
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<Encoder, RenderError> {
        Ok(match format {
            VideoFormat::Gif => Encoder::Gif(Box::new(GifEncoder::create(path, width, height, fps)?)),
            VideoFormat::Mp4 => Encoder::Mp4(Mp4Encoder::spawn(path, width, height, fps)?),
            VideoFormat::Strip => Encoder::Strip(StripEncoder::new(path, fps)),
        })
    }

    pub(crate) fn format(&self) -> VideoFormat {
        match self {
            Encoder::Gif(_) => VideoFormat::Gif,
            Encoder::Mp4(_) => VideoFormat::Mp4,
            Encoder::Strip(_) => VideoFormat::Strip,
        }
    }

    pub(crate) fn push(&mut self, frame: &Frame) -> Result<(), RenderError> {
        match self {
            Encoder::Gif(g) => g.push(frame),
            Encoder::Mp4(m) => m.push(frame),
            Encoder::Strip(s) => {
                s.push(frame);
                Ok(())
            }
        }
    }

    /// Completes the file; returns the frames it holds.
    pub(crate) fn finish(self) -> Result<u64, RenderError> {
        match self {
            Encoder::Gif(g) => g.finish(),
            Encoder::Mp4(m) => m.finish(),
            Encoder::Strip(s) => s.finish(),
        }
    }
}

/// Frames in a strip.
pub const STRIP_FRAMES: usize = 8;
/// White pixels between two frames of a strip.
const STRIP_GAP: usize = 4;

/// Keeps every `fps / 10`-th frame, halved, up to [`STRIP_FRAMES`]; writes them side by side at the end.
pub(crate) struct StripEncoder {
    path: PathBuf,
    stride: u64,
    seen: u64,
    kept: Vec<Frame>,
}

impl StripEncoder {
    fn new(path: &Path, fps: u32) -> StripEncoder {
        StripEncoder { path: path.to_owned(), stride: u64::from(fps / 10).max(1), seen: 0, kept: Vec::new() }
    }

    fn push(&mut self, frame: &Frame) {
        if self.seen.is_multiple_of(self.stride) && self.kept.len() < STRIP_FRAMES {
            self.kept.push(halve(frame));
        }
        self.seen += 1;
    }

    fn finish(self) -> Result<u64, RenderError> {
        let Some(first) = self.kept.first() else {
            return Err(RenderError::Io {
                path: self.path,
                source: std::io::Error::other("no frame to draw"),
            });
        };
        let (w, h) = (first.width as usize, first.height as usize);
        let n = self.kept.len();
        let width = n * w + (n - 1) * STRIP_GAP;
        let mut rgb = vec![255u8; width * h * 3];
        for (i, f) in self.kept.iter().enumerate() {
            let x0 = i * (w + STRIP_GAP);
            for y in 0..h {
                let dst = (y * width + x0) * 3;
                rgb[dst..dst + w * 3].copy_from_slice(&f.rgb[y * w * 3..(y + 1) * w * 3]);
            }
        }
        let file = File::create(&self.path).map_err(io_error(&self.path))?;
        let mut encoder = png::Encoder::new(BufWriter::new(file), width as u32, h as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let png_error = |e: png::EncodingError| RenderError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e.to_string()),
        };
        let mut writer = encoder.write_header().map_err(png_error)?;
        writer.write_image_data(&rgb).map_err(png_error)?;
        writer.finish().map_err(png_error)?;
        Ok(n as u64)
    }
}

/// The frame at half its width and height, each pixel the mean of a 2 x 2 block.
fn halve(f: &Frame) -> Frame {
    let (w, h) = (f.width as usize / 2, f.height as usize / 2);
    let src_w = f.width as usize;
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let at = |dy: usize, dx: usize| u16::from(f.rgb[((2 * y + dy) * src_w + 2 * x + dx) * 3 + c]);
                rgb.push(((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1) + 2) / 4) as u8);
            }
        }
    }
    Frame { width: w as u32, height: h as u32, rgb }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> RenderError + '_ {
    move |source| RenderError::Io { path: path.to_owned(), source }
}

fn gif_error(path: &Path, e: gif::EncodingError) -> RenderError {
    match e {
        gif::EncodingError::Io(source) => RenderError::Io { path: path.to_owned(), source },
        other => RenderError::Io { path: path.to_owned(), source: std::io::Error::other(other.to_string()) },
    }
}

/// Palette and 15-bit lookup table, learnt from one frame.
struct Quantizer {
    palette: Vec<u8>,
    lut: Vec<u8>,
}

impl Quantizer {
    /// NeuQuant sampling factor: 1 (best) to 30 (fastest); 10 is the usual trade-off.
    const SAMPLE_FACTOR: i32 = 10;

    fn learn(rgb: &[u8]) -> Quantizer {
        let rgba: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
        let nq = color_quant::NeuQuant::new(Self::SAMPLE_FACTOR, 256, &rgba);
        let palette = nq.color_map_rgb();
        let mut lut = vec![0u8; 1 << 15];
        for (key, slot) in lut.iter_mut().enumerate() {
            // The centre of the 8 x 8 x 8 colour cell.
            let channel = |shift: usize| (((key >> shift) & 31) << 3 | 4) as u8;
            *slot = nq.index_of(&[channel(10), channel(5), channel(0), 255]) as u8;
        }
        Quantizer { palette, lut }
    }

    fn index(&self, rgb: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend(rgb.chunks_exact(3).map(|p| {
            let key = (usize::from(p[0]) >> 3) << 10 | (usize::from(p[1]) >> 3) << 5 | usize::from(p[2]) >> 3;
            self.lut[key]
        }));
    }
}

pub(crate) struct GifEncoder {
    path: PathBuf,
    width: u16,
    height: u16,
    /// Until the first frame: the file, waiting for the palette.
    file: Option<BufWriter<File>>,
    encoder: Option<(gif::Encoder<BufWriter<File>>, Quantizer)>,
    step: u64,
    delay: u16,
    seen: u64,
    written: u64,
    indices: Vec<u8>,
}

impl GifEncoder {
    fn create(path: &Path, width: u32, height: u32, fps: u32) -> Result<GifEncoder, RenderError> {
        let too_large = |_| RenderError::Gl(format!("{width}x{height} is too large for a GIF"));
        let (w, h) = (u16::try_from(width).map_err(too_large)?, u16::try_from(height).map_err(too_large)?);
        let file = File::create(path).map_err(io_error(path))?;
        let step = gif_frame_step(fps);
        let delay = (100.0 * f64::from(step) / f64::from(fps.max(1))).round().max(2.0) as u16;
        Ok(GifEncoder {
            path: path.to_owned(),
            width: w,
            height: h,
            file: Some(BufWriter::new(file)),
            encoder: None,
            step: u64::from(step),
            delay,
            seen: 0,
            written: 0,
            indices: Vec::new(),
        })
    }

    fn start(&mut self, quantizer: Quantizer) -> Result<(), RenderError> {
        let Some(file) = self.file.take() else { return Ok(()) };
        let mut enc = gif::Encoder::new(file, self.width, self.height, &quantizer.palette)
            .map_err(|e| gif_error(&self.path, e))?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(|e| gif_error(&self.path, e))?;
        self.encoder = Some((enc, quantizer));
        Ok(())
    }

    fn push(&mut self, frame: &Frame) -> Result<(), RenderError> {
        let keep = self.seen.is_multiple_of(self.step);
        self.seen += 1;
        if !keep {
            return Ok(());
        }
        if self.encoder.is_none() {
            self.start(Quantizer::learn(&frame.rgb))?;
        }
        let Some((enc, quantizer)) = self.encoder.as_mut() else { return Ok(()) };
        quantizer.index(&frame.rgb, &mut self.indices);
        let gif_frame = gif::Frame {
            width: self.width,
            height: self.height,
            delay: self.delay,
            buffer: Cow::Borrowed(&self.indices),
            ..gif::Frame::default()
        };
        enc.write_frame(&gif_frame).map_err(|e| gif_error(&self.path, e))?;
        self.written += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<u64, RenderError> {
        if self.encoder.is_none() {
            // No frame: a valid GIF with a one-colour palette and no image.
            self.start(Quantizer { palette: vec![255; 3], lut: Vec::new() })?;
        }
        if let Some((enc, _)) = self.encoder.take() {
            let mut file = enc.into_inner().map_err(io_error(&self.path))?;
            file.flush().map_err(io_error(&self.path))?;
        }
        Ok(self.written)
    }
}

pub(crate) struct Mp4Encoder {
    path: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    /// ffmpeg's error output, read on a thread so that it can never block ffmpeg.
    stderr: Option<std::thread::JoinHandle<String>>,
    frames: u64,
}

/// The ffmpeg that encodes MP4s: `SPIKERL_FFMPEG`, else `ffmpeg` on PATH.
fn ffmpeg_program() -> String {
    std::env::var("SPIKERL_FFMPEG").unwrap_or_else(|_| "ffmpeg".to_owned())
}

/// Whether an MP4 can be encoded here: the ffmpeg [`Mp4Encoder`] would start exists (a path, or a name
/// found on PATH).
pub fn ffmpeg_available() -> bool {
    let program = PathBuf::from(ffmpeg_program());
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(&program).is_file()))
}

impl Mp4Encoder {
    fn spawn(path: &Path, width: u32, height: u32, fps: u32) -> Result<Mp4Encoder, RenderError> {
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(RenderError::Ffmpeg(format!("MP4 (yuv420p) needs even sizes, not {width}x{height}")));
        }
        let program = ffmpeg_program();
        let mut child = Command::new(&program)
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"])
            .args(["-s", &format!("{width}x{height}"), "-r", &fps.to_string(), "-i", "-"])
            .args(["-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"])
            .args(["-movflags", "+faststart"])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                RenderError::Ffmpeg(if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "{program} not found on PATH: MP4 videos are encoded by ffmpeg (Debian's ffmpeg \
                         package); install it or write a .gif"
                    )
                } else {
                    format!("starting {program}: {e}")
                })
            })?;
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut text = String::new();
                // A read error only loses the diagnostic text.
                let _ = err.read_to_string(&mut text);
                text
            })
        });
        Ok(Mp4Encoder { path: path.to_owned(), child, stdin, stderr, frames: 0 })
    }

    fn push(&mut self, frame: &Frame) -> Result<(), RenderError> {
        let Some(stdin) = self.stdin.as_mut() else { return Err(self.failed("input closed")) };
        if let Err(e) = stdin.write_all(&frame.rgb) {
            self.stdin = None;
            let _ = self.child.wait();
            return Err(self.failed(&format!("writing a frame: {e}")));
        }
        self.frames += 1;
        Ok(())
    }

    fn failed(&mut self, what: &str) -> RenderError {
        let detail = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        RenderError::Ffmpeg(format!("ffmpeg writing {}: {what}: {}", self.path.display(), detail.trim()))
    }

    fn finish(mut self) -> Result<u64, RenderError> {
        drop(self.stdin.take());
        let status =
            self.child.wait().map_err(|e| RenderError::Ffmpeg(format!("waiting for ffmpeg: {e}")))?;
        if !status.success() {
            return Err(self.failed(&format!("exited with {status}")));
        }
        Ok(self.frames)
    }
}

impl Drop for Mp4Encoder {
    fn drop(&mut self) {
        // An abandoned encoder (error elsewhere): close ffmpeg's input and reap it.
        if self.stdin.take().is_some() {
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_keeps_frames_half_a_second_apart_halved() {
        let dir = std::env::temp_dir().join(format!("spikerl-strip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("strip.png");
        let mut strip = StripEncoder::new(&path, 100);
        for i in 0..200u8 {
            strip.push(&Frame { width: 4, height: 2, rgb: vec![i; 4 * 2 * 3] });
        }
        assert_eq!(strip.finish().unwrap(), STRIP_FRAMES as u64);
        let decoder = png::Decoder::new(std::io::BufReader::new(File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(
            (info.width, info.height),
            ((2 * STRIP_FRAMES + STRIP_GAP * (STRIP_FRAMES - 1)) as u32, 1)
        );
        // Frame k of the strip is frame 10 k of the episode; gaps are white.
        for k in 0..STRIP_FRAMES {
            let x = k * (2 + STRIP_GAP);
            assert_eq!(buf[x * 3], (10 * k) as u8);
        }
        assert_eq!(buf[2 * 3], 255);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(VideoFormat::from_path(Path::new("a/b.gif")).ok(), Some(VideoFormat::Gif));
        assert_eq!(VideoFormat::from_path(Path::new("b.MP4")).ok(), Some(VideoFormat::Mp4));
        assert_eq!(VideoFormat::from_path(Path::new("s.png")).ok(), Some(VideoFormat::Strip));
        for bad in ["b.avi", "b", "gif", "b.gif.tmp"] {
            let err = VideoFormat::from_path(Path::new(bad)).err().map(|e| e.to_string());
            assert!(err.is_some_and(|e| e.contains(".gif, .mp4 or .png")), "{bad}");
        }
    }

    #[test]
    fn gif_keeps_at_most_50_frames_per_second() {
        assert_eq!([20, 25, 30, 50, 67, 125].map(gif_frame_step), [1, 1, 1, 1, 2, 3]);
    }

    #[test]
    fn gif_of_two_colours_round_trips() {
        let dir = std::env::temp_dir().join(format!("spikerl-envs-gif-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("two.gif");
        let mut enc = GifEncoder::create(&path, 4, 2, 20).unwrap();
        let mut rgb = vec![255u8; 4 * 2 * 3];
        rgb[..12].fill(0);
        enc.push(&Frame { width: 4, height: 2, rgb: rgb.clone() }).unwrap();
        enc.push(&Frame { width: 4, height: 2, rgb }).unwrap();
        assert_eq!(enc.finish().unwrap(), 2);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"GIF89a") && bytes.ends_with(&[0x3b]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
