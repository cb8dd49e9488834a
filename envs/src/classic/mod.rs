//! Classic-control environments in plain Rust: Pendulum-v1 and MountainCarContinuous-v0.
//!
//! Gymnasium writes these with NumPy scalars whose types change the rounding (float32 actions,
//! float64 or float32 states, Python-float constants), so the arithmetic below follows NumPy's type
//! promotion ([`crate::numpy::Np`]) operation by operation, in Gymnasium's evaluation order.

mod mountain_car;
mod pendulum;

pub(crate) use mountain_car::MountainCar;
pub(crate) use pendulum::Pendulum;
