#!/usr/bin/env python3
"""Writes the provisioned Grafana dashboards (deploy/grafana/dashboards/*.json).

The JSON files are the shipped artefact (Grafana loads them as they are); this script is how they are
made, so a change to a panel is a change here followed by `python3 deploy/grafana/generate_dashboards.py`.
Every expression may use only series the exporters emit (docs/metrics.md): tests/observability.rs checks
the names against a live learner and actor, and the syntax against a real Prometheus.
"""

import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
L = 'instance=~"$learner"'  # learner selector
RATE = "$__rate_interval"


def target(expr, legend="", ref="A", instant=False):
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto", "range": not instant, "instant": instant}
    return t


def targets(*pairs, instant=False):
    return [target(e, l, chr(ord("A") + i), instant) for i, (e, l) in enumerate(pairs)]


def timeseries(title, pairs, unit="short", desc="", w=12, h=8, log=False, stack=False, min_=None, decimals=None):
    defaults = {
        "unit": unit,
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10 if not stack else 40,
            "showPoints": "never",
            "spanNulls": True,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "scaleDistribution": {"type": "log", "log": 10} if log else {"type": "linear"},
        },
    }
    if min_ is not None:
        defaults["min"] = min_
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets(*pairs),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_w": w,
        "_h": h,
    }


def stat(title, expr, unit="short", desc="", w=4, h=4, thresholds=None, decimals=None, legend="", mappings=None):
    steps = thresholds or [{"color": "blue", "value": None}]
    defaults = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}, "color": {"mode": "thresholds"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    if mappings:
        defaults["mappings"] = mappings
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [target(expr, legend, instant=True)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        },
        "_w": w,
        "_h": h,
    }


def table(title, expr, desc="", w=24, h=4, exclude=()):
    return {
        "type": "table",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [dict(target(expr, instant=True), format="table")],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm"},
        "transformations": [
            {"id": "organize", "options": {"excludeByName": {k: True for k in ("Time", "Value", "__name__", *exclude)}}}
        ],
        "_w": w,
        "_h": h,
    }


def text(title, content, w=24, h=3):
    return {"type": "text", "title": title, "options": {"mode": "markdown", "content": content}, "_w": w, "_h": h}


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def layout(items):
    """Places panels left to right in rows of width 24; a row panel starts a new line."""
    panels, x, y, line_h, pid = [], 0, 0, 0, 1
    for p in items:
        if p["type"] == "row":
            if x:
                y += line_h
            p = dict(p, id=pid, gridPos={"h": 1, "w": 24, "x": 0, "y": y})
            panels.append(p)
            pid += 1
            y += 1
            x, line_h = 0, 0
            continue
        w, h = p.pop("_w"), p.pop("_h")
        if x + w > 24:
            y += line_h
            x, line_h = 0, 0
        panels.append(dict(p, id=pid, gridPos={"h": h, "w": w, "x": x, "y": y}))
        pid += 1
        x += w
        line_h = max(line_h, h)
    return panels


def dashboard(uid, title, desc, items):
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["spikerl"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "schemaVersion": 39,
        "version": 1,
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["spikerl"], "asDropdown": False, "title": "spikerl", "includeVars": True, "keepTime": True}
        ],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"text": "Prometheus", "value": "spikerl-prometheus"},
                    "hide": 0,
                },
                {
                    "name": "learner",
                    "label": "Learner",
                    "type": "query",
                    "datasource": DS,
                    "query": {"query": "label_values(spikerl_run_info, instance)", "refId": "learner"},
                    "definition": "label_values(spikerl_run_info, instance)",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "sort": 1,
                },
            ]
        },
        "panels": layout(items),
    }


RED_GREEN = [{"color": "red", "value": None}, {"color": "green", "value": 1}]

