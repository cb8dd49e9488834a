//! Pendulum-v1 and MountainCarContinuous-v0 drawn in plain Rust as Gymnasium 1.4.0's pygame code draws
//! them (gymnasium/envs/classic_control/pendulum.py and continuous_mountain_car.py, `render`): the same
//! sizes, geometry, colours and drawing order, on a canvas whose rows are pygame's surface rows (y up
//! in the world), flipped vertically at the end as Gymnasium flips its surface.
//!
//! Shapes are filled by coverage (4 x 4 samples per pixel, a pixel centred on its integer coordinate),
//! which stands in for gfxdraw's filled shape plus its antialiased outline; the curve is a Wu line as
//! `pygame.draw.aalines`. Edge pixels therefore differ slightly from pygame's; interiors match.

use std::f64::consts::PI;

/// Pendulum's `screen_dim`.
pub(crate) const PENDULUM_SIZE: u32 = 500;
/// MountainCar's `screen_width` and `screen_height`.
pub(crate) const MOUNTAIN_CAR_WIDTH: u32 = 600;
pub(crate) const MOUNTAIN_CAR_HEIGHT: u32 = 400;

type Rgb = [u8; 3];
const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [0, 0, 0];
const ROD: Rgb = [204, 77, 77];
const WHEEL: Rgb = [128, 128, 128];
const FLAG: Rgb = [204, 204, 0];
/// Samples per pixel side for coverage.
const SUB: usize = 4;

/// An RGB canvas in pygame surface coordinates (row `y` is pygame's `y`).
struct Canvas<'a> {
    width: usize,
    height: usize,
    rgb: &'a mut [u8],
}

impl Canvas<'_> {
    fn fill(&mut self, color: Rgb) {
        for px in self.rgb.chunks_exact_mut(3) {
            px.copy_from_slice(&color);
        }
    }

    /// Blends `color` over pixel (x, y) with weight `alpha` in [0, 1]; outside the canvas: nothing.
    fn blend(&mut self, x: i64, y: i64, color: Rgb, alpha: f64) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 || alpha <= 0.0 {
            return;
        }
        let at = (y as usize * self.width + x as usize) * 3;
        let a = alpha.min(1.0);
        for (dst, &src) in self.rgb[at..at + 3].iter_mut().zip(&color) {
            *dst = (f64::from(*dst) * (1.0 - a) + f64::from(src) * a).round() as u8;
        }
    }

    /// Fills the shape `inside` within the bounding box (x0, y0)-(x1, y1) by coverage.
    fn fill_shape(&mut self, bbox: [f64; 4], color: Rgb, inside: impl Fn(f64, f64) -> bool) {
        let [x0, y0, x1, y1] = bbox;
        let (xa, xb) = ((x0.floor() as i64 - 1).max(0), (x1.ceil() as i64 + 1).min(self.width as i64 - 1));
        let (ya, yb) = ((y0.floor() as i64 - 1).max(0), (y1.ceil() as i64 + 1).min(self.height as i64 - 1));
        for y in ya..=yb {
            for x in xa..=xb {
                let mut hits = 0;
                for sy in 0..SUB {
                    for sx in 0..SUB {
                        let fx = x as f64 - 0.5 + (sx as f64 + 0.5) / SUB as f64;
                        let fy = y as f64 - 0.5 + (sy as f64 + 0.5) / SUB as f64;
                        hits += usize::from(inside(fx, fy));
                    }
                }
                self.blend(x, y, color, hits as f64 / (SUB * SUB) as f64);
            }
        }
    }

    /// `gfxdraw.aapolygon` + `filled_polygon` (pygame truncates the vertices to integers).
    fn polygon(&mut self, points: &[(f64, f64)], color: Rgb) {
        let pts: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (x.trunc(), y.trunc())).collect();
        let bbox = pts.iter().fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |b, &(x, y)| {
            [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)]
        });
        self.fill_shape(bbox, color, |x, y| point_in_polygon(&pts, x, y));
    }

    /// `gfxdraw.aacircle` + `filled_circle` at integer centre and radius: pixels whose centre is within
    /// `r` are filled, so the disc reaches half a pixel further.
    fn circle(&mut self, cx: i64, cy: i64, r: i64, color: Rgb) {
        let (cx, cy, rr) = (cx as f64, cy as f64, r as f64 + 0.5);
        self.fill_shape([cx - rr, cy - rr, cx + rr, cy + rr], color, |x, y| {
            (x - cx) * (x - cx) + (y - cy) * (y - cy) <= rr * rr
        });
    }

    /// `pygame.draw.aalines` (open): Wu lines through the points.
    fn aalines(&mut self, points: &[(f64, f64)], color: Rgb) {
        for pair in points.windows(2) {
            self.wu_line(pair[0], pair[1], color);
        }
    }

    fn wu_line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), color: Rgb) {
        let steep = (y1 - y0).abs() > (x1 - x0).abs();
        let (mut a, mut b) = if steep { ((y0, x0), (y1, x1)) } else { ((x0, y0), (x1, y1)) };
        if a.0 > b.0 {
            std::mem::swap(&mut a, &mut b);
        }
        let gradient = if b.0 == a.0 { 0.0 } else { (b.1 - a.1) / (b.0 - a.0) };
        let (start, end) = (a.0.round() as i64, b.0.round() as i64);
        for major in start..=end {
            let minor = a.1 + gradient * (major as f64 - a.0);
            let base = minor.floor();
            let frac = minor - base;
            for (m, w) in [(base as i64, 1.0 - frac), (base as i64 + 1, frac)] {
                let (x, y) = if steep { (m, major) } else { (major, m) };
                self.darken(x, y, color, w);
            }
        }
    }

    /// Blends only where it makes the pixel darker (joints of aalines are not drawn twice).
    fn darken(&mut self, x: i64, y: i64, color: Rgb, alpha: f64) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let at = (y as usize * self.width + x as usize) * 3;
        let a = alpha.clamp(0.0, 1.0);
        for (dst, &src) in self.rgb[at..at + 3].iter_mut().zip(&color) {
            let v = (f64::from(*dst) * (1.0 - a) + f64::from(src) * a).round() as u8;
            *dst = (*dst).min(v);
        }
    }

    /// `gfxdraw.vline(x, y1, y2)`: one pixel wide, both ends included.
    fn vline(&mut self, x: i64, y1: i64, y2: i64, color: Rgb) {
        for y in y1.min(y2)..=y1.max(y2) {
            self.blend(x, y, color, 1.0);
        }
    }

    /// `pygame.transform.flip(surf, False, True)`.
    fn flip_vertically(&mut self) {
        let row = self.width * 3;
        for y in 0..self.height / 2 {
            let (top, bottom) = self.rgb.split_at_mut((self.height - 1 - y) * row);
            top[y * row..(y + 1) * row].swap_with_slice(&mut bottom[..row]);
        }
    }
}

