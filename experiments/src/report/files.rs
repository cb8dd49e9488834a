//! The report's files in DIR: the plots, report.md and report.html, one CSV per table and summary.json.

use super::blocks::report_blocks;
use super::{Summary, doc, plot};
use anyhow::Context;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn num(x: Option<f64>) -> String {
    x.filter(|x| x.is_finite()).map_or(String::new(), |x| x.to_string())
}

fn csv(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = header.join(",");
    out.push('\n');
    for r in rows {
        let _ = writeln!(out, "{}", r.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
    }
    out
}

pub(super) fn write_report(out: &Path, s: &Summary) -> anyhow::Result<()> {
    let plots = out.join("plots");
    fs::create_dir_all(&plots).with_context(|| format!("creating {}", plots.display()))?;
    let write = |name: &str, text: String| {
        fs::write(out.join(name), text).with_context(|| format!("writing {}", out.join(name).display()))
    };
    write_plots(&plots, s)?;
    let blocks = report_blocks(s);
    write("report.md", doc::markdown(&blocks))?;
    write("report.html", doc::html("spikerl report", &blocks))?;
    write("table1.csv", table1_csv(s))?;
    write("methods.csv", methods_csv(s))?;
    write("energy.csv", energy_csv(s))?;
    write("curves.csv", curves_csv(s))?;
    write("runs.csv", runs_csv(s))?;
    write("summary.json", serde_json::to_string_pretty(s)? + "\n")?;
    Ok(())
}

/// `plots/ENV.png` and `plots/ENV.svg`: every method's learning curve on that environment.
fn write_plots(plots: &Path, s: &Summary) -> anyhow::Result<()> {
    for env in &s.envs {
        let series: Vec<plot::Series> = s
            .curves
            .iter()
            .filter(|c| &c.env == env)
            .map(|c| plot::Series { method: c.m, points: c.points.clone() })
            .collect();
        plot::learning_curves(&plots.join(env), &format!("{env}: mean ± std over seeds"), &series)?;
    }
    Ok(())
}

fn table1_csv(s: &Summary) -> String {
    csv(
        &[
            "env",
            "method",
            "label",
            "n_seeds",
            "seeds",
            "max_avg_returns",
            "mean",
            "std_pop",
            "std_sample",
            "seed_spread",
            "final_avg_return_mean",
            "train_steps_min",
            "train_steps_max",
            "paper_mean",
            "paper_std",
        ],
        s.table1.iter().map(|c| {
            vec![
                c.env.clone(),
                c.method.clone(),
                c.label.clone(),
                c.n_seeds.to_string(),
                c.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(";"),
                c.max_avg_returns.iter().map(f64::to_string).collect::<Vec<_>>().join(";"),
                num(Some(c.mean)),
                num(Some(c.std)),
                num(c.std_sample),
                num(c.seed_spread),
                num(Some(c.final_avg_return_mean)),
                num(Some(c.train_steps_min)),
                num(Some(c.train_steps_max)),
                num(c.paper_mean),
                num(c.paper_std),
            ]
        }),
    )
}

fn methods_csv(s: &Summary) -> String {
    csv(
        &[
            "method",
            "label",
            "envs",
            "apg",
            "apg_envs",
            "gain_over_vanilla",
            "gain_envs",
            "mean_seed_spread",
            "seeds_min",
            "seeds_max",
            "train_steps_min",
            "train_steps_max",
            "paper_apg",
            "paper_gain_over_vanilla",
            "paper_mean_seed_spread",
        ],
        s.method_summaries.iter().map(|m| {
            vec![
                m.method.clone(),
                m.label.clone(),
                m.envs.to_string(),
                num(m.apg),
                m.apg_envs.to_string(),
                num(m.gain_over_vanilla),
                m.gain_envs.to_string(),
                num(m.mean_seed_spread),
                m.seeds_min.to_string(),
                m.seeds_max.to_string(),
                num(Some(m.train_steps_min)),
                num(Some(m.train_steps_max)),
                num(m.paper_apg),
                num(m.paper_gain_over_vanilla),
                num(m.paper_mean_seed_spread),
            ]
        }),
    )
}

fn energy_csv(s: &Summary) -> String {
    csv(
        &[
            "env",
            "method",
            "label",
            "n",
            "sops_per_inference",
            "macs_per_inference",
            "firing_rate",
            "energy_nj_per_inference",
            "ann_energy_ratio",
        ],
        s.energy.iter().map(|r| {
            vec![
                r.env.clone(),
                r.method.clone(),
                r.label.clone(),
                r.n.to_string(),
                num(r.sops_per_inference),
                num(r.macs_per_inference),
                num(r.firing_rate),
                num(r.energy_nj_per_inference),
                num(r.ann_energy_ratio),
            ]
        }),
    )
}

fn curves_csv(s: &Summary) -> String {
    csv(
        &["env", "method", "step", "mean", "std", "n"],
        s.curves.iter().flat_map(|c| {
            c.points.iter().map(|p| {
                vec![
                    c.env.clone(),
                    c.method.clone(),
                    num(Some(p.step)),
                    num(Some(p.mean)),
                    num(Some(p.std)),
                    p.n.to_string(),
                ]
            })
        }),
    )
}

fn runs_csv(s: &Summary) -> String {
    csv(
        &[
            "dir",
            "env",
            "method",
            "seed",
            "max_avg_return",
            "final_avg_return",
            "env_steps",
            "train_steps",
            "evaluations",
        ],
        s.runs.iter().map(|r| {
            vec![
                r.dir.clone(),
                r.env.clone(),
                r.method.clone(),
                r.seed.to_string(),
                num(Some(r.max_avg_return)),
                num(Some(r.final_avg_return)),
                num(Some(r.env_steps)),
                num(Some(r.train_steps)),
                r.evaluations.to_string(),
            ]
        }),
    )
}
