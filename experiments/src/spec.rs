//! Sweep specifications (TOML) and their expansion into runs.
//!
//! ```toml
//! description = "what this grid is for"
//! envs = ["HalfCheetah-v4", "Hopper-v4"]
//! algos = ["ann", "vanilla", "proxy"]
//! neurons = ["lif", "clif", "dn"]      # crossed with the spiking algorithms; ann runs once per env x seed
//! bases = ["td3", "sac"]               # the RL algorithm under each (`train --base`); default ["td3"]
//! seeds = 5                            # 0..5, or an explicit list: [0, 1, 2]
//! group_seeds = false                  # true: each configuration's seeds in one `train --sync --seeds` process
//!
//! [train]                              # options of `spikerl train` for every run (`_` or `-` in names)
//! steps = 1_000_000
//! sync = true                          # flags: true passes `--sync`, false leaves it out
//! snn_hidden = [256, 256]              # arrays are passed comma separated: `--snn-hidden 256,256`
//!
//! [[override]]                         # more options for the runs it selects; later entries win
//! env = "InvertedDoublePendulum-v4"    # selectors: env, algo, neuron, base; a string or a list; absent = all
//! algo = "proxy"
//! train = { proxy_lr = 0.003 }
//!
//! [slurm]                              # --backend slurm: resources of each array task (all optional)
//! partition = "cpu"
//! time = "08:00:00"
//!
//! [k8s]                                # --backend k8s: the Indexed Job (claim required)
//! claim = "spikerl-sweeps"
//! ```
//!
//! Every run is named after its grid point, `{env}/{method}/seed{N}` (`method` = `ann`, `vanilla-lif`,
//! `proxy-clif`, ... on TD3; `sac-ann`, `ddpg-proxy-lif`, ... on the other bases), so the same spec
//! always maps to the same folders.

use crate::method::{Algo, Base, Method, Neuron};
use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::Path;

/// A sweep specification as written in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Free text, repeated in the sweep state file.
    #[serde(default)]
    pub description: String,
    /// Environment ids (`spikerl env info --env ID`).
    pub envs: Vec<String>,
    /// Algorithms: ann, vanilla, proxy.
    pub algos: Vec<Algo>,
    /// Neuron types, crossed with the spiking algorithms (required when any is listed).
    #[serde(default)]
    pub neurons: Vec<Neuron>,
    /// RL algorithms under every method (`spikerl train --base`): td3, sac, ddpg. Default: td3 alone, the
    /// grid of a spec written before the axis existed.
    #[serde(default = "default_bases")]
    pub bases: Vec<Base>,
    /// A count N (seeds 0..N) or a list of seeds.
    pub seeds: Seeds,
    /// Options of `spikerl train` given to every run.
    #[serde(default)]
    pub train: toml::Table,
    /// Options for selected runs, applied after `train` in file order.
    #[serde(default, rename = "override")]
    pub overrides: Vec<Override>,
    /// Train the seeds of each configuration together, in one `spikerl train --sync --seeds` process (one
    /// stacked ensemble on CUDA): needs `sync = true`. The run folders are the same.
    #[serde(default)]
    pub group_seeds: bool,
    /// How `--backend slurm` submits the sweep (one job array).
    #[serde(default)]
    pub slurm: SlurmSection,
    /// How `--backend k8s` submits the sweep (one Indexed Job); required for that backend.
    pub k8s: Option<K8sSection>,
}

/// `[slurm]`: the resources of each array task (one run, or one configuration's seeds with
/// `group_seeds`). Every field is optional; the cluster's defaults apply to what is left out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSection {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--cpus-per-task`; default: the cores one run keeps busy (its `threads`, plus its actors unless
    /// `sync`).
    pub cpus_per_task: Option<u32>,
    /// GPUs per task (`--gres=gpu:N`); default 1 when the runs train on `device = "cuda"`, else none.
    pub gpus: Option<u32>,
    /// `--mem`, e.g. "8G".
    pub mem: Option<String>,
    /// `--time`, the wall-time limit of one life of a task, e.g. "04:00:00" or "1-00:00:00". A run that
    /// needs longer is stopped before the limit, checkpoints, and continues in the requeued task.
    pub time: Option<String>,
    /// Seconds before the time limit at which Slurm sends the task SIGTERM (`--signal=B:TERM@N`): enough
    /// to write a checkpoint (default 300).
    pub stop_before_limit_secs: Option<u32>,
    /// `--job-name`; default `spikerl-sweep-{name of DIR}`.
    pub job_name: Option<String>,
    /// The spikerl binary the tasks run, as the compute nodes see it; default: this binary.
    pub binary: Option<std::path::PathBuf>,
    /// More `#SBATCH` lines, each one sbatch option, e.g. ["--qos=long", "--constraint=avx2"].
    #[serde(default)]
    pub extra: Vec<String>,
}

