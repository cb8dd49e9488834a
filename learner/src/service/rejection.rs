//! Why the learner refuses input from the network. Each reason is one value of the `reason` label of
//! `spikerl_learner_transitions_rejected_total` and decides the gRPC status the peer gets: the label,
//! the status and the message are written once, here, for the handlers, the fuzz harness and the
//! counters initialised at start.

use spikerl_metrics::learner;
use tonic::Status;

/// A request or batch the learner refuses (and counts by [`Rejection::label`]).
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("unknown run id '{got}' (this learner runs '{expected}')")]
    UnknownRun { got: String, expected: String },
    #[error("actor id {0} is not registered")]
    UnknownActor(u32),
    #[error("batch has count 0")]
    Empty,
    #[error("batch of {count} transitions exceeds the maximum {max}")]
    Oversized { count: usize, max: usize },
    #[error(
        "{field} has {got} values, expected {want} ({count} transitions, obs_dim {obs_dim}, act_dim {act_dim})"
    )]
    Shape { field: &'static str, got: usize, want: usize, count: usize, obs_dim: usize, act_dim: usize },
    #[error("{field}[{index}] is {value} (values must be finite)")]
    NonFinite { field: &'static str, index: usize, value: f32 },
    /// A message over `--max-message-bytes`: tonic's decoder refused it with this status, which the
    /// peer gets as it is.
    #[error("{}", .0.message())]
    MessageTooLarge(Status),
    /// A message that is not valid protobuf (or a stream broken mid-message), with tonic's status.
    #[error("{}", .0.message())]
    Undecodable(Status),
}

impl Rejection {
    /// Every value of the `reason` label, so that each series exists at 0 from the start.
    pub const ALL_LABELS: [&'static str; 8] = [
        "unknown_run",
        "unknown_actor",
        "empty",
        "oversized",
        "shape",
        "non_finite",
        "message_too_large",
        "undecodable",
    ];

    /// The `reason` label this rejection is counted under.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::UnknownRun { .. } => "unknown_run",
            Rejection::UnknownActor(_) => "unknown_actor",
            Rejection::Empty => "empty",
            Rejection::Oversized { .. } => "oversized",
            Rejection::Shape { .. } => "shape",
            Rejection::NonFinite { .. } => "non_finite",
            Rejection::MessageTooLarge(_) => "message_too_large",
            Rejection::Undecodable(_) => "undecodable",
        }
    }

    /// The status the peer gets: FAILED_PRECONDITION for a run or actor this learner does not know
    /// (the actor must register again), INVALID_ARGUMENT for a bad batch, and the decoder's own status
    /// for a message that could not be read.
    pub fn status(&self) -> Status {
        match self {
            Rejection::UnknownRun { .. } | Rejection::UnknownActor(_) => {
                Status::failed_precondition(self.to_string())
            }
            Rejection::Empty
            | Rejection::Oversized { .. }
            | Rejection::Shape { .. }
            | Rejection::NonFinite { .. } => Status::invalid_argument(self.to_string()),
            Rejection::MessageTooLarge(status) | Rejection::Undecodable(status) => status.clone(),
        }
    }

    /// A protobuf message that did not decode, with the status tonic's codec gives it (INTERNAL).
    pub fn undecodable(e: prost::DecodeError) -> Rejection {
        Rejection::Undecodable(Status::internal(e.to_string()))
    }

    /// The rejection behind an error tonic's decoder ends a request stream with, if it is one: a message
    /// too large, or one that does not decode. Anything else (the peer went away) is not a rejection.
    pub fn from_stream_error(status: &Status) -> Option<Rejection> {
        match status.code() {
            tonic::Code::ResourceExhausted => Some(Rejection::MessageTooLarge(status.clone())),
            tonic::Code::OutOfRange | tonic::Code::Internal => Some(Rejection::Undecodable(status.clone())),
            _ => None,
        }
    }

    /// Counts this rejection under its reason.
    pub fn count(&self) {
        metrics::counter!(learner::TRANSITIONS_REJECTED_TOTAL, "reason" => self.label()).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    /// One of each variant, with the label, code and message the learner answered with before the enum.
    fn every_variant() -> Vec<(Rejection, &'static str, Code, &'static str)> {
        vec![
            (
                Rejection::UnknownRun { got: "other".into(), expected: "mine".into() },
                "unknown_run",
                Code::FailedPrecondition,
                "unknown run id 'other' (this learner runs 'mine')",
            ),
            (
                Rejection::UnknownActor(7),
                "unknown_actor",
                Code::FailedPrecondition,
                "actor id 7 is not registered",
            ),
            (Rejection::Empty, "empty", Code::InvalidArgument, "batch has count 0"),
            (
                Rejection::Oversized { count: 5000, max: 4096 },
                "oversized",
                Code::InvalidArgument,
                "batch of 5000 transitions exceeds the maximum 4096",
            ),
            (
                Rejection::Shape { field: "next_obs", got: 11, want: 12, count: 4, obs_dim: 3, act_dim: 1 },
                "shape",
                Code::InvalidArgument,
                "next_obs has 11 values, expected 12 (4 transitions, obs_dim 3, act_dim 1)",
            ),
            (
                Rejection::NonFinite { field: "rewards", index: 1, value: f32::NAN },
                "non_finite",
                Code::InvalidArgument,
                "rewards[1] is NaN (values must be finite)",
            ),
            (
                Rejection::MessageTooLarge(Status::resource_exhausted("too big")),
                "message_too_large",
                Code::ResourceExhausted,
                "too big",
            ),
            (Rejection::Undecodable(Status::internal("bad wire")), "undecodable", Code::Internal, "bad wire"),
        ]
    }

    #[test]
    fn labels_statuses_and_messages_are_the_learners() {
        let cases = every_variant();
        for (r, label, code, message) in &cases {
            assert_eq!(r.label(), *label);
            let s = r.status();
            assert_eq!((s.code(), s.message()), (*code, *message), "{label}");
        }
        let labels: Vec<&str> = cases.iter().map(|c| c.0.label()).collect();
        assert_eq!(labels, Rejection::ALL_LABELS, "ALL_LABELS lists every variant's label once");
    }

    #[test]
    fn decoder_errors_are_classified_and_keep_their_status() {
        let too_big = Status::resource_exhausted("message length too large");
        let r = Rejection::from_stream_error(&too_big).unwrap();
        assert_eq!((r.label(), r.status().code()), ("message_too_large", Code::ResourceExhausted));
        for code in [Code::OutOfRange, Code::Internal] {
            let r = Rejection::from_stream_error(&Status::new(code, "x")).unwrap();
            assert_eq!((r.label(), r.status().code(), r.status().message()), ("undecodable", code, "x"));
        }
        assert!(Rejection::from_stream_error(&Status::cancelled("gone")).is_none());
        assert!(Rejection::from_stream_error(&Status::unknown("h2 error")).is_none());
        let e = <spikerl_proto::TransitionBatch as prost::Message>::decode(&[0xffu8, 0xff][..]).unwrap_err();
        let r = Rejection::undecodable(e);
        assert_eq!((r.label(), r.status().code()), ("undecodable", Code::Internal));
    }
}
