#!/usr/bin/env python3
"""Render spikerl's Kubernetes manifests from deploy/k8s/values.yaml (needs python3 and PyYAML).

  python3 deploy/k8s/render.py | kubectl apply -f -
  python3 deploy/k8s/render.py -f my-values.yaml --set actor.replicas=16 --set learner.gpu.enabled=true

What it renders (namespace from values):
  Namespace; Secret spikerl-token (unless auth.existingSecret);
  learner: headless Service + StatefulSet (one replica, PersistentVolumeClaim for the run folder), probes,
           resources, optional GPU (node selector, tolerations, nvidia.com/gpu limit, the -cuda image);
  actors:  Deployment (scale with kubectl scale or actor.replicas) + headless Service for metrics;
  Prometheus Operator: ServiceMonitor (learner :9100, actors :9101) and PrometheusRule (the groups of
           deploy/prometheus/rules/*.yml); Grafana: one ConfigMap per deploy/grafana/dashboards/*.json.
The same container conventions as docker-compose.yml: gRPC 50051, metrics 9100 (learner) / 9101 (actors),
non-root uid 10001, the token as a file from a Secret.
"""
import argparse
import copy
import glob
import json
import os
import secrets
import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("render.py needs PyYAML: pip install pyyaml")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NAME = "spikerl"
UID = 10001


def deep_merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def parse_scalar(text):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def set_path(values, dotted, value):
    keys = dotted.split(".")
    node = values
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise SystemExit(f"--set {dotted}: {k} is not a mapping")
    node[keys[-1]] = value


def load_values(files, sets):
    with open(os.path.join(HERE, "values.yaml")) as f:
        values = yaml.safe_load(f)
    for path in files:
        with open(path) as f:
            deep_merge(values, yaml.safe_load(f) or {})
    for item in sets:
        if "=" not in item:
            raise SystemExit(f"--set {item}: expected key.path=value")
        key, _, raw = item.partition("=")
        set_path(values, key, parse_scalar(raw))
    return values


def labels(component):
    return {
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": NAME,
    }


def selector(component):
    return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": component}


def meta(name, v, component, extra_labels=None):
    m = {"name": name, "namespace": v["namespace"], "labels": labels(component)}
    if extra_labels:
        m["labels"].update(extra_labels)
    return m


def env_list(mapping):
    return [{"name": k, "value": str(val).lower() if isinstance(val, bool) else str(val)} for k, val in mapping.items()]


def image(v, role, cuda=False):
    return f"{v['image']['prefix']}spikerl-{role}:{v['image']['tag']}{'-cuda' if cuda else ''}"


def pod_security():
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security():
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}}


def token_secret_name(v):
    return v["auth"]["existingSecret"] or f"{NAME}-token"


def token_volume(v):
    return ({"name": "token", "secret": {"secretName": token_secret_name(v), "defaultMode": 0o440}},
            {"name": "token", "mountPath": "/run/secrets/spikerl", "readOnly": True})


def namespace(v):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": v["namespace"], "labels": labels("namespace")}}


def secret(v):
    token = str(v["auth"]["token"] or "")
    if not token:
        token = secrets.token_hex(32)
        print("render.py: auth.token is empty: rendered a random token (set auth.token or auth.existingSecret "
              "so that applying again keeps it)", file=sys.stderr)
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta(f"{NAME}-token", v, "auth"),
            "type": "Opaque", "stringData": {"token": token}}