/// `[k8s]`: the Indexed Job that `--backend k8s` makes, one completion index per task.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sSection {
    /// The PersistentVolumeClaim holding the sweep folder (ReadWriteMany when tasks share nodes).
    pub claim: String,
    /// Where pods mount the claim (default "/sweeps").
    pub mount_path: Option<String>,
    /// The sweep folder inside the claim; default: the name of `--out`. Pods use
    /// `{mount_path}/{sub_path}`; `--out` must be the same folder as this machine sees it.
    pub sub_path: Option<String>,
    /// Container image with spikerl on PATH; default `spikerl-learner:latest` (`-cuda` with device =
    /// "cuda"), as deploy/build-images.sh names it.
    pub image: Option<String>,
    /// `imagePullPolicy` (default IfNotPresent).
    pub image_pull_policy: Option<String>,
    /// Namespace of the Job (default: kubectl's current one).
    pub namespace: Option<String>,
    /// The Job's name; default `spikerl-sweep-{name of DIR}`, with the submission's number appended.
    pub job_name: Option<String>,
    /// Pods at once (default: every task).
    pub parallelism: Option<u32>,
    /// CPU request per pod, e.g. "2" or "1500m"; default: the cores one run keeps busy.
    pub cpu: Option<String>,
    /// Memory request and limit per pod (default "4Gi").
    pub memory: Option<String>,
    /// GPUs per pod (`nvidia.com/gpu`); default 1 when the runs train on `device = "cuda"`, else none.
    pub gpus: Option<u32>,
    /// Failures of a task's pod (not counting evictions and preemptions) before its index is given up
    /// (`backoffLimitPerIndex`, default 3). Each retry resumes from the checkpoint.
    pub retries: Option<u32>,
    /// Seconds a stopped pod gets to checkpoint before it is killed (default 300).
    pub termination_grace_secs: Option<u32>,
    /// Pods run on nodes with these labels (e.g. { "nvidia.com/gpu.present" = "true" }).
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
}

fn default_bases() -> Vec<Base> {
    vec![Base::Td3]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Seeds {
    Count(u64),
    List(Vec<u64>),
}

/// A string or a list of strings in the spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: PartialEq> OneOrMany<T> {
    fn contains(&self, v: &T) -> bool {
        match self {
            OneOrMany::One(x) => x == v,
            OneOrMany::Many(xs) => xs.contains(v),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    pub env: Option<OneOrMany<String>>,
    pub algo: Option<OneOrMany<Algo>>,
    /// Selects spiking runs with these neurons (never an ann run).
    pub neuron: Option<OneOrMany<Neuron>>,
    /// Selects runs on these bases (options such as SAC's own belong to its runs only).
    pub base: Option<OneOrMany<Base>>,
    pub train: toml::Table,
}

impl Override {
    fn selects(&self, env: &str, method: &Method) -> bool {
        self.env.as_ref().is_none_or(|e| e.contains(&env.to_string()))
            && self.algo.as_ref().is_none_or(|a| a.contains(&method.algo))
            && self.neuron.as_ref().is_none_or(|n| method.neuron.is_some_and(|m| n.contains(&m)))
            && self.base.as_ref().is_none_or(|b| b.contains(&method.base))
    }
}

/// The value of one `spikerl train` option: a flag (`--sync`) or `--name value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OptValue {
    /// Always `true`: a flag that is present.
    Flag(bool),
    Value(String),
}

/// Resolved options of one run, by long option name (`snn-hidden`), without the grid point's own
/// (`--env`, `--algo`, `--neuron`, `--base`, `--seed`) and without `--out`.
pub type TrainOptions = BTreeMap<String, OptValue>;

/// Options the sweep sets itself: a spec may not give them.
/// (`resume`: whether a run continues from its checkpoint is the sweep's decision, run by run.)
pub const RESERVED: [&str; 11] =
    ["env", "algo", "neuron", "base", "seed", "seeds", "out", "no-progress", "metrics", "help", "resume"];

/// One grid point: what to run and where.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// Folder under the sweep's `--out`: `{env}/{method}/seed{N}`.
    pub id: String,
    pub env: String,
    pub method: Method,
    pub seed: u64,
    pub options: TrainOptions,
}

