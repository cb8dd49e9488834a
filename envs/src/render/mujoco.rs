//! MuJoCo's own renderer in a software OpenGL context from Mesa's OSMesa: Gymnasium's `OffScreenViewer`
//! and `MujocoRenderer` (gymnasium/envs/mujoco/mujoco_rendering.py, 1.4.0) call for call.
//!
//! * OpenGL: `libOSMesa.so.8` is opened at run time with `RTLD_NOW | RTLD_GLOBAL`, so that MuJoCo's GL
//!   loader finds `OSMesaGetProcAddress` and the GL entry points among the process's global symbols;
//!   `OSMesaCreateContextExt(GL_RGBA, 24, 8, 8)` and `OSMesaMakeCurrent` on a `width x height` buffer,
//!   as `mujoco.osmesa.GLContext`. MuJoCo draws into its own offscreen framebuffer, not that buffer.
//! * MuJoCo: `mjv_makeScene(maxgeom 1000)`, `mjr_makeContext(mjFONTSCALE_150)`, offscreen buffer grown
//!   to at least the image (Gymnasium sets `vis.global.offwidth/offheight` to `max(model's, size)`; we
//!   resize the context's buffer instead, leaving the shared model untouched), `mjr_setBuffer(OFFSCREEN)`.
//! * Camera: free camera; `lookat` = per-axis median of `geom_xpos` and `distance` = `stat.extent` at
//!   the first render, then the environment's `DEFAULT_CAMERA_CONFIG` on top (Gymnasium forces a free
//!   camera when none is named, so `trackbodyid` is set but does not track).
//! * Frame: `mjv_updateScene(mjCAT_ALL)`, `mjr_render` on the `width x height` viewport,
//!   `mjr_readPixels`, rows flipped (OpenGL's origin is the bottom left).

use std::ffi::{CStr, CString, c_int, c_uint, c_void};
use std::sync::{Arc, OnceLock};

use mujoco_rs::mujoco_c as c;
use mujoco_rs::prelude::{MjData, MjModel};

use super::RenderError;

/// `maxgeom` of Gymnasium's `MjvScene(model, max_geom)` (MujocoEnv's default).
const MAX_GEOM: c_int = 1000;
const GL_RGBA: c_uint = 0x1908;
const GL_UNSIGNED_BYTE: c_uint = 0x1401;
/// The library's soname (Debian's libosmesa6); SPIKERL_OSMESA names another file.
const OSMESA_LIB: &str = "libOSMesa.so.8";

/// A camera configuration: Gymnasium's `DEFAULT_CAMERA_CONFIG`, applied after the free-camera defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct CameraConfig {
    pub trackbodyid: Option<c_int>,
    pub distance: Option<f64>,
    pub lookat: Option<[f64; 3]>,
    pub elevation: Option<f64>,
}

/// Gymnasium 1.4.0's `default_camera_config` of each MuJoCo environment with default arguments
/// (`DEFAULT_CAMERA_CONFIG` in `<env>_v4.py` / `<env>_v5.py`; Swimmer and InvertedDoublePendulum-v5
/// pass none).
pub(crate) fn camera_config(env_id: &str) -> CameraConfig {
    let name = env_id.rsplit_once("-v").map_or(env_id, |(name, _)| name);
    let cfg =
        |trackbodyid, distance, lookat, elevation| CameraConfig { trackbodyid, distance, lookat, elevation };
    match name {
        "HalfCheetah" | "Ant" => cfg(None, Some(4.0), None, None),
        "Hopper" => cfg(Some(2), Some(3.0), Some([0.0, 0.0, 1.15]), Some(-20.0)),
        "Walker2d" => cfg(Some(2), Some(4.0), Some([0.0, 0.0, 1.15]), Some(-20.0)),
        "Humanoid" => cfg(Some(1), Some(4.0), Some([0.0, 0.0, 2.0]), Some(-20.0)),
        "InvertedPendulum" => cfg(Some(0), Some(2.04), None, None),
        "InvertedDoublePendulum" if env_id.ends_with("-v4") => {
            cfg(Some(0), Some(4.1225), Some([0.0, 0.0, 0.12250000000000005]), None)
        }
        "Reacher" => cfg(Some(0), None, None, None),
        _ => CameraConfig::default(),
    }
}

