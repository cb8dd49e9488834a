//! Layer 3: the distributed learner. Imports `training`, `storage` and `spikerl_algo`.
//!
//! - [`server`]: the gRPC service: registration, transition streams (validated, deduplicated), policy
//!   subscriptions.
//! - [`security`]: the shared token and TLS.
//! - [`rejection`]: why input from the network is refused: the metric label and the gRPC status.
//! - [`grpc_metrics`]: the service's series, policy lag, per-method call metrics.
//! - [`runtime`]: the learner process: serving stack, training thread, broadcast, checkpoints, resume.

pub mod grpc_metrics;
pub mod rejection;
pub mod runtime;
pub mod security;
pub mod server;