health = dashboard(
    "spikerl-health",
    "spikerl / Run health & throughput",
    "Is the run alive and moving: targets, actors, progress, throughput, rate limiter, policy distribution, gRPC, checkpoints, processes.",
    [
        row("Status"),
        stat("Learner up", 'min(up{job=~"(.+-)?learner"})', thresholds=RED_GREEN, desc="1 when Prometheus scrapes the learner.",
             mappings=[{"type": "value", "options": {"0": {"text": "DOWN"}, "1": {"text": "UP"}}}]),
        stat("Actors up", 'sum(up{job=~"(.+-)?actor"})', thresholds=RED_GREEN, desc="Actor replicas Prometheus scrapes."),
        stat("Connected actors", f"sum(spikerl_learner_connected_actors{{{L}}})", thresholds=RED_GREEN,
             desc="Transition streams open at the learner."),
        stat("Training progress", f"100 * max(spikerl_learner_train_iterations_total{{{L}}}) / max(spikerl_learner_train_iterations_target{{{L}}})",
             unit="percent", decimals=1, desc="Training iterations done of the run's --steps."),
        stat("ETA", f"(max(spikerl_learner_train_iterations_target{{{L}}}) - max(spikerl_learner_train_iterations_total{{{L}}})) / sum(rate(spikerl_learner_train_iterations_total{{{L}}}[10m]))",
             unit="dtdurations", desc="Remaining iterations at the last 10 minutes' pace."),
        stat("Firing alerts", 'count(ALERTS{alertstate="firing", alertname=~"Spikerl.*"}) or vector(0)',
             thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}], desc="spikerl alerts firing now (deploy/prometheus/rules)."),
        table("Run", f"spikerl_run_info{{{L}}}", desc="What the learner runs (spikerl_run_info labels).", h=4, exclude=("role",)),
        row("Throughput"),
        timeseries("Env steps / s", [
            (f"sum(rate(spikerl_actor_env_steps_total[{RATE}]))", "all"),
            (f'sum by (instance) (rate(spikerl_actor_env_steps_total{{role="actor"}}[{RATE}]))', "{{instance}}"),
        ], unit="short", desc="Environment transitions stepped per second, in total and per actor process.", min_=0),
        timeseries("Transitions stored / s", [
            (f"sum(rate(spikerl_learner_transitions_inserted_total{{{L}}}[{RATE}]))", "inserted"),
            (f"sum by (actor) (rate(spikerl_learner_transitions_inserted_total{{{L}}}[{RATE}]))", "actor {{actor}}"),
        ], desc="Transitions inserted into the replay buffer, in total and per actor id.", min_=0),
        timeseries("Training iterations / s", [
            (f"sum(rate(spikerl_learner_train_iterations_total{{{L}}}[{RATE}]))", "iterations/s"),
        ], min_=0, desc="TD3 updates per second."),
        timeseries("Update-to-data ratio", [
            (f"max(spikerl_learner_samples_per_insert{{{L}}})", "measured"),
            (f"max(spikerl_learner_target_samples_per_insert{{{L}}})", "target"),
        ], decimals=3, desc="Training iterations per inserted transition (beyond the random steps) against the configured ratio."),
        timeseries("Rate limiter: time spent waiting", [
            (f"sum(rate(spikerl_learner_sample_wait_seconds_sum{{{L}}}[{RATE}]))", "training thread (starved)"),
            (f"sum(rate(spikerl_learner_insert_wait_seconds_sum{{{L}}}[{RATE}]))", "actor batches (backpressure)"),
        ], unit="percentunit", desc="Fraction of time the training thread waits for data, and batch-seconds per second that inserts wait for training (summed over actors).", min_=0),
        timeseries("Iteration duration and insert wait", [
            (f"histogram_quantile(0.5, sum by (le) (rate(spikerl_learner_update_duration_seconds_bucket{{{L}}}[{RATE}])))", "update p50"),
            (f"histogram_quantile(0.95, sum by (le) (rate(spikerl_learner_update_duration_seconds_bucket{{{L}}}[{RATE}])))", "update p95"),
            (f"histogram_quantile(0.95, sum by (le) (rate(spikerl_learner_insert_wait_seconds_bucket{{{L}}}[{RATE}])))", "insert wait p95"),
        ], unit="s", desc="One training iteration (critic, delayed actor, proxy steps); how long a batch waits for the limiter."),
        timeseries("Replay buffer", [(f"max(spikerl_learner_replay_size{{{L}}})", "transitions")], min_=0, w=8),
        timeseries("Episodes / min", [
            (f"60 * sum by (actor) (rate(spikerl_learner_episodes_total{{{L}}}[{RATE}]))", "actor {{actor}}"),
        ], min_=0, w=8, desc="Training episodes finished per minute, per actor id."),
        timeseries("Episode length", [
            (f"max(spikerl_learner_episode_length_last{{{L}}})", "latest (learner)"),
            ('spikerl_actor_episode_length_last{role="actor"}', "{{instance}}"),
        ], w=8, min_=0),
        row("Policy distribution"),
        timeseries("Policy version", [
            (f"max(spikerl_learner_policy_version{{{L}}})", "learner"),
            ('spikerl_actor_policy_version{role="actor"}', "{{instance}}"),
        ], w=8, desc="Newest published version and the version each actor acts with."),
        timeseries("Policy lag", [
            (f"max(spikerl_learner_policy_lag{{{L}}})", "largest, connected actors"),
            (f"histogram_quantile(0.95, sum by (le) (rate(spikerl_learner_batch_policy_lag_bucket{{{L}}}[{RATE}])))", "p95 per batch"),
            # Per actor from the actor's own series, which ends with the actor (no stale value left behind).
            (f'clamp_min(scalar(max(spikerl_learner_policy_version{{{L}}})) - spikerl_actor_policy_version{{role="actor"}}, 0)', "{{instance}}"),
        ], w=8, min_=0, desc="Versions between the newest policy and the one acting: the largest over connected actors at their latest batches (alert above 100), the 95th percentile over stored batches, and per actor the learner's version minus the actor's newest."),
        timeseries("Broadcast latency", [
            (f'histogram_quantile(0.5, sum by (le) (rate(spikerl_actor_broadcast_latency_seconds_bucket[{RATE}])))', "p50"),
            (f'histogram_quantile(0.95, sum by (le) (rate(spikerl_actor_broadcast_latency_seconds_bucket[{RATE}])))', "p95"),
        ], unit="s", w=8, desc="Publication on the learner to receipt by an actor."),
        row("gRPC and errors"),
        timeseries("gRPC calls / s", [
            (f"sum by (method, code) (rate(spikerl_grpc_server_handled_total{{{L}}}[{RATE}]))", "{{method}} {{code}}"),
        ], w=8, min_=0, desc="Completed calls by method and status (streams complete when an actor disconnects)."),
        timeseries("gRPC errors / s", [
            (f'sum by (method, code) (rate(spikerl_grpc_server_handled_total{{{L}, code!~"Ok|Cancelled"}}[{RATE}]))', "learner {{method}} {{code}}"),
            (f"sum by (code) (rate(spikerl_actor_grpc_errors_total[{RATE}]))", "actors {{code}}"),
        ], w=8, min_=0, desc="Calls that ended in an error status at the learner, and errors actors retried after."),
        timeseries("Open streams and Register latency", [
            (f"sum by (method) (spikerl_grpc_server_in_flight{{{L}}})", "open {{method}}"),
            (f'histogram_quantile(0.95, sum by (le) (rate(spikerl_grpc_server_handling_seconds_bucket{{{L}, method="Register"}}[{RATE}])))', "Register p95 (s)"),
        ], w=8),
        timeseries("Rejected and duplicate batches / s", [
            (f"sum by (reason) (rate(spikerl_learner_transitions_rejected_total{{{L}}}[{RATE}]))", "rejected: {{reason}}"),
            (f"sum(rate(spikerl_learner_duplicate_batches_total{{{L}}}[{RATE}]))", "duplicates (resent)"),
            (f"sum(rate(spikerl_learner_unauthenticated_requests_total{{{L}}}[{RATE}]))", "unauthenticated"),
        ], w=12, min_=0),
        timeseries("Actor connections", [
            ('sum(spikerl_actor_connected{role="actor"})', "connected actors (actor view)"),
            (f"sum(increase(spikerl_actor_reconnects_total[{RATE}]))", "reconnect attempts"),
            (f"sum(increase(spikerl_actor_lost_batches_total[{RATE}]))", "lost batches"),
        ], w=12, min_=0),
        row("Checkpoints"),
        stat("Checkpoint age", f"time() - max(spikerl_learner_checkpoint_last_success_timestamp_seconds{{{L}}})", unit="s",
             thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 900}, {"color": "red", "value": 3600}],
             desc="Since the last successful checkpoint (since the start before the first).", w=6),
        stat("Checkpoint interval", f"max(spikerl_learner_checkpoint_interval_seconds{{{L}}})", unit="s", w=6,
             desc="--checkpoint-secs (0: only at the end)."),
        stat("Checkpoint failures", f"sum(spikerl_learner_checkpoint_failures_total{{{L}}})",
             thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}], w=6),
        stat("Checkpoint write time (avg)", f"sum(spikerl_learner_checkpoint_duration_seconds_sum{{{L}}}) / sum(spikerl_learner_checkpoint_duration_seconds_count{{{L}}})", unit="s", w=6),
        row("Processes"),
        timeseries("CPU", [(f"rate(process_cpu_seconds_total{{role=~\"learner|actor\"}}[{RATE}])", "{{role}} {{instance}}")],
                   unit="percentunit", w=8, min_=0, desc="Cores used (1 = 100% of one core)."),
        timeseries("Resident memory", [("process_resident_memory_bytes{role=~\"learner|actor\"}", "{{role}} {{instance}}")], unit="bytes", w=8, min_=0),
        timeseries("Threads and open files", [
            ("process_threads{role=~\"learner|actor\"}", "threads {{role}} {{instance}}"),
            ("process_open_fds{role=~\"learner|actor\"}", "fds {{role}} {{instance}}"),
        ], w=8, min_=0),
    ],
)

