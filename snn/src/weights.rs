//! Parameter names, shapes and the versioned weight file.
//!
//! # Format (version 1)
//! A [safetensors](https://github.com/huggingface/safetensors) file: F32 tensors named by the stable
//! parameter names below, and `__metadata__`:
//!
//! | key | value |
//! |---|---|
//! | `format` | `"spikerl-policy"` |
//! | `format_version` | `"1"` |
//! | `policy_version` | decimal `u64`: the learner's actor-update counter |
//! | `config` | the [`PolicyConfig`] as JSON |
//!
//! The same bytes serve as the broadcast payload and the checkpoint's `policy.safetensors`; any safetensors
//! reader (Python included) can open them.
//!
//! # Parameter names
//! SNN: `encoder.mu`, `encoder.sigma` `[obs_dim, pop]`; `layers.{i}.weight` `[out, in]`, `layers.{i}.bias`
//! `[out]` for every layer (the last one maps to `act_dim * pop`); PLIF only `layers.{i}.decay_logit` `[1]`;
//! `decoder.weight` `[act_dim, pop]`, `decoder.bias` `[act_dim]`.
//! ANN: `layers.{i}.weight`, `layers.{i}.bias`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors, View};

use crate::SnnError;
use crate::config::{NetworkConfig, NeuronKind, PolicyConfig};

/// A dense row-major f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

impl NamedTensor {
    /// A tensor from its shape and data; errors if they disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, SnnError> {
        let t = Self { shape, data };
        t.check_len("<tensor>")?;
        Ok(t)
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Self { shape, data: vec![0.0; n] }
    }

    fn check_len(&self, name: &str) -> Result<(), SnnError> {
        let expected = self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
        if expected != self.data.len() {
            return Err(SnnError::DataLength {
                name: name.to_owned(),
                shape: self.shape.clone(),
                expected,
                found: self.data.len(),
            });
        }
        Ok(())
    }
}

/// A policy's parameters by stable name. Ordered, so that files and iteration are deterministic.
pub type NamedTensors = BTreeMap<String, NamedTensor>;

/// Parameter name -> shape.
pub type Shapes = BTreeMap<String, Vec<usize>>;

/// The value of `__metadata__["format"]`.
pub const FORMAT: &str = "spikerl-policy";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: &str = "1";

/// Every parameter `cfg` needs, with its shape. The single source of truth for names: the tch network
/// creates exactly these variables and the plain-Rust policy requires exactly these tensors.
pub fn expected_shapes(cfg: &PolicyConfig) -> Result<Shapes, SnnError> {
    cfg.validate()?;
    let mut shapes = Shapes::new();
    if let NetworkConfig::Snn(s) = &cfg.network {
        shapes.insert("encoder.mu".into(), vec![cfg.obs_dim, s.pop_size]);
        shapes.insert("encoder.sigma".into(), vec![cfg.obs_dim, s.pop_size]);
        shapes.insert("decoder.weight".into(), vec![cfg.act_dim, s.pop_size]);
        shapes.insert("decoder.bias".into(), vec![cfg.act_dim]);
    }
    let plif = matches!(&cfg.network, NetworkConfig::Snn(s) if s.neuron == NeuronKind::Plif);
    for (i, (fan_in, fan_out)) in cfg.layer_dims().into_iter().enumerate() {
        shapes.insert(format!("layers.{i}.weight"), vec![fan_out, fan_in]);
        shapes.insert(format!("layers.{i}.bias"), vec![fan_out]);
        if plif {
            shapes.insert(format!("layers.{i}.decay_logit"), vec![1]);
        }
    }
    if let Some(g) = &cfg.gaussian {
        for (i, (fan_in, fan_out)) in g.layer_dims(cfg.obs_dim, cfg.act_dim).into_iter().enumerate() {
            shapes.insert(format!("log_std.layers.{i}.weight"), vec![fan_out, fan_in]);
            shapes.insert(format!("log_std.layers.{i}.bias"), vec![fan_out]);
        }
    }
    Ok(shapes)
}

/// Checks that `tensors` holds exactly the parameters of `cfg`, with the right shapes and data lengths.
pub fn check_tensors(cfg: &PolicyConfig, tensors: &NamedTensors) -> Result<(), SnnError> {
    let shapes = expected_shapes(cfg)?;
    for (name, shape) in &shapes {
        let t = tensors.get(name).ok_or_else(|| SnnError::MissingTensor { name: name.clone() })?;
        if &t.shape != shape {
            return Err(SnnError::ShapeMismatch {
                name: name.clone(),
                expected: shape.clone(),
                found: t.shape.clone(),
            });
        }
        t.check_len(name)?;
    }
    if let Some(name) = tensors.keys().find(|n| !shapes.contains_key(*n)) {
        return Err(SnnError::UnexpectedTensor { name: name.clone() });
    }
    Ok(())
}

