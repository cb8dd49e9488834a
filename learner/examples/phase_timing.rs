use spikerl_learner::{Algo, RunConfig, td3::{Td3, Batch}};
use spikerl_snn::NeuronKind;
use tch::{Device, Kind, Tensor};
use std::time::Instant;

fn batch(od: i64, ad: i64) -> Batch {
    let n = 256;
    Batch {
        obs: Tensor::randn([n, od], (Kind::Float, Device::Cpu)),
        actions: Tensor::rand([n, ad], (Kind::Float, Device::Cpu)) * 2.0 - 1.0,
        rewards: Tensor::randn([n, 1], (Kind::Float, Device::Cpu)),
        next_obs: Tensor::randn([n, od], (Kind::Float, Device::Cpu)),
        not_done: Tensor::ones([n, 1], (Kind::Float, Device::Cpu)),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let env = args.get(1).cloned().unwrap_or("HalfCheetah-v4".into());
    let threads: i32 = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(1);
    tch::set_num_threads(threads);
    let spec = spikerl_envs::spec(&env).unwrap();
    let (od, ad) = (spec.obs_dim as i64, spec.act_dim as i64);
    for algo in [Algo::Ann, Algo::Vanilla, Algo::Proxy] {
        let cfg = RunConfig::paper(&env, algo, NeuronKind::Lif, 0);
        let pc = cfg.policy_config(spec.obs_dim, spec.act_dim, vec![1.0; spec.act_dim]);
        let mut td3 = Td3::new(&cfg, pc, Device::Cpu, 0);
        let b = batch(od, ad);
        for _ in 0..5 { td3.update(|| batch(od, ad)); }
        let n = 20;
        let t = Instant::now();
        for _ in 0..n { td3.update(|| batch(od, ad)); }
        let full = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        let t = Instant::now();
        for _ in 0..n { let _ = td3.act(&b.obs); }
        let fwd = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        let t = Instant::now();
        for _ in 0..n { let _ = td3.proxy_step(&b.obs); }
        let proxy = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        let t = Instant::now();
        for _ in 0..n { let _ = batch(od, ad); }
        let mk = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        println!("{env} {algo}: update {full:.2} ms, actor fwd(no grad) {fwd:.2} ms, proxy step {proxy:.2} ms, make batch {mk:.2} ms");
    }
}
