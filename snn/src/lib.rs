//! Policy networks of spikerl: the population-coded spiking actor of the Proxy Target paper
//! (docs/method.md), and the ReLU ANN used as baseline actor and as proxy.
//!
//! # Map
//! - [`config`]: [`PolicyConfig`] (observation/action sizes, action bounds, [`NetworkConfig`]) and
//!   [`SnnConfig`] with the paper's defaults ([`SnnConfig::paper`]).
//! - [`neuron`]: LIF, CLIF, DN, PLIF, IF and the encoder's regular spike generator, each written once as a
//!   generic state update shared by both implementations below.
//! - [`policy`]: [`Policy`], plain-Rust event-driven inference for actors (no libtorch), with activity
//!   counters ([`InferenceStats`]: firing rate, synaptic operations, energy under the paper's model).
//! - [`weights`]: the stable parameter names and the one versioned weight file (safetensors + metadata)
//!   used for broadcast and checkpoints: [`encode_policy`] / [`decode_policy`].
//! - [`init`]: fresh parameters without libtorch.
//! - `torch` (feature `torch`): `TorchPolicy`, the same network in tch, differentiable with surrogate
//!   gradients, for training; `export` / `import` between a VarStore and [`NamedTensors`].
//!
//! # The spiking actor in one paragraph
//! `obs -> tanh -> Gaussian receptive fields (obs_dim x pop, learned mu/sigma) -> regular spikes over T
//! steps -> spiking layers (hidden..., then act_dim x pop) -> mean output spikes over T -> per action a
//! learned weighted sum of its pop neurons + bias -> tanh * max_action`. Every inference starts from zero
//! state; T = 5 steps by default.
//!
//! # Architecture invariant
//! Without the `torch` feature this crate depends on no native library: actor images link it alone.

pub mod config;
mod error;
pub mod init;
pub mod neuron;
pub mod nir;
pub mod policy;
#[cfg(feature = "torch")]
pub mod torch;
pub mod weights;

pub use config::{DnConstants, GaussianHead, NetworkConfig, NeuronKind, PolicyConfig, SnnConfig};
pub use error::SnnError;
pub use init::initial_tensors;
pub use policy::{InferenceStats, MAC_ENERGY_PJ, Policy, SOP_ENERGY_PJ, SpikeTrace, ann_equivalent_macs};
pub use weights::{
    NamedTensor, NamedTensors, Shapes, decode_policy, encode_policy, expected_shapes, policy_from_bytes,
};
