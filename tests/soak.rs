//! A soak: 32 actor processes against one learner (Pendulum-v1, ANN, learner `--threads 1`) for
//! `SPIKERL_SOAK_SECS` seconds: 150 by default, the short form CI runs; the long form is
//! `SPIKERL_SOAK_SECS=1800 cargo test --release --test soak -- --nocapture` (docs/runtime.md, "Soak").
//! Every 10 s it samples the learner's resident memory and open file descriptors, ingest and training
//! rates, the insert-wait and broadcast-latency p99 and the batches' policy lag. After a warm-up (the
//! replay buffer full, so that it no longer grows), memory and descriptors must stay flat, no window may
//! stall, and at the end every actor's ledger balances against the learner's.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ACTORS: usize = 32;
const SAMPLE: Duration = Duration::from_secs(10);

/// Sum over every label set of `name` (a counter summed across actors, say).
fn sum(text: &str, name: &str) -> f64 {
    samples(text, name).map(|(_, v)| v).sum()
}

/// (labels, value) of each sample of `name`.
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines().filter(|l| !l.starts_with('#')).filter_map(move |line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, labels) = series.split_once('{').unwrap_or((series, ""));
        if n != name {
            return None;
        }
        Some((labels, value.parse().ok()?))
    })
}

/// A histogram's cumulative bucket counts by upper bound, summed over its other labels.
fn buckets(texts: &[&str], name: &str) -> BTreeMap<u64, f64> {
    let bucket = format!("{name}_bucket");
    let mut out = BTreeMap::new();
    for text in texts {
        for (labels, v) in samples(text, &bucket) {
            // `le` exactly (`role="..."` ends in `le="` too).
            let le = labels.trim_end_matches('}').split(',').find_map(|kv| kv.strip_prefix("le=\""));
            let Some(le) = le.map(|v| v.trim_end_matches('"')) else { continue };
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
            *out.entry(bound.to_bits()).or_insert(0.0) += v;
        }
    }
    out
}

/// The bucket bound under which `q` of the observations between two readings fall (the Prometheus
/// `histogram_quantile` of their difference, without interpolation): None with no observation.
fn quantile(q: f64, before: &BTreeMap<u64, f64>, after: &BTreeMap<u64, f64>) -> Option<f64> {
    let mut bounds: Vec<(f64, f64)> =
        after.iter().map(|(b, v)| (f64::from_bits(*b), v - before.get(b).copied().unwrap_or(0.0))).collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = bounds.last()?.1;
    if total <= 0.0 {
        return None;
    }
    bounds.iter().find(|(_, c)| *c >= q * total).map(|(b, _)| *b)
}

