//! The spiking actor as a NIR graph (Neuromorphic Intermediate Representation, `nir` on PyPI).
//!
//! Pure: a [`PolicyConfig`] and its [`NamedTensors`] become a [`NirGraph`] value (nodes with named parameter
//! arrays, edges, metadata) laid out exactly as `nir.write` lays out a graph's `to_dict()`. Writing it to
//! HDF5 is the binary's business (`spikerl export`), so that actors never link an HDF5 writer. The mapping
//! and its exactness are documented in docs/nir.md; in short, with NIR's equations discretised by Euler at
//! `dt = 1` (input of step t used at step t; CubaLIF: the current first, the voltage from the new current):
//!
//! | spikerl | NIR node | parameters |
//! |---|---|---|
//! | `layers.{i}` (`W`, `b`) | `Affine` `fc_{i}` | `weight` `[out, in]`, `bias` `[out]` |
//! | LIF, decay d | `LIF` | `tau = r = 1 / (1 - d)`, `v_leak = v_reset = 0`, `v_threshold` |
//! | PLIF | `LIF` | as LIF with `d = sigmoid(decay_logit)` of the layer |
//! | IF | `IF` | `r = 1`, `v_reset = 0`, `v_threshold` |
//! | CLIF, decays d, c | `CubaLIF` | `tau_mem = r = 1 / (1 - d)`, `tau_syn = w_in = 1 / (1 - c)`, `v_leak = v_reset = 0` |
//! | decoder weights | `Affine` `decoder` | block-diagonal `[act, act * pop]`, `bias` `[act]` |
//!
//! The graph's input is the encoder's spike train (`obs_dim * pop` per step); the Gaussian receptive fields
//! and the soft-reset spike generator, which NIR cannot express, are stored in the graph's metadata
//! (`metadata/encoder`), as are the readout (`metadata/readout`: mean over the T steps of the decoder's
//! output, then `tanh * max_action`) and the policy's own config. DN has no NIR node: refused.

use std::collections::BTreeMap;

use crate::SnnError;
use crate::config::{NetworkConfig, NeuronKind, PolicyConfig, SnnConfig};
use crate::neuron::sigmoid;
use crate::weights::{NamedTensors, check_tensors};

/// The NIR version whose reader (`nir.read`) this layout targets; written as the file's `version`.
pub const NIR_VERSION: &str = "1.0.8";
/// `metadata/format` of the graph: what wrote it.
pub const FORMAT: &str = "spikerl-nir";
/// `metadata/format_version`: the version of the metadata layout below (docs/nir.md).
pub const FORMAT_VERSION: &str = "1";

/// One value of the tree `nir.write` stores: a group, or a dataset.
#[derive(Debug, Clone, PartialEq)]
pub enum NirValue {
    /// A group (a nested dict of `to_dict()`).
    Group(BTreeMap<String, NirValue>),
    /// A scalar UTF-8 string dataset (h5py's `string_dtype()`), e.g. a node's `type`.
    Str(String),
    /// An array of UTF-8 strings, row-major (the graph's `edges`, shape `[n, 2]`).
    Strs { shape: Vec<usize>, data: Vec<String> },
    /// An f32 array; an empty shape is a scalar.
    F32 { shape: Vec<usize>, data: Vec<f32> },
    /// An i64 array; an empty shape is a scalar (Input/Output `shape`, `timesteps`).
    I64 { shape: Vec<usize>, data: Vec<i64> },
}

impl NirValue {
    /// A 1-D f32 array.
    pub fn vec(data: Vec<f32>) -> Self {
        Self::F32 { shape: vec![data.len()], data }
    }
    /// An f32 array of `n` copies of `v`.
    pub fn fill(n: usize, v: f32) -> Self {
        Self::vec(vec![v; n])
    }
    /// An f32 scalar.
    pub fn scalar(v: f32) -> Self {
        Self::F32 { shape: vec![], data: vec![v] }
    }
    /// A string scalar.
    pub fn str(s: impl Into<String>) -> Self {
        Self::Str(s.into())
    }
    /// The f32 data, if this is an f32 array.
    pub fn as_f32(&self) -> Option<(&[usize], &[f32])> {
        match self {
            Self::F32 { shape, data } => Some((shape, data)),
            _ => None,
        }
    }
}