type CreateContextExt = unsafe extern "C" fn(c_uint, c_int, c_int, c_int, *mut c_void) -> *mut c_void;
type MakeCurrent = unsafe extern "C" fn(*mut c_void, *mut c_void, c_uint, c_int, c_int) -> u8;
type DestroyContext = unsafe extern "C" fn(*mut c_void);

/// The three OSMesa entry points. The library stays loaded for the process's life (MuJoCo keeps GL
/// function pointers into it).
struct OsMesa {
    create_context_ext: CreateContextExt,
    make_current: MakeCurrent,
    destroy_context: DestroyContext,
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl* call on this
    // thread; it is copied at once.
    let err = unsafe { libc::dlerror() };
    if err.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-null, NUL-terminated (above).
        unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned()
    }
}

fn load_osmesa() -> Result<OsMesa, String> {
    let lib = std::env::var("SPIKERL_OSMESA").unwrap_or_else(|_| OSMESA_LIB.to_owned());
    let name = CString::new(lib.clone()).map_err(|_| format!("SPIKERL_OSMESA={lib:?} holds a NUL byte"))?;
    // SAFETY: `name` is NUL-terminated; loading runs the library's initialisers, which is what
    // loading Mesa is for. GLOBAL: MuJoCo's GL loader looks the GL symbols up among global ones.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        return Err(format!("{lib} could not be loaded: {}", dl_error()));
    }
    let symbol = |sym: &CStr| -> Result<*mut c_void, String> {
        // SAFETY: `handle` is a live handle from dlopen (never closed), `sym` NUL-terminated.
        let p = unsafe { libc::dlsym(handle, sym.as_ptr()) };
        if p.is_null() {
            Err(format!("{lib} has no {}: {}", sym.to_string_lossy(), dl_error()))
        } else {
            Ok(p)
        }
    };
    let (create, make, destroy) =
        (symbol(c"OSMesaCreateContextExt")?, symbol(c"OSMesaMakeCurrent")?, symbol(c"OSMesaDestroyContext")?);
    // SAFETY: non-null symbols of OSMesa's documented C API (GL/osmesa.h), transmuted to their exact
    // signatures (GLenum = c_uint, GLint/GLsizei = c_int, GLboolean = u8, OSMesaContext = pointer).
    unsafe {
        Ok(OsMesa {
            create_context_ext: std::mem::transmute::<*mut c_void, CreateContextExt>(create),
            make_current: std::mem::transmute::<*mut c_void, MakeCurrent>(make),
            destroy_context: std::mem::transmute::<*mut c_void, DestroyContext>(destroy),
        })
    }
}

fn osmesa() -> Result<&'static OsMesa, RenderError> {
    static LIB: OnceLock<Result<OsMesa, String>> = OnceLock::new();
    LIB.get_or_init(load_osmesa).as_ref().map_err(|e| RenderError::OsMesa(e.clone()))
}

/// An OSMesa context with its colour buffer.
struct GlContext {
    lib: &'static OsMesa,
    context: *mut c_void,
    buffer: Vec<u8>,
    width: c_int,
    height: c_int,
}

impl GlContext {
    fn new(width: u32, height: u32) -> Result<GlContext, RenderError> {
        let lib = osmesa()?;
        let (w, h) = (to_int(width)?, to_int(height)?);
        // SAFETY: plain C call; a null share list is allowed. The context is destroyed in Drop.
        let context = unsafe { (lib.create_context_ext)(GL_RGBA, 24, 8, 8, std::ptr::null_mut()) };
        if context.is_null() {
            return Err(RenderError::OsMesa("OSMesaCreateContextExt gave no context".into()));
        }
        let buffer = vec![0u8; width as usize * height as usize * 4];
        let gl = GlContext { lib, context, buffer, width: w, height: h };
        gl.make_current()?;
        Ok(gl)
    }