learning = dashboard(
    "spikerl-learning",
    "spikerl / Learning",
    "Is the run learning: evaluation returns, training episodes, critic / actor / proxy losses, Q estimates.",
    [
        row("Evaluation"),
        stat("Latest evaluation return", f"avg(spikerl_eval_return_last{{{L}}})", decimals=1, w=6,
             desc="Mean return of the latest deterministic evaluation (a seed group, train --seeds: the mean over its seeds)."),
        stat("Best evaluation return", f"avg(spikerl_eval_return_best{{{L}}})", decimals=1, w=6, desc="A seed group: the mean over its seeds of each seed's best."),
        stat("Initial evaluation return", f"avg(spikerl_eval_return_initial{{{L}}})", decimals=1, w=6, desc="The untrained policy (a seed group: mean over its seeds)."),
        stat("Improvement kept", f"100 * (avg(spikerl_eval_return_last{{{L}}}) - avg(spikerl_eval_return_initial{{{L}}})) / (avg(spikerl_eval_return_best{{{L}}}) - avg(spikerl_eval_return_initial{{{L}}}))",
             unit="percent", decimals=0, w=6, thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 50}, {"color": "green", "value": 80}],
             desc="Latest improvement over the initial return as a share of the best improvement (alert below 50%)."),
        timeseries("Evaluation return", [
            (f"max by (seed) (spikerl_eval_return_last{{{L}}})", "latest {{seed}}"),
            (f"max by (seed) (spikerl_eval_return_best{{{L}}})", "best {{seed}}"),
            (f"max by (seed) (spikerl_eval_return_initial{{{L}}})", "initial {{seed}}"),
        ], w=24, h=9, decimals=1, desc="Deterministic evaluation episodes (evals.csv has every evaluation against env steps); a seed group (train --seeds) draws each seed."),
        row("Training episodes (with exploration noise)"),
        timeseries("Training episode return", [
            (f"max(spikerl_learner_episode_return_last{{{L}}})", "latest (any actor)"),
            ('spikerl_actor_episode_return_last{role="actor"}', "{{instance}}"),
        ], decimals=1),
        timeseries("Training progress", [
            (f"max(spikerl_learner_train_iterations_total{{{L}}})", "iterations"),
            (f"sum(spikerl_learner_transitions_inserted_total{{{L}}})", "transitions inserted"),
        ], min_=0),
        row("Losses and value estimates"),
        timeseries("Critic loss", [(f"max by (seed) (spikerl_learner_critic_loss{{{L}}})", "critic (Q1 + Q2 MSE) {{seed}}")], log=True, w=8),
        timeseries("Actor loss", [(f"max by (seed) (spikerl_learner_actor_loss{{{L}}})", "actor (-Q1) {{seed}}")], w=8),
        timeseries("Proxy imitation loss", [(f"max by (seed) (spikerl_learner_proxy_loss{{{L}}})", "proxy (proxy algorithm only) {{seed}}")], log=True, w=8,
                   desc="How far the proxy ANN is from the spiking actor (empty for ann and vanilla)."),
        timeseries("Q estimate and TD target", [
            (f"max by (seed) (spikerl_learner_q_mean{{{L}}})", "mean Q1 {{seed}}"),
            (f"max by (seed) (spikerl_learner_td_target_mean{{{L}}})", "mean TD target {{seed}}"),
        ], w=12, desc="Means over the latest minibatch; a Q that drifts far above the returns suggests overestimation."),
        timeseries("Update-to-data ratio", [
            (f"max(spikerl_learner_samples_per_insert{{{L}}})", "measured"),
            (f"max(spikerl_learner_target_samples_per_insert{{{L}}})", "target"),
        ], w=12, decimals=3),
    ],
)