def learner_service(v):
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": meta(f"{NAME}-learner", v, "learner"),
        "spec": {
            # Headless: the StatefulSet's stable name spikerl-learner-0.spikerl-learner, and actors reach the
            # pod directly (one learner; gRPC streams are long-lived).
            "clusterIP": "None",
            "selector": selector("learner"),
            "ports": [
                {"name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
                {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def learner_probes(v):
    # Kubernetes' native gRPC probe on the learner's grpc.health.v1 service (plaintext; the port must be a
    # number). Liveness asks for the server as a whole (""); readiness for the learner's own service, which
    # is SERVING once the run is built or restored and NOT_SERVING from SIGTERM on.
    def alive():
        return {"grpc": {"port": 50051}}

    def ready():
        return {"grpc": {"port": 50051, "service": "spikerl.v1.Learner"}}

    return {
        "startupProbe": dict(ready(), periodSeconds=5, failureThreshold=60),
        "livenessProbe": dict(alive(), periodSeconds=15, timeoutSeconds=5, failureThreshold=4),
        "readinessProbe": dict(ready(), periodSeconds=10, timeoutSeconds=5),
    }


def learner_statefulset(v):
    L, R = v["learner"], v["run"]
    gpu = bool(L["gpu"]["enabled"])
    env = {
        "SPIKERL_LISTEN": "0.0.0.0:50051",
        "SPIKERL_METRICS": "0.0.0.0:9100",
        "SPIKERL_RUN_DIR": f"/runs/{R['name']}",
        "SPIKERL_ENV": R["env"], "SPIKERL_ALGO": R["algo"], "SPIKERL_NEURON": R["neuron"],
        "SPIKERL_SEED": R["seed"], "SPIKERL_STEPS": R["steps"], "SPIKERL_RANDOM_STEPS": R["randomSteps"],
        "SPIKERL_EVAL_EVERY": R["evalEvery"], "SPIKERL_EVAL_EPISODES": R["evalEpisodes"],
        "SPIKERL_CHECKPOINT_SECS": R["checkpointSecs"], "SPIKERL_RESUME": R["resume"],
        "SPIKERL_DEVICE": "cuda" if gpu else "cpu",
        "SPIKERL_LOG": R["log"],
        "SPIKERL_AUTH_TOKEN_FILE": "/run/secrets/spikerl/token",
    }
    if L["threads"]:
        env["SPIKERL_THREADS"] = L["threads"]
        env["OMP_NUM_THREADS"] = L["threads"]
    env.update(R.get("extraEnv") or {})
    resources = copy.deepcopy(L["resources"])
    node_selector = dict(L["nodeSelector"] or {})
    tolerations = list(L["tolerations"] or [])
    if gpu:
        resources.setdefault("limits", {})[L["gpu"]["resource"]] = L["gpu"]["count"]
        node_selector.update(L["gpu"]["nodeSelector"] or {})
        tolerations += L["gpu"]["tolerations"] or []
    token_vol, token_mount = token_volume(v)
    container = {
        "name": "learner",
        "image": image(v, "learner", cuda=gpu),
        "imagePullPolicy": v["image"]["pullPolicy"],
        "args": ["learner"],
        "env": env_list(env),
        "ports": [{"name": "grpc", "containerPort": 50051, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": 9100, "protocol": "TCP"}],
        "volumeMounts": [{"name": "runs", "mountPath": "/runs"}, {"name": "tmp", "mountPath": "/tmp"}, token_mount],
        "resources": resources,
        "securityContext": container_security(),
        **learner_probes(v),
    }
    pod = {
        "securityContext": pod_security(),
        # A checkpoint takes a moment: let SIGTERM finish it.
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, token_vol],
    }
    if node_selector:
        pod["nodeSelector"] = node_selector
    if tolerations:
        pod["tolerations"] = tolerations
    if v["image"]["pullSecrets"]:
        pod["imagePullSecrets"] = [{"name": n} for n in v["image"]["pullSecrets"]]
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": L["storage"]["size"]}}}
    if L["storage"]["storageClassName"]:
        claim["storageClassName"] = L["storage"]["storageClassName"]
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": meta(f"{NAME}-learner", v, "learner"),
        "spec": {
            "serviceName": f"{NAME}-learner",
            "replicas": 1,
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": selector("learner")},
            "template": {"metadata": {"labels": labels("learner")}, "spec": pod},
            "volumeClaimTemplates": [{"metadata": {"name": "runs", "labels": labels("learner")}, "spec": claim}],
        },
    }


def actor_deployment(v):
    A = v["actor"]
    token_vol, token_mount = token_volume(v)
    env = {
        "SPIKERL_LEARNER": f"http://{NAME}-learner:50051",
        "SPIKERL_METRICS": "0.0.0.0:9101",
        "SPIKERL_ENVS": A["envs"],
        "SPIKERL_LOG": v["run"]["log"],
        "SPIKERL_AUTH_TOKEN_FILE": "/run/secrets/spikerl/token",
    }
    container = {
        "name": "actor",
        "image": image(v, "actor"),
        "imagePullPolicy": v["image"]["pullPolicy"],
        "args": ["actor"],
        "env": env_list(env),
        "ports": [{"name": "metrics", "containerPort": 9101, "protocol": "TCP"}],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, token_mount],
        "resources": copy.deepcopy(A["resources"]),
        "securityContext": container_security(),
        "livenessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 15, "timeoutSeconds": 5,
                          "failureThreshold": 4},
        "readinessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 10, "timeoutSeconds": 5},
    }
    pod = {"securityContext": pod_security(), "terminationGracePeriodSeconds": 30, "containers": [container],
           "volumes": [{"name": "tmp", "emptyDir": {}}, token_vol]}
    if A["nodeSelector"]:
        pod["nodeSelector"] = A["nodeSelector"]
    if A["tolerations"]:
        pod["tolerations"] = A["tolerations"]
    if v["image"]["pullSecrets"]:
        pod["imagePullSecrets"] = [{"name": n} for n in v["image"]["pullSecrets"]]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta(f"{NAME}-actor", v, "actor"),
        "spec": {
            "replicas": A["replicas"],
            "selector": {"matchLabels": selector("actor")},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": labels("actor")}, "spec": pod},
        },
    }


def actor_service(v):
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": meta(f"{NAME}-actor", v, "actor"),
        "spec": {"clusterIP": "None", "selector": selector("actor"),
                 "ports": [{"name": "metrics", "port": 9101, "targetPort": "metrics", "protocol": "TCP"}]},
    }