fn point_in_polygon(pts: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut j = pts.len() - 1;
    for i in 0..pts.len() {
        let ((xi, yi), (xj, yj)) = (pts[i], pts[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// `pygame.math.Vector2((x, y)).rotate_rad(angle)`.
fn rotate((x, y): (f64, f64), angle: f64) -> (f64, f64) {
    let (s, c) = angle.sin_cos();
    (x * c - y * s, x * s + y * c)
}

/// Pendulum-v1's `render()` into `rgb` (500 x 500 x 3).
pub(crate) fn draw_pendulum(theta: f64, last_torque: Option<f32>, rgb: &mut [u8]) {
    let size = PENDULUM_SIZE as usize;
    let mut canvas = Canvas { width: size, height: size, rgb };
    canvas.fill(WHITE);
    let bound = 2.2;
    let scale = size as f64 / (bound * 2.0);
    let offset = (size / 2) as f64;
    let rod_length = scale;
    let rod_width = 0.2 * scale;
    let (l, r, t, b) = (0.0, rod_length, rod_width / 2.0, -rod_width / 2.0);
    let angle = theta + PI / 2.0;
    let rod: Vec<(f64, f64)> = [(l, b), (l, t), (r, t), (r, b)]
        .into_iter()
        .map(|p| {
            let (x, y) = rotate(p, angle);
            (x + offset, y + offset)
        })
        .collect();
    canvas.polygon(&rod, ROD);
    let radius = (rod_width / 2.0) as i64;
    canvas.circle(offset as i64, offset as i64, radius, ROD);
    let (ex, ey) = rotate((rod_length, 0.0), angle);
    canvas.circle((ex + offset) as i64, (ey + offset) as i64, radius, ROD);
    if let Some(u) = last_torque {
        torque_arrow(&mut canvas, scale, offset, f64::from(u));
    }
    canvas.circle(offset as i64, offset as i64, (0.05 * scale) as i64, BLACK);
    canvas.flip_vertically();
}

/// The torque arrow: Gymnasium blits `assets/clockwise.png` (a black open circle ending in an
/// arrowhead) smooth-scaled to `scale * |u| / 2` pixels square, mirrored for `u > 0`, centred on the
/// pivot. APPROXIMATION: the image is not shipped; its shape is redrawn from measurements of the PNG
/// (an elliptical ring from 5 degrees right of the top clockwise to 7 degrees below the left, and a
/// triangular head pointing up), so the arrow's pixels differ somewhat from Gymnasium's.
fn torque_arrow(canvas: &mut Canvas<'_>, scale: f64, offset: f64, u: f64) {
    let side = (scale * u.abs() / 2.0) as i64;
    if side <= 0 {
        return;
    }
    let x0 = offset as i64 - side / 2;
    let y0 = offset as i64 - side / 2;
    let mirror = u > 0.0;
    let s = side as f64;
    // Image coordinates in [0, 1]^2, y down, as the PNG is drawn (329 x 312 pixels, measured).
    let (cx, cy, rx, ry, half) = (0.5017, 0.5, 0.462, 0.487, 0.025);
    let (start, end) = (-85f64.to_radians(), 173f64.to_radians());
    let head = [(0.065, 0.39), (0.0, 0.55), (0.14, 0.545)];
    let inside = |px: f64, py: f64| -> bool {
        // Canvas -> blitted image (flipped vertically by Gymnasium, and horizontally for u > 0).
        let (ix, iy) = ((px - x0 as f64 + 0.5) / s, (py - y0 as f64 + 0.5) / s);
        let ox = if mirror { 1.0 - ix } else { ix };
        let oy = 1.0 - iy;
        if !(0.0..1.0).contains(&ox) || !(0.0..1.0).contains(&oy) {
            return false;
        }
        let (dx, dy) = ((ox - cx) / rx, (oy - cy) / ry);
        let rho = (dx * dx + dy * dy).sqrt();
        let mean_radius = (rx + ry) / 2.0;
        let on_ring = ((rho - 1.0) * mean_radius).abs() <= half;
        let phi = dy.atan2(dx);
        let phi = if phi < start { phi + 2.0 * PI } else { phi };
        (on_ring && phi <= end) || point_in_polygon(&head, ox, oy)
    };
    let bbox = [x0 as f64, y0 as f64, (x0 + side) as f64, (y0 + side) as f64];
    canvas.fill_shape(bbox, BLACK, inside);
}

/// MountainCarContinuous-v0's `render()` into `rgb` (600 x 400 x 3).
pub(crate) fn draw_mountain_car(position: f64, rgb: &mut [u8]) {
    let (width, height) = (MOUNTAIN_CAR_WIDTH as usize, MOUNTAIN_CAR_HEIGHT as usize);
    let mut canvas = Canvas { width, height, rgb };
    canvas.fill(WHITE);
    let (min_position, max_position, goal_position) = (-1.2, 0.6, 0.45);
    let hill = |x: f64| (3.0 * x).sin() * 0.45 + 0.55;
    let world_width = max_position - min_position;
    let scale = width as f64 / world_width;
    let (carwidth, carheight) = (40.0, 20.0);
    // np.linspace(min, max, 100)
    let step = (max_position - min_position) / 99.0;
    let curve: Vec<(f64, f64)> = (0..100)
        .map(|i| {
            let x = if i == 99 { max_position } else { min_position + i as f64 * step };
            ((x - min_position) * scale, hill(x) * scale)
        })
        .collect();
    canvas.aalines(&curve, BLACK);

    let clearance = 10.0;
    let tilt = (3.0 * position).cos();
    let (l, r, t, b) = (-carwidth / 2.0, carwidth / 2.0, carheight, 0.0);
    let car: Vec<(f64, f64)> = [(l, b), (l, t), (r, t), (r, b)]
        .into_iter()
        .map(|p| {
            let (x, y) = rotate(p, tilt);
            (x + (position - min_position) * scale, y + clearance + hill(position) * scale)
        })
        .collect();
    canvas.polygon(&car, BLACK);
    for p in [(carwidth / 4.0, 0.0), (-carwidth / 4.0, 0.0)] {
        let (x, y) = rotate(p, tilt);
        let wheel_x = (x + (position - min_position) * scale) as i64;
        let wheel_y = (y + clearance + hill(position) * scale) as i64;
        canvas.circle(wheel_x, wheel_y, (carheight / 2.5) as i64, WHEEL);
    }
    let flag_x = ((goal_position - min_position) * scale) as i64;
    let flag_y1 = (hill(goal_position) * scale) as i64;
    let flag_y2 = flag_y1 + 50;
    canvas.vline(flag_x, flag_y1, flag_y2, BLACK);
    let (fx, fy) = (flag_x as f64, flag_y2 as f64);
    canvas.polygon(&[(fx, fy), (fx, fy - 10.0), (fx + 25.0, fy - 5.0)], FLAG);
    canvas.flip_vertically();
}
