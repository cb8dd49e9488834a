//! What `report.md` and `report.html` say, as document blocks ([`doc`](super::doc) renders them):
//! the number formats, Table 1, the paper's numbers, the energy tables and the page around them.

use super::{MethodSummary, Summary, paper};
use crate::report::doc::Block;

/// Returns with a precision that fits their size (the paper prints integers).
fn fmt_ret(x: f64, scale: f64) -> String {
    let decimals = if scale.abs() >= 100.0 {
        0
    } else if scale.abs() >= 1.0 {
        1
    } else {
        2
    };
    format!("{x:.decimals$}")
}

fn fmt_mean_std(mean: f64, std: f64) -> String {
    format!("{} ± {}", fmt_ret(mean, mean), fmt_ret(std, mean))
}

fn fmt_pct(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{:+.1}%", x * 100.0))
}

fn fmt_pct_plain(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{:.1}%", x * 100.0))
}

fn fmt_int(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

fn fmt_range(lo: f64, hi: f64) -> String {
    if lo == hi { fmt_int(lo) } else { format!("{}–{}", fmt_int(lo), fmt_int(hi)) }
}

fn fmt_opt(x: Option<f64>, decimals: usize) -> String {
    x.map_or("—".into(), |x| format!("{x:.decimals$}"))
}

/// "x/4 envs" when a figure used fewer environments than the method has.
fn with_envs(value: String, used: usize, of: usize) -> String {
    if used > 0 && used < of { format!("{value} ({used}/{of} envs)") } else { value }
}

pub(super) fn table1_blocks(s: &Summary) -> Vec<Block> {
    let mut header = vec!["Method".to_string()];
    header.extend(s.envs.iter().cloned());
    header
        .extend(["APG vs ANN", "PT gain vs vanilla", "Seed spread", "Seeds", "Steps run"].map(String::from));
    let mut rows = Vec::new();
    for ms in &s.method_summaries {
        let mut row = vec![ms.label.clone()];
        for env in &s.envs {
            row.push(
                s.table1
                    .iter()
                    .find(|c| &c.env == env && c.method == ms.method)
                    .map_or("—".into(), |c| fmt_mean_std(c.mean, c.std)),
            );
        }
        row.push(with_envs(fmt_pct(ms.apg), ms.apg_envs, ms.envs));
        row.push(with_envs(fmt_pct(ms.gain_over_vanilla), ms.gain_envs, ms.envs));
        row.push(fmt_pct_plain(ms.mean_seed_spread));
        row.push(if ms.seeds_min == ms.seeds_max {
            ms.seeds_min.to_string()
        } else {
            format!("{}–{}", ms.seeds_min, ms.seeds_max)
        });
        row.push(fmt_range(ms.train_steps_min, ms.train_steps_max));
        rows.push(row);
    }
    vec![Block::Table { header, rows }]
}

fn paper_blocks(s: &Summary) -> Vec<Block> {
    let envs: Vec<&String> =
        s.envs.iter().filter(|e| s.table1.iter().any(|c| &c.env == *e && c.paper_mean.is_some())).collect();
    let rows_with_paper: Vec<&MethodSummary> = s
        .method_summaries
        .iter()
        .filter(|m| s.table1.iter().any(|c| c.method == m.method && c.paper_mean.is_some()))
        .collect();
    if envs.is_empty() || rows_with_paper.is_empty() {
        return vec![Block::Para(
            "The paper publishes no numbers for this grid's cells (its Table 1 covers InvertedDoublePendulum-v4, Ant-v4, \
             HalfCheetah-v4, Hopper-v4 and Walker2d-v4 with ANN, vanilla LIF/CLIF/DN and PT-LIF/CLIF/DN, all on TD3)."
                .into(),
        )];
    }
    let mut header = vec!["Method (paper)".to_string()];
    header.extend(envs.iter().map(|e| e.to_string()));
    header.extend(["APG vs ANN", "PT gain vs vanilla", "Seed spread"].map(String::from));
    let mut rows = Vec::new();
    for ms in rows_with_paper {
        let mut row = vec![format!("{} (paper)", ms.label)];
        for env in &envs {
            let c = s.table1.iter().find(|c| &&c.env == env && c.method == ms.method);
            row.push(c.and_then(|c| Some(fmt_mean_std(c.paper_mean?, c.paper_std?))).unwrap_or("—".into()));
        }
        row.push(fmt_pct(ms.paper_apg));
        row.push(fmt_pct(ms.paper_gain_over_vanilla));
        row.push(fmt_pct_plain(ms.paper_mean_seed_spread));
        rows.push(row);
    }
    let mut blocks = vec![
        Block::Para(
            "**The paper's published numbers** (Xu et al., NeurIPS 2025, Table 1: 1,000,000 training steps after 25,000 \
             random ones, 5 seeds) for the cells of this grid. These are not our runs. APG, gain and spread here are \
             computed from the published numbers over the same cells as above. The paper ran TD3 only: SAC and DDPG \
             rows have no published numbers."
                .into(),
        ),
        Block::Table { header, rows },
    ];
    if !s.paper_protocol {
        blocks.push(Block::Note(
            "This grid's budget differs from the paper's protocol (steps, random steps or seeds): the published numbers \
             are a reference point, not an expected result."
                .into(),
        ));
    }
    blocks
}

fn energy_blocks(s: &Summary) -> Vec<Block> {
    let mut blocks = Vec::new();
    for env in &s.envs {
        let rows: Vec<Vec<String>> = s
            .energy
            .iter()
            .filter(|r| &r.env == env)
            .map(|r| {
                vec![
                    r.label.clone(),
                    r.sops_per_inference.map_or("—".into(), fmt_int),
                    r.macs_per_inference.map_or("—".into(), fmt_int),
                    fmt_pct_plain(r.firing_rate),
                    fmt_opt(r.energy_nj_per_inference, 2),
                    r.ann_energy_ratio.map_or("—".into(), |x| format!("{x:.1}x")),
                    r.n.to_string(),
                ]
            })
            .collect();
        blocks.push(Block::Heading(3, env.clone()));
        blocks.push(Block::Table {
            header: [
                "Method",
                "SOPs/inference",
                "MACs/inference",
                "Firing rate",
                "Energy (nJ/inference)",
                "ANN energy / this",
                "Seeds",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        });
    }
    let p = paper::energy();
    let paper_lines = p
        .iter()
        .map(|f| {
            let fr =
                f.firing_rate.map_or(String::new(), |r| format!(", firing rate about {:.0}%", r * 100.0));
            format!("{}: {}, about {:.0} nJ per inference{fr}", f.method.label(), f.ops, f.energy_nj)
        })
        .collect::<Vec<_>>()
        .join("; ");
    blocks.push(Block::Note(format!(
        "Energy model (the paper's, 45 nm): SNN = SOPs x 77 fJ, ANN = MACs x 3.97 pJ; from each run's last evaluation, \
         mean over seeds. Firing rate: spikes per neuron per time step of the hidden and output layers over the evaluation episodes. \
         **The paper reports** (environment not stated): {paper_lines}."
    )));
    blocks
}

/// The whole page, section by section.
pub(super) fn report_blocks(s: &Summary) -> Vec<Block> {
    let mut b = vec![Block::Heading(1, "spikerl report".into())];
    b.push(intro(s));
    b.push(Block::Heading(2, "Table 1: max average return".into()));
    b.extend(table1_section(s));
    if !s.curves.is_empty() {
        b.extend(curves_section(s));
    }
    if !s.energy.is_empty() {
        b.push(Block::Heading(2, "Energy per inference".into()));
        b.extend(energy_blocks(s));
    }
    if !s.excluded.is_empty() {
        b.push(Block::Heading(2, "Run folders not counted".into()));
        b.push(Block::List(
            s.excluded.iter().map(|e| format!("`{}` ({}): {}", e.dir, e.status, e.reason)).collect(),
        ));
    }
    if !s.notes.is_empty() {
        b.push(Block::Heading(2, "Notes".into()));
        b.push(Block::List(s.notes.clone()));
    }
    b.push(Block::Heading(2, "Files".into()));
    b.push(files_list());
    b
}

/// What was counted, from where, and when.
fn intro(s: &Summary) -> Block {
    let not_counted = match s.excluded.len() {
        0 => String::new(),
        n => format!(" ({n} run folder{} not counted, listed at the end)", if n == 1 { "" } else { "s" }),
    };
    Block::Para(format!(
        "{} completed runs from `{}`{not_counted}. Generated {}.",
        s.completed_runs, s.runs_dir, s.generated_at
    ))
}

/// Table 1 with how its figures are computed, then the paper's published numbers.
fn table1_section(s: &Summary) -> Vec<Block> {
    if s.table1.is_empty() {
        return vec![Block::Para("No completed runs: nothing to tabulate.".into())];
    }
    let mut b = table1_blocks(s);
    b.push(Block::Note(
        "Cells: per run the maximum over evaluations of the average evaluation return, then mean ± std over seeds \
         (population std, ddof = 0, as numpy.std in the paper's code; summary.json also has the sample std). \
         APG vs ANN: mean over environments of return / ANN return − 1 (computed as (R − R_ANN) / |R_ANN| so that \
         it keeps its sign for negative returns). PT gain vs vanilla: the same with the vanilla SNN of the same \
         neuron as the base. Both compare within a row's RL algorithm: SAC and DDPG rows (named after their base; \
         unprefixed rows are TD3's) against the ANN and vanilla rows of the same base. Seed spread: std / |mean|, \
         averaged over environments. Steps run: training steps at the last evaluation (after the random ones), \
         min–max over runs."
            .into(),
    ));
    b.push(Block::Heading(3, "Published numbers".into()));
    b.extend(paper_blocks(s));
    b
}

/// One plot per environment, each linking to its SVG.
fn curves_section(s: &Summary) -> Vec<Block> {
    let mut b = vec![
        Block::Heading(2, "Learning curves".into()),
        Block::Para(
            "Average evaluation return against environment steps: mean over seeds (line) ± one population std (band); \
             vanilla SNNs dashed, PT solid, one colour per neuron (lighter for SAC, darker for DDPG). Click for the SVG."
                .into(),
        ),
    ];
    for env in &s.envs {
        b.push(Block::Image {
            src: format!("plots/{env}.png"),
            alt: format!("learning curves on {env}"),
            link: Some(format!("plots/{env}.svg")),
        });
    }
    b
}

fn files_list() -> Block {
    Block::List(
        [
            "`table1.csv`: one row per environment x method (per-seed values, mean, both stds, spread, steps, the paper's numbers)",
            "`methods.csv`: APG, gain over vanilla and seed spread per method, ours and the paper's",
            "`energy.csv`: the energy table",
            "`curves.csv`: the averaged learning curves (step, mean, std, seeds)",
            "`runs.csv`: every counted run (folder, seed, max average return, steps)",
            "`summary.json`: all of the above in one file",
            "`plots/ENV.png`, `plots/ENV.svg`: learning curves",
        ]
        .map(String::from)
        .to_vec(),
    )
}
