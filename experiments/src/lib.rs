//! Multi-seed experiments: `sweep` expands a TOML grid into runs and schedules them; `report` turns run
//! folders into tables and plots that stand next to the paper's.

pub mod report;
pub mod sweep;