/// One NIR node: its NIR type name and its fields as `to_dict()` names them.
#[derive(Debug, Clone, PartialEq)]
pub struct NirNode {
    /// `Input`, `Affine`, `LIF`, `CubaLIF`, `IF`, `Output`.
    pub kind: &'static str,
    /// The node's fields (without `type` and `metadata`).
    pub params: BTreeMap<String, NirValue>,
    /// The node's `metadata` (omitted from the file when empty, as `nir.write` does).
    pub metadata: BTreeMap<String, NirValue>,
}

impl NirNode {
    fn new(kind: &'static str, params: impl IntoIterator<Item = (&'static str, NirValue)>) -> Self {
        Self {
            kind,
            params: params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            metadata: BTreeMap::new(),
        }
    }

    /// A field's f32 data (tests, tools).
    pub fn f32(&self, name: &str) -> Option<&[f32]> {
        self.params.get(name).and_then(NirValue::as_f32).map(|(_, d)| d)
    }
}

/// A NIR graph: named nodes, edges `(from, to)`, and the graph's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct NirGraph {
    /// Nodes by name.
    pub nodes: BTreeMap<String, NirNode>,
    /// Edges in data-flow order.
    pub edges: Vec<(String, String)>,
    /// The graph's `metadata` group.
    pub metadata: BTreeMap<String, NirValue>,
}

impl NirGraph {
    /// The graph as `nir.write` stores it under the file's `node` group: `type`, `nodes/{name}/...`,
    /// `edges` (`[n, 2]` strings), `metadata/...`.
    pub fn to_tree(&self) -> BTreeMap<String, NirValue> {
        let mut nodes = BTreeMap::new();
        for (name, n) in &self.nodes {
            let mut g = n.params.clone();
            g.insert("type".into(), NirValue::str(n.kind));
            if !n.metadata.is_empty() {
                g.insert("metadata".into(), NirValue::Group(n.metadata.clone()));
            }
            nodes.insert(name.clone(), NirValue::Group(g));
        }
        let mut tree = BTreeMap::new();
        tree.insert("type".into(), NirValue::str("NIRGraph"));
        tree.insert("nodes".into(), NirValue::Group(nodes));
        tree.insert(
            "edges".into(),
            NirValue::Strs {
                shape: vec![self.edges.len(), 2],
                data: self.edges.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect(),
            },
        );
        if !self.metadata.is_empty() {
            tree.insert("metadata".into(), NirValue::Group(self.metadata.clone()));
        }
        tree
    }
}

