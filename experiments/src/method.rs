//! What a table row is: an algorithm and, for the spiking ones, a neuron type. Names, labels and the
//! order rows appear in are defined here once, for specs, run folders and reports alike.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `spikerl train --algo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// TD3 with an ANN actor (the paper's baseline row).
    Ann,
    /// SNN actor with a Polyak-averaged SNN target actor.
    Vanilla,
    /// SNN actor with the proxy target.
    Proxy,
}

/// `spikerl train --neuron`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Neuron {
    Lif,
    Clif,
    Dn,
    Plif,
    If,
}

impl Algo {
    pub const ALL: [Algo; 3] = [Algo::Ann, Algo::Vanilla, Algo::Proxy];

    pub fn as_str(self) -> &'static str {
        match self {
            Algo::Ann => "ann",
            Algo::Vanilla => "vanilla",
            Algo::Proxy => "proxy",
        }
    }

    pub fn parse(s: &str) -> Option<Algo> {
        Algo::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn is_spiking(self) -> bool {
        self != Algo::Ann
    }
}

impl Neuron {
    pub const ALL: [Neuron; 5] = [Neuron::Lif, Neuron::Clif, Neuron::Dn, Neuron::Plif, Neuron::If];

    pub fn as_str(self) -> &'static str {
        match self {
            Neuron::Lif => "lif",
            Neuron::Clif => "clif",
            Neuron::Dn => "dn",
            Neuron::Plif => "plif",
            Neuron::If => "if",
        }
    }

    pub fn parse(s: &str) -> Option<Neuron> {
        Neuron::ALL.into_iter().find(|n| n.as_str() == s)
    }

    fn label(self) -> &'static str {
        match self {
            Neuron::Lif => "LIF",
            Neuron::Clif => "CLIF",
            Neuron::Dn => "DN",
            Neuron::Plif => "PLIF",
            Neuron::If => "IF",
        }
    }
}

/// One row of Table 1: the ANN baseline, or a spiking algorithm with its neuron.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Method {
    pub algo: Algo,
    /// `None` exactly for [`Algo::Ann`] (`--neuron` is ignored there).
    pub neuron: Option<Neuron>,
}

impl Method {
    pub fn new(algo: Algo, neuron: Neuron) -> Method {
        Method { algo, neuron: algo.is_spiking().then_some(neuron) }
    }

    pub const ANN: Method = Method { algo: Algo::Ann, neuron: None };

    /// Machine name: `ann`, `vanilla-lif`, `proxy-clif`, ... (run folder names, CSV and JSON keys).
    pub fn key(&self) -> String {
        match self.neuron {
            None => self.algo.as_str().to_string(),
            Some(n) => format!("{}-{}", self.algo.as_str(), n.as_str()),
        }
    }

    /// The paper's row names: `ANN (TD3)`, `Vanilla LIF`, `PT-LIF`.
    pub fn label(&self) -> String {
        match (self.algo, self.neuron) {
            (Algo::Ann, _) => "ANN (TD3)".to_string(),
            (Algo::Vanilla, Some(n)) => format!("Vanilla {}", n.label()),
            (Algo::Proxy, Some(n)) => format!("PT-{}", n.label()),
            (a, None) => a.as_str().to_string(),
        }
    }

    /// Sort key for rows: the ANN first, then vanilla, then proxy, each by neuron (Ord does exactly this).
    pub fn order(&self) -> (Algo, Option<Neuron>) {
        (self.algo, self.neuron)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// The paper's environments in its column order; others follow alphabetically.
pub const PAPER_ENVS: [&str; 5] =
    ["InvertedDoublePendulum-v4", "Ant-v4", "HalfCheetah-v4", "Hopper-v4", "Walker2d-v4"];

/// Sort key for environment columns.
pub fn env_order(env: &str) -> (usize, String) {
    (PAPER_ENVS.iter().position(|e| *e == env).unwrap_or(PAPER_ENVS.len()), env.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_labels() {
        assert_eq!(Method::ANN.key(), "ann");
        assert_eq!(Method::new(Algo::Ann, Neuron::Clif), Method::ANN);
        assert_eq!(Method::new(Algo::Vanilla, Neuron::Clif).key(), "vanilla-clif");
        assert_eq!(Method::new(Algo::Proxy, Neuron::Lif).label(), "PT-LIF");
        assert_eq!(Method::new(Algo::Vanilla, Neuron::Dn).label(), "Vanilla DN");
    }

    #[test]
    fn rows_and_columns_sort_as_the_paper() {
        let mut m = [
            Method::new(Algo::Proxy, Neuron::Lif),
            Method::new(Algo::Vanilla, Neuron::Dn),
            Method::ANN,
            Method::new(Algo::Vanilla, Neuron::Lif),
        ];
        m.sort();
        let keys: Vec<_> = m.iter().map(Method::key).collect();
        assert_eq!(keys, ["ann", "vanilla-lif", "vanilla-dn", "proxy-lif"]);
        let mut envs = vec!["Pendulum-v1", "Hopper-v4", "InvertedDoublePendulum-v4", "Ant-v5"];
        envs.sort_by_key(|e| env_order(e));
        assert_eq!(envs, ["InvertedDoublePendulum-v4", "Hopper-v4", "Ant-v5", "Pendulum-v1"]);
    }
}