impl Spec {
    pub fn load(path: &Path) -> anyhow::Result<Spec> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Spec::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Spec> {
        Ok(toml::from_str(text)?)
    }

    pub fn seed_list(&self) -> Vec<u64> {
        match &self.seeds {
            Seeds::Count(n) => (0..*n).collect(),
            Seeds::List(l) => l.clone(),
        }
    }

    /// The rows of the grid, base by base: ann once, each spiking algorithm once per neuron type.
    pub fn methods(&self) -> Vec<Method> {
        let mut out = Vec::new();
        for &base in &self.bases {
            for &algo in &self.algos {
                if algo.is_spiking() {
                    out.extend(self.neurons.iter().map(|&n| Method::new(algo, n).on(base)));
                } else {
                    out.push(Method::ANN.on(base));
                }
            }
        }
        out
    }

    /// Every run of the grid, seed-major (all methods and envs at seed 0 first), so a sweep stopped half
    /// way has whole comparisons at fewer seeds rather than some methods only.
    pub fn expand(&self) -> anyhow::Result<Vec<RunPlan>> {
        self.validate()?;
        let base = options_from_table(&self.train).context("in [train]")?;
        let mut used = vec![false; self.overrides.len()];
        let mut plans = Vec::new();
        for seed in self.seed_list() {
            for env in &self.envs {
                for method in self.methods() {
                    let mut options = base.clone();
                    for (i, o) in self.overrides.iter().enumerate() {
                        if o.selects(env, &method) {
                            used[i] = true;
                            let extra = options_from_table(&o.train)
                                .with_context(|| format!("in override #{}", i + 1))?;
                            for (k, v) in extra {
                                match v {
                                    OptValue::Flag(false) => options.remove(&k),
                                    v => options.insert(k, v),
                                };
                            }
                        }
                    }
                    options.retain(|_, v| *v != OptValue::Flag(false));
                    // One libtorch thread per run unless the spec says otherwise: runs share the machine's
                    // cores (the scheduler sizes its concurrency from this).
                    options.entry("threads".to_string()).or_insert_with(|| OptValue::Value("1".to_string()));
                    ensure!(
                        !self.group_seeds || options.get("sync") == Some(&OptValue::Flag(true)),
                        "group_seeds trains the seeds of a configuration in one lockstep process: {env} {} needs sync = true",
                        method.key()
                    );
                    plans.push(RunPlan {
                        id: run_id(env, &method, seed),
                        env: env.clone(),
                        method,
                        seed,
                        options,
                    });
                }
            }
        }
        if let Some(i) = used.iter().position(|u| !u) {
            bail!("override #{} selects no run of the grid (check its env/algo/neuron/base)", i + 1);
        }
        Ok(plans)
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(!self.envs.is_empty(), "`envs` is empty");
        ensure!(!self.algos.is_empty(), "`algos` is empty");
        ensure!(!self.bases.is_empty(), "`bases` is empty (leave it out for td3 alone)");
        for env in &self.envs {
            ensure!(
                !env.is_empty()
                    && env.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                    && !env.starts_with('.'),
                "environment id {env:?} is not a plain name"
            );
        }
        if self.algos.iter().any(|a| a.is_spiking()) {
            ensure!(!self.neurons.is_empty(), "`neurons` is empty but spiking algorithms are listed");
        }
        let seeds = self.seed_list();
        ensure!(!seeds.is_empty(), "`seeds` is empty");
        no_duplicates("envs", &self.envs)?;
        no_duplicates("algos", &self.algos)?;
        no_duplicates("neurons", &self.neurons)?;
        no_duplicates("bases", &self.bases)?;
        no_duplicates("seeds", &seeds)?;
        Ok(())
    }
}

fn no_duplicates<T: Ord + std::fmt::Debug>(what: &str, items: &[T]) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for i in items {
        ensure!(seen.insert(i), "`{what}` lists {i:?} twice");
    }
    Ok(())
}