def service_monitor(v):
    M = v["monitoring"]
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": meta(NAME, v, "monitoring", M["labels"]),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME},
                         "matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In",
                                               "values": ["learner", "actor"]}]},
            "namespaceSelector": {"matchNames": [v["namespace"]]},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": M["interval"], "scheme": "http"}],
        },
    }


def rule_groups(pattern):
    groups = []
    for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
        groups += doc.get("groups", [])
    return groups


def prometheus_rule(v):
    M = v["monitoring"]
    groups = rule_groups(M["rulesGlob"])
    if not groups:
        print(f"render.py: no rule groups in {M['rulesGlob']}: no PrometheusRule rendered", file=sys.stderr)
        return None
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": meta(NAME, v, "monitoring", M["labels"]), "spec": {"groups": groups}}


def dashboard_configmaps(v):
    M = v["monitoring"]
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, M["dashboardsGlob"]))):
        with open(path) as f:
            text = f.read()
        json.loads(text)  # a dashboard must be valid JSON
        stem = os.path.splitext(os.path.basename(path))[0].lower().replace("_", "-").replace(".", "-")
        out.append({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": meta(f"{NAME}-dashboard-{stem}", v, "monitoring", M["dashboardLabel"]),
                    "data": {os.path.basename(path): text}})
    if not out:
        print(f"render.py: no dashboards in {M['dashboardsGlob']}: no dashboard ConfigMaps rendered", file=sys.stderr)
    return out


def render(values):
    docs = []
    if values["createNamespace"]:
        docs.append(namespace(values))
    if not values["auth"]["existingSecret"]:
        docs.append(secret(values))
    docs += [learner_service(values), learner_statefulset(values), actor_service(values), actor_deployment(values)]
    M = values["monitoring"]
    if M["serviceMonitor"]:
        docs.append(service_monitor(values))
    if M["prometheusRule"]:
        rule = prometheus_rule(values)
        if rule:
            docs.append(rule)
    if M["grafanaDashboards"]:
        docs += dashboard_configmaps(values)
    return docs


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def dump(docs):
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-f", "--values", action="append", default=[], help="values file to merge over values.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one value, e.g. actor.replicas=8")
    args = ap.parse_args(argv)
    sys.stdout.write(dump(render(load_values(args.values, args.set))))


if __name__ == "__main__":
    main()
