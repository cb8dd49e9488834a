//! What a table row is: the RL algorithm underneath (TD3, SAC, DDPG), an actor algorithm and, for the
//! spiking ones, a neuron type. Names, labels and the order rows appear in are defined here once, for
//! specs, run folders and reports alike.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `spikerl train --base`: the RL algorithm the actor algorithm runs on. A manifest without
/// `config.base` (written before the option existed) is TD3.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Base {
    /// The paper's algorithm: every name stays as it was before `--base` existed.
    #[default]
    Td3,
    Sac,
    Ddpg,
}

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

impl Base {
    pub const ALL: [Base; 3] = [Base::Td3, Base::Sac, Base::Ddpg];

    pub fn as_str(self) -> &'static str {
        match self {
            Base::Td3 => "td3",
            Base::Sac => "sac",
            Base::Ddpg => "ddpg",
        }
    }

    pub fn parse(s: &str) -> Option<Base> {
        Base::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// How row names spell it: `TD3`, `SAC`, `DDPG`.
    pub fn label(self) -> &'static str {
        match self {
            Base::Td3 => "TD3",
            Base::Sac => "SAC",
            Base::Ddpg => "DDPG",
        }
    }
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

/// One row of Table 1: the ANN baseline, or a spiking algorithm with its neuron, on one base algorithm.
/// Rows of different bases are different methods: they are never grouped together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Method {
    /// First, so that rows sort base by base: TD3's (the paper's) first, then SAC's, then DDPG's.
    pub base: Base,
    pub algo: Algo,
    /// `None` exactly for [`Algo::Ann`] (`--neuron` is ignored there).
    pub neuron: Option<Neuron>,
}

impl Method {
    /// On TD3; [`Method::on`] for another base.
    pub fn new(algo: Algo, neuron: Neuron) -> Method {
        Method { base: Base::Td3, algo, neuron: algo.is_spiking().then_some(neuron) }
    }

    /// The TD3 ANN, the paper's baseline row.
    pub const ANN: Method = Method { base: Base::Td3, algo: Algo::Ann, neuron: None };

    /// The same method on `base`.
    pub fn on(self, base: Base) -> Method {
        Method { base, ..self }
    }

    /// The ANN row this method's APG is measured against: the ANN on the same base.
    pub fn ann(&self) -> Method {
        Method::ANN.on(self.base)
    }

    /// Machine name (run folder names, CSV and JSON keys): `ann`, `vanilla-lif`, `proxy-clif`, ... on
    /// TD3, exactly as before `--base` existed; other bases put theirs in front: `sac-proxy-lif`,
    /// `ddpg-ann`.
    pub fn key(&self) -> String {
        let own = match self.neuron {
            None => self.algo.as_str().to_string(),
            Some(n) => format!("{}-{}", self.algo.as_str(), n.as_str()),
        };
        match self.base {
            Base::Td3 => own,
            b => format!("{}-{own}", b.as_str()),
        }
    }

    /// Row names: the paper's on TD3 (`ANN (TD3)`, `Vanilla LIF`, `PT-LIF`); other bases put theirs in
    /// front (`SAC ANN`, `SAC Vanilla LIF`, `DDPG PT-LIF`).
    pub fn label(&self) -> String {
        let own = match (self.algo, self.neuron) {
            (Algo::Ann, _) => "ANN".to_string(),
            (Algo::Vanilla, Some(n)) => format!("Vanilla {}", n.label()),
            (Algo::Proxy, Some(n)) => format!("PT-{}", n.label()),
            (a, None) => a.as_str().to_string(),
        };
        match (self.base, self.algo) {
            // The paper names its baseline row after its base.
            (Base::Td3, Algo::Ann) => "ANN (TD3)".to_string(),
            (Base::Td3, _) => own,
            (b, _) => format!("{} {own}", b.label()),
        }
    }

    /// Sort key for rows: by base (TD3 first), then the ANN, vanilla, proxy, each by neuron (Ord does
    /// exactly this).
    pub fn order(&self) -> (Base, Algo, Option<Neuron>) {
        (self.base, self.algo, self.neuron)
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
        assert_eq!(Method::ANN.label(), "ANN (TD3)");
    }

    #[test]
    fn other_bases_prefix_keys_and_labels_td3_keeps_its_own() {
        let pt = Method::new(Algo::Proxy, Neuron::Lif);
        assert_eq!(pt.on(Base::Td3), pt);
        assert_eq!((pt.key(), pt.label()), ("proxy-lif".to_string(), "PT-LIF".to_string()));
        let sac = pt.on(Base::Sac);
        assert_eq!((sac.key(), sac.label()), ("sac-proxy-lif".to_string(), "SAC PT-LIF".to_string()));
        let ddpg_ann = Method::ANN.on(Base::Ddpg);
        assert_eq!((ddpg_ann.key(), ddpg_ann.label()), ("ddpg-ann".to_string(), "DDPG ANN".to_string()));
        assert_eq!(Method::new(Algo::Vanilla, Neuron::Clif).on(Base::Sac).label(), "SAC Vanilla CLIF");
        assert_eq!(sac.ann(), Method::ANN.on(Base::Sac));
        assert_ne!(sac, pt, "different bases are different rows");
        assert_eq!(Base::parse("ddpg"), Some(Base::Ddpg));
        assert_eq!(Base::parse("TD3"), None);
        assert_eq!(Base::default(), Base::Td3);
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
        // Base by base, TD3's rows first.
        let mut m =
            [Method::ANN.on(Base::Ddpg), m[3].on(Base::Sac), Method::ANN.on(Base::Sac), m[3], Method::ANN];
        m.sort();
        let keys: Vec<_> = m.iter().map(Method::key).collect();
        assert_eq!(keys, ["ann", "proxy-lif", "sac-ann", "sac-proxy-lif", "ddpg-ann"]);
        let mut envs = vec!["Pendulum-v1", "Hopper-v4", "InvertedDoublePendulum-v4", "Ant-v5"];
        envs.sort_by_key(|e| env_order(e));
        assert_eq!(envs, ["InvertedDoublePendulum-v4", "Hopper-v4", "Ant-v5", "Pendulum-v1"]);
    }
}