/// `{env}/{method}/seed{N}`.
pub fn run_id(env: &str, method: &Method, seed: u64) -> String {
    format!("{env}/{}/seed{seed}", method.key())
}

/// TOML table -> train options: names with `_` become `--kebab-case`; booleans are flags (false: absent);
/// numbers and strings are values; arrays are joined with commas.
pub fn options_from_table(table: &toml::Table) -> anyhow::Result<TrainOptions> {
    let mut out = TrainOptions::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        ensure!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !name.starts_with('-'),
            "{key:?} is not an option name"
        );
        ensure!(
            !RESERVED.contains(&name.as_str()),
            "`{key}` is set by the sweep itself (the grid and --out decide it)"
        );
        let v = match value {
            toml::Value::Boolean(b) => OptValue::Flag(*b),
            toml::Value::Array(items) => {
                let parts = items
                    .iter()
                    .map(scalar)
                    .collect::<anyhow::Result<Vec<_>>>()
                    .with_context(|| format!("in `{key}`"))?;
                OptValue::Value(parts.join(","))
            }
            other => OptValue::Value(scalar(other).with_context(|| format!("in `{key}`"))?),
        };
        out.insert(name, v);
    }
    Ok(out)
}

fn scalar(v: &toml::Value) -> anyhow::Result<String> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        // Display is the shortest form that parses back to the same f64.
        toml::Value::Float(f) => f.to_string(),
        other => bail!("{} values cannot be passed on a command line", other.type_str()),
    })
}

impl RunPlan {
    /// The `spikerl train` arguments of this run writing into `dir`.
    pub fn train_args(&self, dir: &Path) -> Vec<OsString> {
        self.args_with(["--seed".into(), self.seed.to_string().into()], dir)
    }

    /// The configuration, `{env}/{method}` (the grid point without its seed): the folder holding its
    /// seeds' run folders.
    pub fn group_id(&self) -> String {
        format!("{}/{}", self.env, self.method.key())
    }

    /// The `spikerl train` arguments that train `seeds` of this run's configuration in one process, each
    /// into `dir/seed{N}` (`group_seeds`; the options must include `--sync`).
    pub fn group_train_args(&self, seeds: &[u64], dir: &Path) -> Vec<OsString> {
        let list = seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        self.args_with(["--seeds".into(), list.into()], dir)
    }