/// safetensors' view of one of our tensors (little-endian bytes, as the format requires).
struct F32View<'a>(&'a NamedTensor);

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.0.data.len() * 4
    }
}

/// Serialises a policy into the weight file format (module docs). Checks the tensors against `cfg` first,
/// so a file that encodes always decodes.
pub fn encode_policy(
    cfg: &PolicyConfig,
    tensors: &NamedTensors,
    policy_version: u64,
) -> Result<Vec<u8>, SnnError> {
    check_tensors(cfg, tensors)?;
    let config = serde_json::to_string(cfg)
        .map_err(|e| SnnError::InvalidConfig { field: "config", reason: format!("cannot serialise: {e}") })?;
    let metadata: HashMap<String, String> = [
        ("format", FORMAT.to_owned()),
        ("format_version", FORMAT_VERSION.to_owned()),
        ("policy_version", policy_version.to_string()),
        ("config", config),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), F32View(t))), Some(metadata))
        .map_err(|e| SnnError::Malformed { reason: format!("cannot serialise: {e}") })?;
    Ok(with_sorted_header(bytes))
}

/// The same safetensors file with its JSON header's keys in sorted order. `safetensors::serialize` writes
/// the metadata from a `HashMap`, whose order changes from process to process: sorted, the same weights
/// give the same bytes (a resumed lockstep run's final policy file is byte-identical to the uninterrupted
/// run's, and checksums compare policies). The tensor data, and so every offset, stays as it was.
fn with_sorted_header(bytes: Vec<u8>) -> Vec<u8> {
    let sorted = (|| {
        let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
        let header: serde_json::Value = serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
        // serde_json's maps are ordered by key (no `preserve_order` feature in this build).
        let mut text = serde_json::to_vec(&header).ok()?;
        // Pad with spaces as safetensors does, so that the data stays 8-byte aligned.
        text.resize(text.len().div_ceil(8) * 8, b' ');
        let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
        out.extend_from_slice(&(text.len() as u64).to_le_bytes());
        out.extend_from_slice(&text);
        out.extend_from_slice(&bytes[8 + n..]);
        Some(out)
    })();
    // What safetensors just wrote always parses; keep its bytes if it somehow did not.
    sorted.unwrap_or(bytes)
}

/// Parses a weight file: (config, tensors, policy_version). Never panics on arbitrary bytes; checks the
/// format, its version, the config, and every tensor's name, dtype and shape against the config.
pub fn decode_policy(bytes: &[u8]) -> Result<(PolicyConfig, NamedTensors, u64), SnnError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| SnnError::Malformed { reason: e.to_string() })?;
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| SnnError::Malformed { reason: e.to_string() })?;
    let empty = HashMap::new();
    let meta = header.metadata().as_ref().unwrap_or(&empty);
    let format = meta.get("format");
    if format.map(String::as_str) != Some(FORMAT) {
        return Err(SnnError::WrongFormat { found: format.cloned() });
    }
    let version = meta.get("format_version").ok_or(SnnError::MissingMetadata { key: "format_version" })?;
    if version != FORMAT_VERSION {
        return Err(SnnError::UnsupportedVersion { found: version.clone(), supported: FORMAT_VERSION });
    }
    let policy_version = meta
        .get("policy_version")
        .ok_or(SnnError::MissingMetadata { key: "policy_version" })?
        .parse::<u64>()
        .map_err(|e| SnnError::BadMetadata { key: "policy_version", reason: e.to_string() })?;
    let config = meta.get("config").ok_or(SnnError::MissingMetadata { key: "config" })?;
    let cfg: PolicyConfig = serde_json::from_str(config)
        .map_err(|e| SnnError::BadMetadata { key: "config", reason: e.to_string() })?;
    cfg.validate()?;

    let mut tensors = NamedTensors::new();
    for (name, view) in st.iter() {
        tensors.insert(name.to_owned(), to_named(name, &view)?);
    }
    check_tensors(&cfg, &tensors)?;
    Ok((cfg, tensors, policy_version))
}

/// What an actor does with weight bytes from the network: decode them and build the acting [`Policy`]
/// (its buffers sized from the file's config). Returns the policy and its version; an error, never a
/// panic, for any bytes. The weights fuzz target (`fuzz/fuzz_targets/weights.rs`) and a stable test over
/// its corpus call it.
pub fn policy_from_bytes(bytes: &[u8]) -> Result<(crate::Policy, u64), SnnError> {
    let (cfg, tensors, version) = decode_policy(bytes)?;
    Ok((crate::Policy::new(&cfg, &tensors)?, version))
}

fn to_named(name: &str, view: &TensorView<'_>) -> Result<NamedTensor, SnnError> {
    if view.dtype() != Dtype::F32 {
        return Err(SnnError::WrongDtype { name: name.to_owned(), dtype: format!("{:?}", view.dtype()) });
    }
    let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let t = NamedTensor { shape: view.shape().to_vec(), data };
    t.check_len(name)?;
    Ok(t)
}
