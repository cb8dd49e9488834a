//! Layer 3: the distributed learner. Imports `training`, `storage` and `spikerl_algo`.
//!
//! - [`server`]: the gRPC service: registration, transition streams (validated, deduplicated), policy
//!   subscriptions.
//! - [`security`]: the shared token and TLS.
//! - [`grpc_metrics`]: the service's series, policy lag, per-method call metrics.
//! - [`runtime`]: the learner process: serving stack, training thread, broadcast, checkpoints, resume.

pub mod grpc_metrics;
pub mod runtime;
pub mod security;
pub mod server;
