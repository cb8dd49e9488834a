//! Helpers behind `spikerl env info` and `spikerl env replay`.
//!
//! `replay` lets anyone check our environments against Gymnasium from outside: give a state and a list
//! of actions, get every step's observation, reward and flags as JSON lines whose numbers parse back to
//! the identical f64 (shortest round-trip formatting). JSON has no NaN or infinity: a non-finite output
//! value is written as `null` (NumPy reads it back as NaN); non-finite *inputs* are rejected.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::{EnvError, make_unwrapped, spec};

/// `spikerl env info`: the spec of `id` as one JSON object (id, obs_dim, act_dim, act_low, act_high, dt,
/// frame_skip, max_episode_steps).
pub fn info_json(id: &str) -> Result<String, EnvError> {
    let spec = spec(id)?;
    serde_json::to_string(&spec).map_err(|e| EnvError::Physics(format!("serialising the spec: {e}")))
}

/// The replay input file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    qpos: Vec<f64>,
    qvel: Vec<f64>,
    actions: Vec<Vec<f64>>,
}

/// One output line.
#[derive(Serialize)]
struct Line<'a> {
    obs: &'a [f64],
    reward: f64,
    terminated: bool,
    truncated: bool,
}

/// `spikerl env replay`: parse `input_json` (`{"qpos": [...], "qvel": [...], "actions": [[...], ...]}`),
/// set the state of a fresh *unwrapped* env (Reacher's goal is part of qpos; classic control takes its
/// state vector as qpos and an empty qvel), then step every action in order (through termination and
/// past the time limit, no reset) and write one JSON line per step:
/// `{"obs": [...], "reward": r, "terminated": b, "truncated": b}`.
///
/// Everything is validated before the first line is written: wrong lengths, non-finite numbers (or
/// actions outside float32's range) and unknown ids are errors naming the culprit.
pub fn run(id: &str, input_json: &str, out: &mut dyn Write) -> Result<(), EnvError> {
    let mut env = make_unwrapped(id)?;
    let input: Input =
        serde_json::from_str(input_json).map_err(|e| EnvError::BadInput(format!("replay input: {e}")))?;
    let act_dim = env.spec().act_dim;
    let mut actions = Vec::with_capacity(input.actions.len() * act_dim);
    for (t, a) in input.actions.iter().enumerate() {
        if a.len() != act_dim {
            return Err(EnvError::BadInput(format!(
                "{id}: actions[{t}] has {} elements, expected {act_dim}",
                a.len()
            )));
        }
        for (j, &x) in a.iter().enumerate() {
            // Actions are float32, as Gymnasium's Box(float32); a finite f64 beyond f32::MAX would
            // become infinite.
            let x32 = x as f32;
            if !x32.is_finite() {
                return Err(EnvError::BadInput(format!(
                    "{id}: actions[{t}][{j}] = {x} is not a finite float32"
                )));
            }
            actions.push(x32);
        }
    }
    env.set_state(&input.qpos, &input.qvel)?;

    let write_err = |e: std::io::Error| EnvError::Physics(format!("writing replay output: {e}"));
    let mut obs = vec![0.0; env.spec().obs_dim];
    for action in actions.chunks_exact(act_dim.max(1)).take(input.actions.len()) {
        let t = env.step_into(action, &mut obs)?;
        let line = Line { obs: &obs, reward: t.reward, terminated: t.terminated, truncated: t.truncated };
        serde_json::to_writer(&mut *out, &line).map_err(|e| write_err(e.into()))?;
        out.write_all(b"\n").map_err(write_err)?;
    }
    out.flush().map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::make_unwrapped;

    #[derive(Deserialize)]
    struct OutLine {
        obs: Vec<f64>,
        reward: f64,
        terminated: bool,
        truncated: bool,
    }

    #[test]
    fn info_has_the_spec_fields() {
        let v: serde_json::Value = serde_json::from_str(&info_json("Hopper-v5").unwrap()).unwrap();
        assert_eq!(v["id"], "Hopper-v5");
        assert_eq!(v["obs_dim"], 11);
        assert_eq!(v["act_dim"], 3);
        assert_eq!(v["frame_skip"], 4);
        assert_eq!(v["max_episode_steps"], 1000);
        assert_eq!(v["dt"].as_f64(), Some(0.008));
        assert_eq!(v["act_low"].as_array().unwrap().len(), 3);
        assert!(info_json("Hopper-v9").is_err());
    }

    #[test]
    fn output_round_trips_f64_exactly() {
        // (id, qpos, qvel): a Hopper standing, a Reacher with its goal in qpos[2..], a car.
        let cases: [(&str, Vec<f64>, Vec<f64>); 3] = [
            ("Hopper-v4", vec![0.0, 1.25, 0.01, -0.02, 0.03, 0.04], vec![0.1; 6]),
            ("Reacher-v5", vec![0.3, -0.2, 0.1, 0.05], vec![0.01, -0.02, 0.0, 0.0]),
            ("MountainCarContinuous-v0", vec![-0.5234567891234, 0.0], vec![]),
        ];
        for (id, qpos, qvel) in cases {
            let spec = crate::spec(id).unwrap();
            let actions: Vec<Vec<f64>> = (0..30)
                .map(|t| {
                    (0..spec.act_dim).map(|j| f64::from(((t * 7 + j * 3) % 11) as f32 / 5.5 - 1.0)).collect()
                })
                .collect();
            let input = serde_json::json!({ "qpos": qpos, "qvel": qvel, "actions": actions }).to_string();
            let mut out = Vec::new();
            run(id, &input, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            let lines: Vec<OutLine> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            assert_eq!(lines.len(), actions.len());

            let mut direct = make_unwrapped(id).unwrap();
            direct.set_state(&qpos, &qvel).unwrap();
            for (line, a) in lines.iter().zip(&actions) {
                let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
                let s = direct.step(&a32);
                assert_eq!(
                    line.obs.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    s.obs.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    "{id}"
                );
                assert_eq!(line.reward.to_bits(), s.reward.to_bits(), "{id}");
                assert_eq!(line.terminated, s.terminated);
                assert!(!line.truncated);
            }
        }
    }

    #[test]
    fn steps_past_the_time_limit_unwrapped() {
        let actions = vec![vec![0.0]; 60];
        let input = serde_json::json!({ "qpos": [0.1, 0.0], "qvel": [], "actions": actions }).to_string();
        let mut out = Vec::new();
        run("Pendulum-v1", &input, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 60);
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let cases = [
            ("Pendulum-v1", r#"{"qpos": [0.1], "qvel": [], "actions": []}"#, "qpos of length 2"),
            (
                "Pendulum-v1",
                r#"{"qpos": [0.1, 0.0], "qvel": [], "actions": [[0.0, 1.0]]}"#,
                "actions[0] has 2",
            ),
            (
                "Pendulum-v1",
                r#"{"qpos": [0.1, 0.0], "qvel": [], "actions": [[1e300]]}"#,
                "not a finite float32",
            ),
            ("Pendulum-v1", r#"{"qpos": [0.1, NaN], "qvel": [], "actions": []}"#, "replay input"),
            ("Pendulum-v1", r#"{"qpos": [0.1, 1e999], "qvel": [], "actions": []}"#, "replay input"),
            ("Pendulum-v1", r#"{"qpos": [0.1, 0.0], "actions": []}"#, "qvel"),
            (
                "Hopper-v4",
                r#"{"qpos": [0,0,0,0,0,0], "qvel": [0,0,0,0,0], "actions": []}"#,
                "qvel of length 6",
            ),
            ("Hopper-v7", r#"{"qpos": [], "qvel": [], "actions": []}"#, "known ids"),
        ];
        for (id, input, needle) in cases {
            let mut out = Vec::new();
            let err = run(id, input, &mut out).expect_err(input).to_string();
            assert!(err.contains(needle), "{input}: {err}");
            assert!(out.is_empty(), "nothing is written before validation passes");
        }
    }

    #[test]
    fn non_finite_output_becomes_null() {
        let line = Line { obs: &[f64::NAN, 1.5], reward: f64::INFINITY, terminated: false, truncated: false };
        let s = serde_json::to_string(&line).unwrap();
        assert_eq!(s, r#"{"obs":[null,1.5],"reward":null,"terminated":false,"truncated":false}"#);
    }
}
