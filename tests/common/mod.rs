//! Fixtures for the cross-crate integration tests: real `spikerl` processes on loopback ports, killed
//! when the test ends however it ends.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn spikerl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spikerl"));
    cmd.env("OMP_NUM_THREADS", "1").stdin(Stdio::null());
    cmd
}

/// A free loopback port (bound then released; good enough on a test machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh, empty folder under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spikerl-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Kills (SIGKILL) and reaps its processes on drop, so a failing test leaves nothing behind.
#[derive(Default)]
pub struct Processes(pub Vec<(String, Child)>);

impl Processes {
    pub fn spawn(&mut self, name: &str, mut cmd: Command, log: &Path) -> usize {
        let file = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.0.push((name.to_string(), child));
        self.0.len() - 1
    }

    pub fn kill(&mut self, i: usize) {
        let _ = self.0[i].1.kill();
        let _ = self.0[i].1.wait();
    }

    /// Waits for process `i` to exit, at most `timeout`.
    pub fn wait(&mut self, i: usize, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.0[i].1.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// GET http://addr/metrics with a plain socket (the exporter speaks HTTP/1.1).
pub fn scrape(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// The value of the first sample of `name` whose labels contain every `key="value"` in `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric_name, label_part) = match series.split_once('{') {
            Some((n, rest)) => (n, rest),
            None => (series, ""),
        };
        if metric_name != name || !labels.iter().all(|(k, v)| label_part.contains(&format!("{k}=\"{v}\""))) {
            return None;
        }
        value.parse().ok()
    })
}

/// Rows of a run folder's evals.csv as (step, avg_return).
pub fn evals(run_folder: &Path) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(run_folder.join("evals.csv")).unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let step = header.iter().position(|h| *h == "step").expect("evals.csv has a step column");
    let ret = header.iter().position(|h| *h == "avg_return").expect("evals.csv has an avg_return column");
    lines
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            (cols[step].parse().unwrap(), cols[ret].parse().unwrap())
        })
        .collect()
}

/// Args for a learner that trains for a long time on Pendulum with the ANN (cheap), on given ports.
pub fn learner_cmd(grpc: u16, metrics: u16, run_folder: &Path, extra: &[&str]) -> Command {
    let mut cmd = spikerl();
    cmd.args([
        "learner",
        "--listen",
        &format!("127.0.0.1:{grpc}"),
        "--metrics",
        &format!("127.0.0.1:{metrics}"),
    ]);
    cmd.args([
        "--run-dir",
        run_folder.to_str().unwrap(),
        "--env",
        "Pendulum-v1",
        "--algo",
        "ann",
        "--threads",
        "1",
    ]);
    cmd.args(["--log", "info"]);
    cmd.args(extra);
    cmd
}

pub fn actor_cmd(grpc: u16, name: &str, extra: &[&str]) -> Command {
    let mut cmd = spikerl();
    cmd.args(["actor", "--learner", &format!("http://127.0.0.1:{grpc}"), "--name", name, "--log", "info"]);
    cmd.args(extra);
    cmd
}

/// Polls the metrics endpoint until `pred` holds on the scraped text, or panics after `timeout`.
pub fn wait_metrics(addr: &str, timeout: Duration, what: &str, mut pred: impl FnMut(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(text) = scrape(addr)
            && pred(&text)
        {
            return text;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what} on {addr}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Resident memory of a process in KiB (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}