    /// Makes the context current on this thread (before every use: another renderer may have taken it).
    fn make_current(&self) -> Result<(), RenderError> {
        // SAFETY: `context` is live (destroyed only in Drop); `buffer` holds width x height RGBA bytes
        // and lives as long as the context (same struct, dropped after the context is destroyed).
        let ok = unsafe {
            (self.lib.make_current)(
                self.context,
                self.buffer.as_ptr().cast_mut().cast(),
                GL_UNSIGNED_BYTE,
                self.width,
                self.height,
            )
        };
        if ok == 0 { Err(RenderError::OsMesa("OSMesaMakeCurrent failed".into())) } else { Ok(()) }
    }
}

impl Drop for GlContext {
    fn drop(&mut self) {
        // SAFETY: `context` came from OSMesaCreateContextExt and is destroyed once, here.
        unsafe { (self.lib.destroy_context)(self.context) };
    }
}

fn to_int(v: u32) -> Result<c_int, RenderError> {
    c_int::try_from(v).map_err(|_| RenderError::Gl(format!("image size {v} too large")))
}

/// MuJoCo's scene and GPU context for one model (made at the first render).
struct Visual {
    /// Identity of the model the scene and context were made for (compared, never dereferenced).
    model: *const c::mjModel,
    scene: Box<c::mjvScene>,
    context: Box<c::mjrContext>,
    camera: c::mjvCamera,
    option: c::mjvOption,
    perturb: c::mjvPerturb,
}

/// Gymnasium's `OffScreenViewer` for one environment.
pub(crate) struct MujocoRenderer {
    // Field order: `visual` is freed (in Drop, with the context current) before `gl` is destroyed.
    visual: Option<Visual>,
    gl: GlContext,
    camera_config: CameraConfig,
    viewport: c::mjrRect,
    /// `mjr_readPixels`' output, bottom row first.
    pixels: Vec<u8>,
}

impl MujocoRenderer {
    pub(crate) fn new(width: u32, height: u32, camera_config: CameraConfig) -> Result<Self, RenderError> {
        let gl = GlContext::new(width, height)?;
        let viewport = c::mjrRect { left: 0, bottom: 0, width: gl.width, height: gl.height };
        let pixels = vec![0u8; width as usize * height as usize * 3];
        Ok(MujocoRenderer { visual: None, gl, camera_config, viewport, pixels })
    }

    /// Renders `data`'s state into `rgb` (width x height x 3, top row first).
    pub(crate) fn render(
        &mut self,
        data: &mut MjData<Arc<MjModel>>,
        rgb: &mut [u8],
    ) -> Result<(), RenderError> {
        self.gl.make_current()?;
        let model: *const c::mjModel = data.model().ffi();
        if self.visual.as_ref().is_some_and(|v| v.model != model) {
            return Err(RenderError::Gl("the renderer was made for another model".into()));
        }
        if self.visual.is_none() {
            self.visual = Some(self.make_visual(data)?);
        }
        let Some(v) = self.visual.as_mut() else { return Err(RenderError::Gl("no scene".into())) };
        // OffScreenViewer.render(camera_id=-1).
        v.camera.type_ = c::mjtCamera::mjCAMERA_FREE as c_int;
        v.camera.fixedcamid = -1;
        // SAFETY: the context is current on this thread (above); scene and context were made for this
        // model (checked above); `data` is valid and exclusively borrowed for the call (MuJoCo uses its
        // stack for scratch); `pixels` holds viewport width x height x 3 bytes; depth may be NULL.
        unsafe {
            let d: *mut c::mjData = data.ffi_mut();
            c::mjv_updateScene(
                model,
                d,
                &v.option,
                &v.perturb,
                &mut v.camera,
                c::mjtCatBit::mjCAT_ALL as c_int,
                &mut *v.scene,
            );
            c::mjr_render(self.viewport, &mut *v.scene, &*v.context);
            c::mjr_readPixels(self.pixels.as_mut_ptr(), std::ptr::null_mut(), self.viewport, &*v.context);
        }
        // rgb_img[::-1, :]
        let row = self.viewport.width as usize * 3;
        for (dst, src) in rgb.chunks_exact_mut(row).zip(self.pixels.chunks_exact(row).rev()) {
            dst.copy_from_slice(src);
        }
        Ok(())
    }