    fn args_with(&self, seed: [OsString; 2], dir: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "train".into(),
            "--env".into(),
            self.env.clone().into(),
            "--algo".into(),
            self.method.algo.as_str().into(),
        ];
        if let Some(n) = self.method.neuron {
            args.extend(["--neuron".into(), n.as_str().into()]);
        }
        // TD3 is train's default: leaving the flag out keeps TD3 runs' command lines as they were before
        // `--base` existed (and runnable by a binary without it).
        if self.method.base != Base::Td3 {
            args.extend(["--base".into(), self.method.base.as_str().into()]);
        }
        args.extend(seed);
        for (k, v) in &self.options {
            match v {
                OptValue::Flag(true) => args.push(format!("--{k}").into()),
                OptValue::Flag(false) => {}
                OptValue::Value(s) => args.extend([format!("--{k}").into(), s.into()]),
            }
        }
        args.extend(["--out".into(), dir.as_os_str().to_owned(), "--no-progress".into()]);
        args
    }

    pub fn option(&self, name: &str) -> Option<&str> {
        match self.options.get(name) {
            Some(OptValue::Value(s)) => Some(s),
            _ => None,
        }
    }

    pub fn flag(&self, name: &str) -> bool {
        self.options.get(name) == Some(&OptValue::Flag(true))
    }

    /// Whether it trains on a GPU (`device = "cuda"`): cluster tasks then ask for one.
    pub fn uses_cuda(&self) -> bool {
        self.option("device") == Some("cuda")
    }

    /// Cores one run keeps busy: its libtorch threads, plus one per actor process unless lockstep.
    /// (`--actors` defaults to 2 in `spikerl train`.)
    pub fn cores(&self) -> usize {
        let threads = self.option("threads").and_then(|t| t.parse().ok()).unwrap_or(1usize).max(1);
        let actors = if self.flag("sync") {
            0
        } else {
            self.option("actors").and_then(|a| a.parse().ok()).unwrap_or(2usize)
        };
        threads + actors
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const SPEC: &str = r#"
        envs = ["Hopper-v4", "Ant-v4"]
        algos = ["ann", "vanilla", "proxy"]
        neurons = ["lif", "dn"]
        seeds = 2

        [train]
        steps = 1_000
        sync = true
        snn_hidden = [64, 64]
        proxy-lr = 0.001

        [[override]]
        env = "Ant-v4"
        algo = ["proxy"]
        neuron = "dn"
        train = { proxy_lr = 3e-3, sync = false, actors = 3 }
    "#;

    #[test]
    fn grid_expands_seed_major_with_ann_once() {
        let plans = Spec::parse(SPEC).unwrap().expand().unwrap();
        // 2 seeds x 2 envs x (ann + 2 vanilla + 2 proxy)
        assert_eq!(plans.len(), 20);
        let ids: Vec<_> = plans.iter().take(6).map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "Hopper-v4/ann/seed0",
                "Hopper-v4/vanilla-lif/seed0",
                "Hopper-v4/vanilla-dn/seed0",
                "Hopper-v4/proxy-lif/seed0",
                "Hopper-v4/proxy-dn/seed0",
                "Ant-v4/ann/seed0"
            ]
        );
        assert_eq!(plans[10].id, "Hopper-v4/ann/seed1");
        let unique: BTreeSet<_> = plans.iter().map(|p| &p.id).collect();
        assert_eq!(unique.len(), plans.len());
    }

    #[test]
    fn options_merge_and_overrides_apply_only_where_selected() {
        let plans = Spec::parse(SPEC).unwrap().expand().unwrap();
        let get = |id: &str| plans.iter().find(|p| p.id == id).unwrap();
        let hopper = get("Hopper-v4/proxy-dn/seed1");
        assert_eq!(hopper.option("proxy-lr"), Some("0.001"));
        assert_eq!(hopper.option("snn-hidden"), Some("64,64"));
        assert_eq!(hopper.option("threads"), Some("1"));
        assert!(hopper.flag("sync"));
        assert_eq!(hopper.cores(), 1);
        let ant = get("Ant-v4/proxy-dn/seed0");
        assert_eq!(ant.option("proxy-lr"), Some("0.003"));
        assert!(!ant.flag("sync") && !ant.options.contains_key("sync"));
        assert_eq!(ant.cores(), 4);
        assert_eq!(get("Ant-v4/proxy-lif/seed0").option("proxy-lr"), Some("0.001"));
        assert_eq!(get("Ant-v4/ann/seed0").option("proxy-lr"), Some("0.001"));
    }

    #[test]
    fn command_line_of_a_run() {
        let plans = Spec::parse(SPEC).unwrap().expand().unwrap();
        let args: Vec<String> =
            plans[3].train_args(Path::new("/r/x")).into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(
            args.join(" "),
            "train --env Hopper-v4 --algo proxy --neuron lif --seed 0 --proxy-lr 0.001 --snn-hidden 64,64 \
             --steps 1000 --sync --threads 1 --out /r/x --no-progress"
        );
        let ann: Vec<String> =
            plans[0].train_args(Path::new("d")).into_iter().map(|a| a.into_string().unwrap()).collect();
        assert!(!ann.contains(&"--neuron".to_string()));
    }

    #[test]
    fn grouped_seeds_share_one_command_line_and_need_sync() {
        let text = "group_seeds = true\nenvs=[\"Pendulum-v1\"]\nalgos=[\"proxy\"]\nneurons=[\"lif\"]\nseeds=[3, 7]\n[train]\nsync=true";
        let plans = Spec::parse(text).unwrap().expand().unwrap();
        assert_eq!(plans[0].group_id(), "Pendulum-v1/proxy-lif");
        let args: Vec<String> = plans[0]
            .group_train_args(&[3, 7], Path::new("/r/Pendulum-v1/proxy-lif"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args.join(" "),
            "train --env Pendulum-v1 --algo proxy --neuron lif --seeds 3,7 --sync --threads 1 --out /r/Pendulum-v1/proxy-lif --no-progress"
        );
        let no_sync = text.replace("sync=true", "steps=10");
        let err = format!("{:#}", Spec::parse(&no_sync).unwrap().expand().unwrap_err());
        assert!(err.contains("needs sync = true"), "{err}");
        let err = format!(
            "{:#}",
            Spec::parse(&format!("{text}\nseeds=\"0-3\"")).and_then(|s| s.expand()).unwrap_err()
        );
        assert!(err.contains("set by the sweep"), "{err}");
    }

    #[test]
    fn cluster_sections_parse_and_refuse_unknown_fields() {
        let base = "envs=[\"Pendulum-v1\"]\nalgos=[\"ann\"]\nseeds=1\n";
        let spec = Spec::parse(&format!(
            "{base}[slurm]\npartition=\"cpu\"\ncpus_per_task=2\ntime=\"04:00:00\"\nextra=[\"--qos=long\"]\n\
             [k8s]\nclaim=\"sweeps\"\nparallelism=4\nnode_selector={{ \"nvidia.com/gpu.present\" = \"true\" }}\n"
        ))
        .unwrap();
        assert_eq!(spec.slurm.partition.as_deref(), Some("cpu"));
        assert_eq!(spec.slurm.extra, ["--qos=long"]);
        let k8s = spec.k8s.unwrap();
        assert_eq!((k8s.claim.as_str(), k8s.parallelism), ("sweeps", Some(4)));
        assert_eq!(k8s.node_selector["nvidia.com/gpu.present"], "true");
        assert!(Spec::parse(base).unwrap().k8s.is_none());
        for bad in ["[slurm]\npartiton=\"cpu\"", "[k8s]\nclaim=\"c\"\ngpu=1", "[k8s]\nimage=\"x\""] {
            assert!(Spec::parse(&format!("{base}{bad}")).is_err(), "{bad}");
        }
        let err = format!(
            "{:#}",
            Spec::parse(&format!("{base}[train]\nresume=true")).unwrap().expand().unwrap_err()
        );
        assert!(err.contains("set by the sweep"), "{err}");
    }

    #[test]
    fn seeds_as_a_list() {
        let s = Spec::parse("envs=[\"Pendulum-v1\"]\nalgos=[\"ann\"]\nseeds=[3, 7]").unwrap();
        let ids: Vec<_> = s.expand().unwrap().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["Pendulum-v1/ann/seed3", "Pendulum-v1/ann/seed7"]);
    }

    #[test]
    fn bad_specs_are_refused_with_a_reason() {
        let err = |text: &str| format!("{:#}", Spec::parse(text).and_then(|s| s.expand()).unwrap_err());
        assert!(err("envs=[\"A-v1\"]\nalgos=[\"proxy\"]\nseeds=1").contains("neurons"));
        assert!(err("envs=[\"A-v1\"]\nalgos=[\"ann\"]\nseeds=[1,1]").contains("twice"));
        assert!(err("envs=[\"../x\"]\nalgos=[\"ann\"]\nseeds=1").contains("plain name"));
        assert!(
            err("envs=[\"A-v1\"]\nalgos=[\"ann\"]\nseeds=1\n[train]\nseed=3").contains("set by the sweep")
        );
        assert!(err("envs=[\"A-v1\"]\nalgos=[\"ann\"]\nseeds=1\n[train]\nx={a=1}").contains("command line"));
        assert!(err("envs=[\"A-v1\"]\nalgos=[\"ann\"]\nseeds=1\ntypo=1").contains("typo"));
        assert!(
            err("envs=[\"A-v1\"]\nalgos=[\"ann\"]\nseeds=1\n[[override]]\nneuron=\"lif\"\ntrain={steps=1}")
                .contains("selects no run")
        );
        assert!(err("envs=[\"A-v1\"]\nalgos=[\"sac\"]\nseeds=1").contains("sac"));
    }

    pub(crate) const BASES: &str = r#"
        envs = ["Hopper-v4"]
        algos = ["ann", "proxy"]
        neurons = ["lif"]
        bases = ["td3", "sac", "ddpg"]
        seeds = 2

        [train]
        sync = true

        [[override]]
        base = "sac"
        train = { steps = 500 }
    "#;

    fn words(args: Vec<OsString>) -> String {
        args.into_iter().map(|a| a.into_string().unwrap()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn bases_cross_every_method_and_leave_td3_as_it_was() {
        let plans = Spec::parse(BASES).unwrap().expand().unwrap();
        // 2 seeds x 1 env x 3 bases x (ann + proxy-lif), seed-major, base by base within a seed.
        assert_eq!(plans.len(), 12);
        let ids: Vec<_> = plans.iter().take(6).map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "Hopper-v4/ann/seed0",
                "Hopper-v4/proxy-lif/seed0",
                "Hopper-v4/sac-ann/seed0",
                "Hopper-v4/sac-proxy-lif/seed0",
                "Hopper-v4/ddpg-ann/seed0",
                "Hopper-v4/ddpg-proxy-lif/seed0"
            ]
        );
        assert_eq!(plans[6].id, "Hopper-v4/ann/seed1");
        // Without the axis (and the SAC override) the grid is TD3's alone, named as the same runs with it.
        let text = BASES.replace(r#"bases = ["td3", "sac", "ddpg"]"#, "").replace("base = \"sac\"", "");
        let plain = Spec::parse(&text).unwrap().expand().unwrap();
        let plain_ids: Vec<_> = plain.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            plain_ids,
            [
                "Hopper-v4/ann/seed0",
                "Hopper-v4/proxy-lif/seed0",
                "Hopper-v4/ann/seed1",
                "Hopper-v4/proxy-lif/seed1"
            ]
        );
        // The base selector: only SAC's runs got the override.
        let steps: Vec<_> =
            plans.iter().filter(|p| p.option("steps").is_some()).map(|p| p.id.as_str()).collect();
        assert_eq!(
            steps,
            [
                "Hopper-v4/sac-ann/seed0",
                "Hopper-v4/sac-proxy-lif/seed0",
                "Hopper-v4/sac-ann/seed1",
                "Hopper-v4/sac-proxy-lif/seed1"
            ]
        );
    }

    #[test]
    fn base_flag_only_on_runs_of_other_bases() {
        let plans = Spec::parse(BASES).unwrap().expand().unwrap();
        let get = |id: &str| plans.iter().find(|p| p.id == id).unwrap();
        assert_eq!(
            words(get("Hopper-v4/proxy-lif/seed0").train_args(Path::new("/r/x"))),
            "train --env Hopper-v4 --algo proxy --neuron lif --seed 0 --sync --threads 1 --out /r/x --no-progress"
        );
        assert_eq!(
            words(get("Hopper-v4/sac-proxy-lif/seed1").train_args(Path::new("/r/y"))),
            "train --env Hopper-v4 --algo proxy --neuron lif --base sac --seed 1 --steps 500 --sync --threads 1 \
             --out /r/y --no-progress"
        );
        let ddpg_ann = get("Hopper-v4/ddpg-ann/seed0");
        assert_eq!(ddpg_ann.group_id(), "Hopper-v4/ddpg-ann");
        assert_eq!(
            words(ddpg_ann.group_train_args(&[0, 1], Path::new("/r/Hopper-v4/ddpg-ann"))),
            "train --env Hopper-v4 --algo ann --base ddpg --seeds 0,1 --sync --threads 1 --out /r/Hopper-v4/ddpg-ann \
             --no-progress"
        );
        for p in &plans {
            let has_flag = words(p.train_args(Path::new("d"))).contains("--base");
            assert_eq!(has_flag, p.method.base != Base::Td3, "{}", p.id);
        }
    }

    #[test]
    fn bad_bases_are_refused_naming_the_valid_ones() {
        let err = |text: &str| format!("{:#}", Spec::parse(text).and_then(|s| s.expand()).unwrap_err());
        let grid = "envs=[\"A-v1\"]\nalgos=[\"ann\"]\nseeds=1\n";
        let unknown = err(&format!("{grid}bases=[\"td3\", \"ppo\"]"));
        assert!(["ppo", "td3", "sac", "ddpg"].iter().all(|w| unknown.contains(w)), "{unknown}");
        assert!(err(&format!("{grid}bases=[]")).contains("`bases` is empty"));
        assert!(err(&format!("{grid}bases=[\"sac\", \"sac\"]")).contains("twice"));
        assert!(err(&format!("{grid}[train]\nbase=\"sac\"")).contains("set by the sweep"));
        assert!(
            err(&format!("{grid}[[override]]\nbase=\"ddpg\"\ntrain={{steps=1}}")).contains("selects no run")
        );
    }
}