snn = dashboard(
    "spikerl-snn",
    "spikerl / Spiking network",
    "What the spiking actor does and costs: firing rates, synaptic operations, estimated energy and its ratio to the ANN.",
    [
        text("Energy model", "Measured on the learner during each evaluation (deterministic episodes). Energy follows the paper's 45 nm model: "
             "**77 fJ per synaptic operation** (SNN accumulate) and **3.97 pJ per multiply-accumulate** (ANN). "
             "The ANN equivalent has the same hidden widths on the raw observation. For `--algo ann` the ratio is 1.", h=3),
        row("Now"),
        stat("Firing rate", f"max(spikerl_snn_firing_rate{{{L}}})", unit="percentunit", decimals=2, desc="Mean over hidden and output neurons and time steps."),
        stat("SOPs / inference", f"max(spikerl_snn_sops_per_inference{{{L}}})", decimals=0),
        stat("Energy / inference", f"max(spikerl_snn_energy_nanojoules_per_inference{{{L}}})", unit="nJ", decimals=2),
        stat("ANN energy / inference", f"max(spikerl_snn_ann_energy_nanojoules_per_inference{{{L}}})", unit="nJ", decimals=1),
        stat("Energy vs ANN", f"max(spikerl_snn_energy_ratio_to_ann{{{L}}})", unit="percentunit", decimals=2,
             thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.5}, {"color": "red", "value": 1}]),
        stat("Time steps", f"max(spikerl_snn_timesteps{{{L}}})", decimals=0),
        row("Activity"),
        timeseries("Firing rate per population", [
            (f"max by (layer) (spikerl_snn_layer_firing_rate{{{L}}})", "{{layer}}"),
            (f"max(spikerl_snn_firing_rate{{{L}}})", "network (hidden + output)"),
        ], unit="percentunit", decimals=3, min_=0, desc="Spikes per neuron and time step; the encoder's rate reflects the observations."),
        timeseries("Operations per inference", [
            (f"max(spikerl_snn_sops_per_inference{{{L}}})", "SOPs"),
            (f"max(spikerl_snn_macs_per_inference{{{L}}})", "MACs"),
        ], min_=0),
        row("Energy"),
        timeseries("Energy per inference", [
            (f"max(spikerl_snn_energy_nanojoules_per_inference{{{L}}})", "spiking actor"),
            (f"max(spikerl_snn_ann_energy_nanojoules_per_inference{{{L}}})", "ANN equivalent"),
        ], unit="nJ", log=True, w=8),
        timeseries("Energy relative to the ANN", [(f"max(spikerl_snn_energy_ratio_to_ann{{{L}}})", "ratio")], unit="percentunit", w=8, min_=0, decimals=3),
        timeseries("Acting power (model)", [
            (f"1e-9 * sum(rate(spikerl_actor_env_steps_total[{RATE}])) * scalar(max(spikerl_snn_energy_nanojoules_per_inference{{{L}}}))", "spiking actor"),
            (f"1e-9 * sum(rate(spikerl_actor_env_steps_total[{RATE}])) * scalar(max(spikerl_snn_ann_energy_nanojoules_per_inference{{{L}}}))", "ANN equivalent"),
        ], unit="watt", w=8, min_=0, desc="Inferences per second of all actors times the energy per inference of the latest evaluation."),
        row("Context"),
        timeseries("Evaluation return", [
            (f"max(spikerl_eval_return_last{{{L}}})", "latest"),
            (f"max(spikerl_eval_return_best{{{L}}})", "best"),
        ], w=24, h=6, decimals=1),
    ],
)


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards")
    os.makedirs(out, exist_ok=True)
    for d in (health, learning, snn):
        path = os.path.join(out, d["uid"] + ".json")
        with open(path, "w") as f:
            json.dump(d, f, indent=2)
            f.write("\n")
        print(path)


if __name__ == "__main__":
    main()