    fn make_visual(&self, data: &MjData<Arc<MjModel>>) -> Result<Visual, RenderError> {
        let m = data.model();
        let model: *const c::mjModel = m.ffi();
        // SAFETY: these C structs hold only numbers and pointers, for which all-zero is a valid value;
        // the mjv_default*/mjr_default* calls then set MuJoCo's defaults. `model` is a valid compiled
        // model; the GL context is current (render made it so) for mjr_makeContext/resize/setBuffer;
        // what make* allocates is freed in Drop.
        let mut v = unsafe {
            let mut v = Visual {
                model,
                scene: Box::new_zeroed().assume_init(),
                context: Box::new_zeroed().assume_init(),
                camera: std::mem::zeroed(),
                option: std::mem::zeroed(),
                perturb: std::mem::zeroed(),
            };
            c::mjv_defaultScene(&mut *v.scene);
            c::mjv_makeScene(model, &mut *v.scene, MAX_GEOM);
            c::mjv_defaultCamera(&mut v.camera);
            c::mjv_defaultOption(&mut v.option);
            c::mjv_defaultPerturb(&mut v.perturb);
            c::mjr_defaultContext(&mut *v.context);
            c::mjr_makeContext(model, &mut *v.context, c::mjtFontScale::mjFONTSCALE_150 as c_int);
            let global = &m.ffi().vis.global;
            let (w, h) = (global.offwidth.max(self.gl.width), global.offheight.max(self.gl.height));
            if (w, h) != (v.context.offWidth, v.context.offHeight) {
                c::mjr_resizeOffscreen(w, h, &mut *v.context);
            }
            c::mjr_setBuffer(c::mjtFramebuffer::mjFB_OFFSCREEN as c_int, &mut *v.context);
            v
        };
        if v.context.currentBuffer != c::mjtFramebuffer::mjFB_OFFSCREEN as c_int || v.context.offFBO == 0 {
            // SAFETY: made above with the context current (still is); freed once, here.
            unsafe {
                c::mjr_freeContext(&mut *v.context);
                c::mjv_freeScene(&mut *v.scene);
            }
            return Err(RenderError::Gl("MuJoCo could not create its offscreen framebuffer".into()));
        }
        // OffScreenViewer._init_camera, then MujocoRenderer._set_cam_config.
        v.camera.type_ = c::mjtCamera::mjCAMERA_FREE as c_int;
        v.camera.fixedcamid = -1;
        let xpos = data.geom_xpos();
        for axis in 0..3 {
            v.camera.lookat[axis] = median(xpos.iter().map(|p| p[axis]).collect());
        }
        v.camera.distance = m.ffi().stat.extent;
        let cfg = self.camera_config;
        if let Some(id) = cfg.trackbodyid {
            v.camera.trackbodyid = id;
        }
        if let Some(d) = cfg.distance {
            v.camera.distance = d;
        }
        if let Some(l) = cfg.lookat {
            v.camera.lookat = l;
        }
        if let Some(e) = cfg.elevation {
            v.camera.elevation = e;
        }
        Ok(v)
    }
}

impl Drop for MujocoRenderer {
    fn drop(&mut self) {
        if let Some(mut v) = self.visual.take() {
            // The GPU objects belong to this context; without it current they cannot be freed (leaked).
            if self.gl.make_current().is_ok() {
                // SAFETY: context current; context and scene were made by make_visual, freed once here.
                unsafe {
                    c::mjr_freeContext(&mut *v.context);
                    c::mjv_freeScene(&mut *v.scene);
                }
            }
        }
    }
}

/// `np.median`: the middle value, or the mean of the two middle values (NaN if any is NaN).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() || v.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_as_numpy() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![1.0, f64::NAN]).is_nan());
    }

    #[test]
    fn camera_configs_follow_gymnasium() {
        assert_eq!(camera_config("HalfCheetah-v5").distance, Some(4.0));
        assert_eq!(camera_config("Hopper-v4").lookat, Some([0.0, 0.0, 1.15]));
        assert_eq!(camera_config("InvertedDoublePendulum-v4").trackbodyid, Some(0));
        assert_eq!(camera_config("InvertedDoublePendulum-v5"), CameraConfig::default());
        assert_eq!(camera_config("Swimmer-v4"), CameraConfig::default());
    }
}
