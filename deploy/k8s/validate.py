#!/usr/bin/env python3
"""Validate the rendered Kubernetes manifests offline (no cluster): tests/docker.rs runs this.

  python3 deploy/k8s/validate.py [render.py options, e.g. --set learner.gpu.enabled=true]

Needs `pip install kubernetes-validate` (the Kubernetes API's JSON schemas for many versions, from PyPI).
  1. Built-in kinds: each document against the strict schemas (no unknown fields) of the oldest and the newest
     Kubernetes versions below.
  2. Prometheus Operator kinds (ServiceMonitor, PrometheusRule): against schemas/*.json, the CRDs' fields written
     out here (kubernetes-validate has no CRDs).
  3. References between documents: Service selectors find pods, named ports exist, the StatefulSet's
     serviceName is a headless Service, the ServiceMonitor finds the learner and actor Services' metrics ports,
     secrets and the actors' learner URL point at rendered objects.
Prints one "ok KIND/NAME" line per document; exits 1 with every problem listed otherwise.
"""
import json
import os
import sys

import jsonschema
import kubernetes_validate

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import render  # noqa: E402

# Native gRPC probes are GA since 1.27; 1.29 is the oldest release still commonly supported by providers.
VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}


def schema_errors(doc):
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRD_SCHEMAS:
        with open(os.path.join(HERE, "schemas", CRD_SCHEMAS[key])) as f:
            schema = json.load(f)
        validator = jsonschema.Draft7Validator(schema)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    errors = []
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"k8s {version}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
        except kubernetes_validate.utils.SchemaNotFoundError as e:
            errors.append(f"k8s {version}: {e.message}")
    return errors


def pod_templates(docs):
    for d in docs:
        if d["kind"] in ("StatefulSet", "Deployment"):
            yield d, d["spec"]["template"]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def selects(label_selector, labels):
    if not matches(label_selector.get("matchLabels", {}), labels):
        return False
    for e in label_selector.get("matchExpressions", []):
        value = labels.get(e["key"])
        if e["operator"] == "In" and value not in e["values"]:
            return False
        if e["operator"] == "NotIn" and value in e["values"]:
            return False
        if e["operator"] == "Exists" and value is None:
            return False
        if e["operator"] == "DoesNotExist" and value is not None:
            return False
    return True


