//! The crate's one error type.

/// Everything that can go wrong when configuring, building, encoding or decoding a policy.
///
/// Weights arrive from other processes (broadcast, checkpoints), so every check on them reports what was
/// expected and what was found instead of panicking.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnnError {
    /// A configuration value is out of range or inconsistent with another.
    #[error("invalid policy configuration: {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },

    /// The network needs a parameter that the supplied tensors lack.
    #[error("missing tensor `{name}`")]
    MissingTensor { name: String },

    /// A tensor that this network configuration has no use for (a different architecture's weights).
    #[error("unexpected tensor `{name}`: not a parameter of this network configuration")]
    UnexpectedTensor { name: String },

    /// A parameter has the wrong shape for the configuration.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch { name: String, expected: Vec<usize>, found: Vec<usize> },

    /// A tensor's data length disagrees with its own shape.
    #[error("tensor `{name}` holds {found} values but its shape {shape:?} needs {expected}")]
    DataLength { name: String, shape: Vec<usize>, expected: usize, found: usize },

    /// A tensor in a weight file is not F32.
    #[error("tensor `{name}` has dtype {dtype}, expected F32")]
    WrongDtype { name: String, dtype: String },

    /// The bytes are not a readable safetensors file.
    #[error("malformed policy file: {reason}")]
    Malformed { reason: String },

    /// The file is safetensors but not one of ours.
    #[error("not a spikerl policy file: metadata `format` is {found:?}, expected \"spikerl-policy\"")]
    WrongFormat { found: Option<String> },

    /// A policy file from a format version this build does not read.
    #[error("unsupported policy format_version {found:?}: this build reads version {supported}")]
    UnsupportedVersion { found: String, supported: &'static str },

    /// A required metadata entry is absent.
    #[error("policy file metadata lacks `{key}`")]
    MissingMetadata { key: &'static str },

    /// A metadata entry is present but unreadable.
    #[error("policy file metadata `{key}` is invalid: {reason}")]
    BadMetadata { key: &'static str, reason: String },

    /// A libtorch call failed (import into a VarStore).
    #[error("torch: {0}")]
    Torch(String),
}
