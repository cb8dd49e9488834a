//! spikerl's wire format: the `spikerl.v1.Learner` gRPC service and its messages, generated from
//! `proto/spikerl.proto`. Only this crate knows prost types' layout; the learner and actor convert and
//! validate at their boundaries.

#![allow(clippy::all)]

/// Bumped on any incompatible change to the messages or their meaning.
pub const PROTOCOL_VERSION: u32 = 1;

/// Request metadata carrying the shared token, as `Bearer <token>`, when the learner requires one.
pub const AUTH_METADATA_KEY: &str = "authorization";

/// gRPC status code names by number, as tonic's `Code` variants spell them (metric labels use these).
pub const GRPC_CODE_NAMES: [&str; 17] = [
    "Ok",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// Generated messages, client and server.
pub mod v1 {
    tonic::include_proto!("spikerl.v1");
}

pub use v1::*;
