//! THROWAWAY before/after harness (to be deleted).
use spikerl_experiments::{report, sweep};
use std::path::{Path, PathBuf};

fn arg_after(args: &[String], k: &str) -> Option<String> {
    args.iter().position(|a| a == k).map(|i| args[i + 1].clone())
}

fn fake_train(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--help") {
        println!("Usage: spikerl train [OPTIONS]\n\nOptions:\n      --env <ENV>\n      --algo <ALGO>\n      --neuron <N>\n      --seed <S>\n      --seeds <S>\n      --steps <S>\n      --random-steps <S>\n      --sync\n      --threads <T>\n      --out <OUT>\n      --no-progress\n  -h, --help");
        return 0;
    }
    let env = arg_after(args, "--env").unwrap();
    let algo = arg_after(args, "--algo").unwrap();
    let neuron = arg_after(args, "--neuron").unwrap_or("lif".into());
    let out = PathBuf::from(arg_after(args, "--out").unwrap());
    let steps: u64 = arg_after(args, "--steps").map_or(300, |s| s.parse().unwrap());
    let seeds: Vec<(u64, PathBuf)> = match arg_after(args, "--seeds") {
        Some(list) => list.split(',').map(|s| (s.parse().unwrap(), out.join(format!("seed{s}")))).collect(),
        None => vec![(arg_after(args, "--seed").unwrap().parse().unwrap(), out.clone())],
    };
    println!("fake train {}", args.join(" "));
    for i in 0..15 {
        println!("log line {i}");
    }
    for (seed, dir) in seeds {
        std::fs::create_dir_all(&dir).unwrap();
        if env.starts_with("Die") && seed == 1 {
            eprintln!("dying");
            return 3;
        }
        let status = if env.starts_with("Boom") && seed == 0 { "failed" } else { "completed" };
        let m = serde_json::json!({"status": status, "mode": "sync", "error": if status == "failed" { serde_json::Value::from("boom\nmore") } else { serde_json::Value::Null },
            "config": {"env_id": env, "algo": algo, "neuron": neuron, "seed": seed, "steps": steps, "random_steps": 50}});
        std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        let ret = seed as f64 * 10.0 - 5.5;
        std::fs::write(dir.join("evals.csv"), format!("step,avg_return\n0,{}\n100,{ret}\n", ret - 7.0)).unwrap();
    }
    0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args[0].as_str() {
        "train" => fake_train(&args),
        "report" => match report::run(Path::new(&args[1]), Path::new(&args[2])) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                1
            }
        },
        "sweep" => {
            let opts = sweep::SweepOptions {
                jobs: arg_after(&args, "--jobs").map(|j| j.parse().unwrap()),
                dry_run: args.iter().any(|a| a == "--dry-run"),
            };
            match sweep::run(Path::new(&args[1]), Path::new(&args[2]), &opts) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            }
        }
        _ => 2,
    };
    std::process::exit(code);
}