/// Why a policy has no NIR graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NirError {
    /// An ANN policy: nothing spikes.
    #[error(
        "an ANN policy has no spiking network to export to NIR (export a policy trained with --algo proxy or vanilla)"
    )]
    NotSpiking,
    /// A neuron model NIR has no node for.
    #[error("the {neuron} neuron cannot be expressed in NIR: {reason}; refusing to export an approximation")]
    Unrepresentable { neuron: NeuronKind, reason: &'static str },
    /// The config or tensors are inconsistent.
    #[error(transparent)]
    Invalid(#[from] SnnError),
}

/// Time constant of a per-step decay `d` under Euler at `dt = 1`: `1 - dt / tau = d`.
fn tau_of(decay: f32) -> f32 {
    1.0 / (1.0 - decay)
}

/// The NIR graph of a spiking policy (module docs, docs/nir.md).
pub fn policy_graph(cfg: &PolicyConfig, tensors: &NamedTensors) -> Result<NirGraph, NirError> {
    let s = match &cfg.network {
        NetworkConfig::Ann { .. } => return Err(NirError::NotSpiking),
        NetworkConfig::Snn(s) => s,
    };
    if s.neuron == NeuronKind::Dn {
        return Err(NirError::Unrepresentable {
            neuron: NeuronKind::Dn,
            reason: "its quadratic two-variable (V, U) dynamics match no NIR neuron node",
        });
    }
    check_tensors(cfg, tensors)?;
    let pop = s.pop_size;
    let dims = cfg.layer_dims();
    let mut nodes = BTreeMap::new();
    let mut edges = Vec::new();
    let n_in = (cfg.obs_dim * pop) as i64;
    nodes.insert(
        "input".to_owned(),
        NirNode::new("Input", [("shape", NirValue::I64 { shape: vec![1], data: vec![n_in] })]),
    );
    let mut prev = "input".to_owned();
    for (i, &(_, n)) in dims.iter().enumerate() {
        let w = &tensors[&format!("layers.{i}.weight")];
        let b = &tensors[&format!("layers.{i}.bias")];
        let mut fc = NirNode::new(
            "Affine",
            [
                ("weight", NirValue::F32 { shape: w.shape.clone(), data: w.data.clone() }),
                ("bias", NirValue::vec(b.data.clone())),
            ],
        );
        fc.metadata.insert("spikerl_name".into(), NirValue::str(format!("layers.{i}")));
        let (neuron_name, neuron) = neuron_node(s, tensors, i, n);
        let fc_name = format!("fc_{i}");
        let neuron_name = format!("{neuron_name}_{i}");
        nodes.insert(fc_name.clone(), fc);
        nodes.insert(neuron_name.clone(), neuron);
        edges.push((prev, fc_name.clone()));
        edges.push((fc_name, neuron_name.clone()));
        prev = neuron_name;
    }

    // Decoder: per action a weighted sum of its population, as one block-diagonal Affine.
    let n_out = cfg.act_dim * pop;
    let dw = &tensors["decoder.weight"];
    let mut weight = vec![0.0f32; cfg.act_dim * n_out];
    for a in 0..cfg.act_dim {
        for k in 0..pop {
            weight[a * n_out + a * pop + k] = dw.data[a * pop + k];
        }
    }
    let mut decoder = NirNode::new(
        "Affine",
        [
            ("weight", NirValue::F32 { shape: vec![cfg.act_dim, n_out], data: weight }),
            ("bias", NirValue::vec(tensors["decoder.bias"].data.clone())),
        ],
    );
    decoder.metadata.insert("spikerl_name".into(), NirValue::str("decoder"));
    nodes.insert("decoder".into(), decoder);
    edges.push((prev, "decoder".into()));
    nodes.insert(
        "output".into(),
        NirNode::new("Output", [("shape", NirValue::I64 { shape: vec![1], data: vec![cfg.act_dim as i64] })]),
    );
    edges.push(("decoder".into(), "output".into()));

    Ok(NirGraph { nodes, edges, metadata: graph_metadata(cfg, s, tensors) })
}

/// The neuron node of layer `i` (`n` neurons): its name stem and node.
fn neuron_node(s: &SnnConfig, tensors: &NamedTensors, i: usize, n: usize) -> (&'static str, NirNode) {
    let zeros = || NirValue::fill(n, 0.0);
    let thr = || NirValue::fill(n, s.v_threshold);
    match s.neuron {
        NeuronKind::Lif | NeuronKind::Plif => {
            let d = match s.neuron {
                NeuronKind::Plif => sigmoid(tensors[&format!("layers.{i}.decay_logit")].data[0]),
                _ => s.v_decay,
            };
            let tau = tau_of(d);
            let mut node = NirNode::new(
                "LIF",
                [
                    ("tau", NirValue::fill(n, tau)),
                    ("r", NirValue::fill(n, tau)),
                    ("v_leak", zeros()),
                    ("v_reset", zeros()),
                    ("v_threshold", thr()),
                ],
            );
            node.metadata.insert("spikerl_decay".into(), NirValue::scalar(d));
            ("lif", node)
        }
        NeuronKind::If => (
            "if",
            NirNode::new("IF", [("r", NirValue::fill(n, 1.0)), ("v_reset", zeros()), ("v_threshold", thr())]),
        ),
        NeuronKind::Clif => {
            let (tau_mem, tau_syn) = (tau_of(s.v_decay), tau_of(s.i_decay));
            let mut node = NirNode::new(
                "CubaLIF",
                [
                    ("tau_mem", NirValue::fill(n, tau_mem)),
                    ("tau_syn", NirValue::fill(n, tau_syn)),
                    ("r", NirValue::fill(n, tau_mem)),
                    ("w_in", NirValue::fill(n, tau_syn)),
                    ("v_leak", zeros()),
                    ("v_reset", zeros()),
                    ("v_threshold", thr()),
                ],
            );
            node.metadata.insert("spikerl_decay".into(), NirValue::scalar(s.v_decay));
            node.metadata.insert("spikerl_current_decay".into(), NirValue::scalar(s.i_decay));
            ("cubalif", node)
        }
        NeuronKind::Dn => unreachable!("refused in policy_graph"),
    }
}

fn group(entries: impl IntoIterator<Item = (&'static str, NirValue)>) -> NirValue {
    NirValue::Group(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// The graph's metadata: what NIR cannot express (docs/nir.md, "Metadata").
fn graph_metadata(cfg: &PolicyConfig, s: &SnnConfig, tensors: &NamedTensors) -> BTreeMap<String, NirValue> {
    let t = |name: &str| {
        let x = &tensors[name];
        NirValue::F32 { shape: x.shape.clone(), data: x.data.clone() }
    };
    let config = serde_json::to_string(cfg).expect("a PolicyConfig always serialises");
    let entries = [
        ("format", NirValue::str(FORMAT)),
        ("format_version", NirValue::str(FORMAT_VERSION)),
        ("neuron", NirValue::str(s.neuron.as_str())),
        ("spikerl_config", NirValue::str(config)),
        ("dt", NirValue::scalar(1.0)),
        ("timesteps", NirValue::I64 { shape: vec![], data: vec![s.timesteps as i64] }),
        (
            "discretisation",
            NirValue::str(
                "Euler at dt = 1, every state 0 at the first of `timesteps` steps, the input of step t \
                 used at step t; CubaLIF updates the current first and integrates the new current; a spike \
                 (v > v_threshold) sets v to v_reset",
            ),
        ),
        (
            "encoder",
            group([
                (
                    "description",
                    NirValue::str(
                        "graph input = encoder spikes, neuron d*pop+k for observation dim d: \
                         a = exp(-0.5 * (tanh(obs[d]) - mu[d,k])^2 / sigma[d,k]^2); per step v += a; \
                         spike = v > threshold; v -= spike * threshold (v starts at 0)",
                    ),
                ),
                ("mu", t("encoder.mu")),
                ("sigma", t("encoder.sigma")),
                ("threshold", NirValue::scalar(s.encoder_threshold)),
                ("pop_size", NirValue::I64 { shape: vec![], data: vec![s.pop_size as i64] }),
            ]),
        ),
        (
            "readout",
            group([
                (
                    "description",
                    NirValue::str(
                        "action = tanh(mean over the timesteps of the graph output) * max_action \
                         (the decoder Affine applied to the mean spike rate of the output population)",
                    ),
                ),
                ("max_action", NirValue::vec(cfg.max_action.clone())),
            ]),
        ),
    ];
    entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::initial_tensors;
    use crate::neuron::logit;

    fn cfg(neuron: NeuronKind) -> PolicyConfig {
        PolicyConfig {
            gaussian: None,
            obs_dim: 3,
            act_dim: 2,
            max_action: vec![2.0, 1.0],
            network: NetworkConfig::Snn(SnnConfig { hidden: vec![7, 5], ..SnnConfig::paper(neuron) }),
        }
    }

    fn graph(neuron: NeuronKind) -> NirGraph {
        let c = cfg(neuron);
        policy_graph(&c, &initial_tensors(&c, 1).unwrap()).unwrap()
    }

    #[test]
    fn lif_graph_is_a_chain_of_affine_and_lif() {
        let g = graph(NeuronKind::Lif);
        let names: Vec<&str> = g.edges.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(names, ["input", "fc_0", "lif_0", "fc_1", "lif_1", "fc_2", "lif_2", "decoder"]);
        assert_eq!(g.edges.last().unwrap(), &("decoder".to_owned(), "output".to_owned()));
        assert_eq!(g.nodes.len(), 9);
        assert_eq!(g.nodes["input"].params["shape"], NirValue::I64 { shape: vec![1], data: vec![30] });
        assert_eq!(g.nodes["output"].params["shape"], NirValue::I64 { shape: vec![1], data: vec![2] });
        let fc1 = &g.nodes["fc_1"];
        assert_eq!(fc1.kind, "Affine");
        assert_eq!(fc1.params["weight"].as_f32().unwrap().0, &[5, 7]);
        let lif = &g.nodes["lif_2"];
        assert_eq!(lif.kind, "LIF");
        // d = 0.75: tau = r = 4, so that 1 - dt/tau = 0.75 and dt r / tau = 1.
        assert_eq!(lif.f32("tau").unwrap(), &[4.0; 20]);
        assert_eq!(lif.f32("r").unwrap(), &[4.0; 20]);
        assert_eq!(lif.f32("v_threshold").unwrap(), &[0.5; 20]);
        assert_eq!(lif.f32("v_leak").unwrap(), &[0.0; 20]);
        assert_eq!(lif.f32("v_reset").unwrap(), &[0.0; 20]);
    }

    #[test]
    fn weights_and_decoder_are_copied_exactly() {
        let c = cfg(NeuronKind::Lif);
        let w = initial_tensors(&c, 1).unwrap();
        let g = policy_graph(&c, &w).unwrap();
        assert_eq!(g.nodes["fc_0"].f32("weight").unwrap(), &w["layers.0.weight"].data[..]);
        assert_eq!(g.nodes["fc_2"].f32("bias").unwrap(), &w["layers.2.bias"].data[..]);
        // Block-diagonal decoder: action a reads only neurons a*pop..(a+1)*pop.
        let (shape, dec) = g.nodes["decoder"].params["weight"].as_f32().unwrap();
        assert_eq!(shape, &[2, 20]);
        let dw = &w["decoder.weight"].data;
        for a in 0..2 {
            for j in 0..20 {
                let want = if j / 10 == a { dw[a * 10 + j % 10] } else { 0.0 };
                assert_eq!(dec[a * 20 + j], want);
            }
        }
        assert_eq!(g.nodes["decoder"].f32("bias").unwrap(), &w["decoder.bias"].data[..]);
        let enc = match &g.metadata["encoder"] {
            NirValue::Group(e) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(enc["mu"].as_f32().unwrap().1, &w["encoder.mu"].data[..]);
        assert_eq!(enc["threshold"], NirValue::scalar(0.999));
    }

    #[test]
    fn clif_maps_to_cubalif_and_if_to_if() {
        let g = graph(NeuronKind::Clif);
        let n = &g.nodes["cubalif_0"];
        assert_eq!(n.kind, "CubaLIF");
        // c = 0.5: tau_syn = w_in = 2; d = 0.75: tau_mem = r = 4.
        assert_eq!(n.f32("tau_syn").unwrap(), &[2.0; 7]);
        assert_eq!(n.f32("w_in").unwrap(), &[2.0; 7]);
        assert_eq!(n.f32("tau_mem").unwrap(), &[4.0; 7]);
        assert_eq!(n.f32("r").unwrap(), &[4.0; 7]);
        let g = graph(NeuronKind::If);
        let n = &g.nodes["if_1"];
        assert_eq!(n.kind, "IF");
        assert_eq!(n.f32("r").unwrap(), &[1.0; 5]);
        assert!(!n.params.contains_key("tau"));
    }

    #[test]
    fn plif_uses_each_layers_learned_decay() {
        let c = cfg(NeuronKind::Plif);
        let mut w = initial_tensors(&c, 1).unwrap();
        w.get_mut("layers.1.decay_logit").unwrap().data[0] = logit(0.5);
        let g = policy_graph(&c, &w).unwrap();
        assert_eq!(g.nodes["lif_1"].f32("tau").unwrap(), &[2.0; 5]);
        let tau0 = g.nodes["lif_0"].f32("tau").unwrap()[0];
        assert!((tau0 - 4.0).abs() < 1e-4, "{tau0}");
    }

    #[test]
    fn dn_and_ann_are_refused() {
        let c = cfg(NeuronKind::Dn);
        let err = policy_graph(&c, &initial_tensors(&c, 1).unwrap()).unwrap_err();
        assert!(matches!(err, NirError::Unrepresentable { neuron: NeuronKind::Dn, .. }), "{err}");
        assert!(err.to_string().contains("dn neuron cannot be expressed in NIR"), "{err}");
        let ann = PolicyConfig { network: NetworkConfig::Ann { hidden: vec![4] }, ..cfg(NeuronKind::Lif) };
        let err = policy_graph(&ann, &initial_tensors(&ann, 1).unwrap()).unwrap_err();
        assert_eq!(err, NirError::NotSpiking);
    }

    #[test]
    fn tree_is_laid_out_as_nir_write_does() {
        let tree = graph(NeuronKind::Lif).to_tree();
        assert_eq!(tree["type"], NirValue::str("NIRGraph"));
        let NirValue::Strs { shape, data } = &tree["edges"] else { panic!("edges") };
        assert_eq!(shape, &[8, 2]);
        assert_eq!(&data[..2], ["input", "fc_0"]);
        let NirValue::Group(nodes) = &tree["nodes"] else { panic!("nodes") };
        let NirValue::Group(lif) = &nodes["lif_0"] else { panic!("lif_0") };
        assert_eq!(lif["type"], NirValue::str("LIF"));
        assert!(lif.contains_key("metadata"));
        let NirValue::Group(input) = &nodes["input"] else { panic!("input") };
        assert!(!input.contains_key("metadata"), "empty metadata is omitted");
        assert!(matches!(&tree["metadata"], NirValue::Group(m) if m.contains_key("encoder")));
    }
}