/// The mean policy lag of the batches stored between two readings.
fn mean_lag(a: &Reading, b: &Reading) -> f64 {
    (b.lag_sum_count.0 - a.lag_sum_count.0) / (b.lag_sum_count.1 - a.lag_sum_count.1)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// One reading of the learner and every actor.
struct Reading {
    at: Duration,
    rss_mib: f64,
    fds: usize,
    iterations: f64,
    inserted: f64,
    connected: f64,
    insert_wait: BTreeMap<u64, f64>,
    lag: BTreeMap<u64, f64>,
    /// The policy-lag histogram's (sum, count): the mean lag of a window.
    lag_sum_count: (f64, f64),
    broadcast: BTreeMap<u64, f64>,
}

#[test]
fn thirty_two_actors_soak_with_flat_memory_and_no_stall() {
    let secs: u64 = std::env::var("SPIKERL_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(150);
    let dir = temp_dir("soak");
    let (grpc, metrics) = (free_port(), free_port());
    let maddr = format!("127.0.0.1:{metrics}");
    let mut procs = Processes::default();
    // A small replay buffer fills during the warm-up: after it, memory has no reason to grow.
    let run = ["--steps", "100000000", "--random-steps", "1000", "--eval-every", "0"];
    let run = [&run[..], &["--replay-capacity", "10000", "--checkpoint-secs", "0"]].concat();
    let l =
        procs.spawn("learner", learner_cmd(grpc, metrics, &dir.join("run"), &run), &dir.join("learner.log"));
    let learner_pid = procs.0[l].1.id();
    let mut actors = Vec::new();
    for i in 0..ACTORS {
        let port = free_port();
        let log = dir.join(format!("a{i}.log"));
        let metrics_addr = format!("127.0.0.1:{port}");
        // All 32 stop at once at the end and the learner's rate limiter admits their last batches at
        // its training pace: a flush long enough for every one (docs/runtime.md).
        let cmd = actor_cmd(grpc, &format!("a{i}"), &["--metrics", &metrics_addr, "--flush-secs", "60"]);
        actors.push((procs.spawn(&format!("actor-{i}"), cmd, &log), log, metrics_addr));
    }
    wait_metrics(&maddr, Duration::from_secs(120), "every actor connected and training", |t| {
        metric(t, "spikerl_learner_connected_actors", &[]).unwrap_or(0.0) >= ACTORS as f64
            && metric(t, "spikerl_learner_train_iterations_total", &[]).unwrap_or(0.0) > 100.0
    });

    let started = Instant::now();
    let read = || {
        let text = scrape(&maddr).expect("the learner answers");
        let actor_texts: Vec<String> = actors.iter().filter_map(|(_, _, a)| scrape(a)).collect();
        let refs: Vec<&str> = actor_texts.iter().map(String::as_str).collect();
        Reading {
            at: started.elapsed(),
            rss_mib: rss_kib(learner_pid).expect("the learner runs") as f64 / 1024.0,
            fds: open_fds(learner_pid),
            iterations: sum(&text, "spikerl_learner_train_iterations_total"),
            inserted: sum(&text, "spikerl_learner_transitions_inserted_total"),
            connected: sum(&text, "spikerl_learner_connected_actors"),
            insert_wait: buckets(&[&text], "spikerl_learner_insert_wait_seconds"),
            lag: buckets(&[&text], "spikerl_learner_batch_policy_lag"),
            lag_sum_count: (
                sum(&text, "spikerl_learner_batch_policy_lag_sum"),
                sum(&text, "spikerl_learner_batch_policy_lag_count"),
            ),
            broadcast: buckets(&refs, "spikerl_actor_broadcast_latency_seconds"),
        }
    };
    let mut readings = vec![read()];
    // A row per window as it is read (a long soak shows its progress), checked at once.
    eprintln!("   t    rss MiB  fds  it/s  ins/s  conn  insert-wait p99  broadcast p99  lag p99  lag mean");
    let fmt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v}"));
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(SAMPLE);
        for (i, _, _) in &actors {
            assert!(procs.0[*i].1.try_wait().unwrap().is_none(), "actor {i} died");
        }
        assert!(procs.0[l].1.try_wait().unwrap().is_none(), "the learner died");
        let (a, b) = (readings.last().unwrap(), read());
        let dt = (b.at - a.at).as_secs_f64();
        eprintln!(
            "{:5.0} {:9.1} {:4} {:5.0} {:6.0} {:5} {:>16} {:>14} {:>8} {:>9.0}",
            b.at.as_secs_f64(),
            b.rss_mib,
            b.fds,
            (b.iterations - a.iterations) / dt,
            (b.inserted - a.inserted) / dt,
            b.connected,
            fmt(quantile(0.99, &a.insert_wait, &b.insert_wait)),
            fmt(quantile(0.99, &a.broadcast, &b.broadcast)),
            fmt(quantile(0.99, &a.lag, &b.lag)),
            mean_lag(a, &b),
        );
        assert!(b.iterations > a.iterations, "training stalled between {:?} and {:?}", a.at, b.at);
        assert!(b.inserted > a.inserted, "ingest stalled between {:?} and {:?}", a.at, b.at);
        assert_eq!(b.connected, ACTORS as f64, "every actor stays connected");
        readings.push(b);
    }
    // Warm-up: the first 60 s (the replay buffer is full by then) or a fifth of a long soak.
    let warm = Duration::from_secs(60).max(Duration::from_secs(secs / 5));
    let first = readings.iter().find(|r| r.at >= warm).expect("a reading after the warm-up");
    let last = readings.last().unwrap();
    let rss_growth = last.rss_mib - first.rss_mib;
    let hours = (last.at - first.at).as_secs_f64() / 3600.0;
    eprintln!(
        "after the warm-up ({:.0} s) to the end ({:.0} s): learner RSS {:.1} -> {:.1} MiB ({rss_growth:+.1} MiB, \
         {:+.1} MiB/hour), open fds {} -> {}",
        first.at.as_secs_f64(),
        last.at.as_secs_f64(),
        first.rss_mib,
        last.rss_mib,
        rss_growth / hours,
        first.fds,
        last.fds
    );
    // Flat: a few MiB of allocator noise, nothing that grows with time or with batches.
    assert!(rss_growth < 16.0 + 0.05 * first.rss_mib, "learner RSS grew {rss_growth:.1} MiB");
    assert!(last.fds <= first.fds + 4, "learner fds grew {} -> {}", first.fds, last.fds);
    // Policy lag stays bounded: every window's p99 below the top bucket, and the mean of the last
    // window within 1.5 times the first post-warm-up window's (plus slack), not climbing with time. It
    // is large with this many actors: batches queue behind the rate limiter (docs/runtime.md, "Soak").
    let first_i = readings.iter().position(|r| r.at >= warm).unwrap().max(1);
    for r in first_i..readings.len() {
        let p99 =
            quantile(0.99, &readings[r - 1].lag, &readings[r].lag).expect("batches stored in the window");
        assert!(p99.is_finite(), "policy lag p99 beyond the top bucket at {:?}", readings[r].at);
    }
    // Means over three windows (30 s) each, so that one window's noise does not decide.
    let n = readings.len();
    assert!(n >= first_i + 6, "too short a soak to compare the lag at the start and the end");
    let (lag_first, lag_last) = (
        mean_lag(&readings[first_i - 1], &readings[first_i + 2]),
        mean_lag(&readings[n - 4], &readings[n - 1]),
    );
    eprintln!(
        "mean policy lag: {lag_first:.0} versions in the first 30 s after the warm-up, {lag_last:.0} in the last 30 s"
    );
    assert!(lag_last <= 1.5 * lag_first + 200.0, "policy lag climbed {lag_first:.0} -> {lag_last:.0}");

    // Every actor stopped: its ledger balances against the learner's.
    for (i, _, _) in &actors {
        let pid = procs.0[*i].1.id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }
    let mut produced_all = 0;
    for (i, log, _) in &actors {
        let status = procs.wait(*i, Duration::from_secs(90)).expect("an actor exits within 90 s of SIGTERM");
        let (produced, _, _) = assert_stopped_actor_balanced(status, log, &maddr);
        produced_all += produced;
    }
    eprintln!(
        "{ACTORS} actors stopped; ledger balanced: {produced_all} transitions produced and inserted once each"
    );
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
}