def reference_errors(docs, values):
    errors = []
    ns = values["namespace"]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != ns:
            errors.append(f"{d['kind']}/{d['metadata']['name']}: not in namespace {ns}")
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    secrets = {s["metadata"]["name"] for s in by_kind.get("Secret", [])}
    if values["auth"]["existingSecret"]:
        secrets.add(values["auth"]["existingSecret"])

    for workload, template in pod_templates(docs):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        if not selects(workload["spec"]["selector"], template["metadata"]["labels"]):
            errors.append(f"{name}: its selector does not match its pod template's labels")
        pod = template["spec"]
        for c in pod["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = c.get(probe_name)
                if not probe:
                    continue
                for kind in ("httpGet", "tcpSocket", "grpc"):
                    port = probe.get(kind, {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        errors.append(f"{name}: {probe_name} uses port {port!r}, not a container port")
                    if isinstance(port, int) and port not in ports.values():
                        errors.append(f"{name}: {probe_name} uses port {port}, not a container port")
            if not c.get("resources", {}).get("requests"):
                errors.append(f"{name}: container {c['name']} has no resource requests")
            if not (c.get("livenessProbe") and c.get("readinessProbe")):
                errors.append(f"{name}: container {c['name']} lacks a liveness or readiness probe")
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            declared = {v["name"] for v in pod.get("volumes", [])}
            declared |= {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
            for m in mounts - declared:
                errors.append(f"{name}: volumeMount {m!r} has no volume")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            errors.append(f"{name}: pods must run as non-root")
        for v in pod.get("volumes", []):
            if "secret" in v and v["secret"]["secretName"] not in secrets:
                errors.append(f"{name}: secret {v['secret']['secretName']!r} is neither rendered nor auth.existingSecret")

    for s in by_kind.get("StatefulSet", []):
        svc = services.get(s["spec"]["serviceName"])
        if not svc or svc["spec"].get("clusterIP") != "None":
            errors.append(f"StatefulSet/{s['metadata']['name']}: serviceName must name a headless Service")
        if not s["spec"].get("volumeClaimTemplates"):
            errors.append(f"StatefulSet/{s['metadata']['name']}: no persistent volume for the run folder")

    for name, svc in services.items():
        pods = [t for _, t in pod_templates(docs) if matches(svc["spec"]["selector"], t["metadata"]["labels"])]
        if not pods:
            errors.append(f"Service/{name}: its selector matches no pod template")
            continue
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            for t in pods:
                names = {cp["name"] for c in t["spec"]["containers"] for cp in c.get("ports", [])}
                nums = {cp["containerPort"] for c in t["spec"]["containers"] for cp in c.get("ports", [])}
                if (isinstance(target, str) and target not in names) or (isinstance(target, int) and target not in nums):
                    errors.append(f"Service/{name}: port {p['name']} targets {target!r}, which its pods do not expose")

    for sm in by_kind.get("ServiceMonitor", []):
        found = [s for s in services.values() if selects(sm["spec"]["selector"], s["metadata"]["labels"])]
        components = sorted(s["metadata"]["labels"].get("app.kubernetes.io/component", "") for s in found)
        if components != ["actor", "learner"]:
            errors.append(f"ServiceMonitor/{sm['metadata']['name']}: selects {components}, expected the learner and actor Services")
        for ep in sm["spec"]["endpoints"]:
            for s in found:
                if ep["port"] not in {p["name"] for p in s["spec"]["ports"]}:
                    errors.append(f"ServiceMonitor: Service/{s['metadata']['name']} has no port named {ep['port']!r}")

    learner_svc = f"{render.NAME}-learner"
    for d in by_kind.get("Deployment", []):
        env = {e["name"]: e.get("value") for c in d["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
        url = env.get("SPIKERL_LEARNER", "")
        if url != f"http://{learner_svc}:50051" or learner_svc not in services:
            errors.append(f"Deployment/{d['metadata']['name']}: SPIKERL_LEARNER {url!r} does not name the learner Service's gRPC port")
    return errors


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-f", "--values", action="append", default=[])
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args(argv)
    values = render.load_values(args.values, args.set)
    docs = render.render(values)
    # What kubectl would read: the YAML text, parsed back.
    import yaml
    docs = [d for d in yaml.safe_load_all(render.dump(docs)) if d]
    problems = 0
    for d in docs:
        name = f"{d['kind']}/{d['metadata']['name']}"
        errors = schema_errors(d)
        if errors:
            problems += len(errors)
            for e in errors:
                print(f"INVALID {name}: {e}")
        else:
            crd = (d["apiVersion"], d["kind"]) in CRD_SCHEMAS
            print(f"ok {name} ({'schemas/' + CRD_SCHEMAS[(d['apiVersion'], d['kind'])] if crd else 'Kubernetes ' + ', '.join(VERSIONS) + ' strict'})")
    for e in reference_errors(docs, values):
        problems += 1
        print(f"INVALID reference: {e}")
    for d in docs:
        if d["kind"] == "StatefulSet":
            c = d["spec"]["template"]["spec"]["containers"][0]
            claims = [(t["metadata"]["name"], t["spec"]["resources"]["requests"]["storage"]) for t in d["spec"]["volumeClaimTemplates"]]
            print(f"learner image {c['image']}, limits {json.dumps(c['resources'].get('limits', {}))}, "
                  f"nodeSelector {json.dumps(d['spec']['template']['spec'].get('nodeSelector', {}))}, "
                  f"volumeClaimTemplates {claims}")
    print(f"{len(docs)} documents, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
