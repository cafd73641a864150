#!/usr/bin/env python3
"""deploy/ read against the server it deploys: the Kubernetes manifests parse as YAML and name
options, ports, probes and labels that rsr-serve has (every option in `rsr-serve --help`, the
container port the one --port gives, /health probed on it, the labels llm-d discovers, the
Service and the InferencePool selecting the pods and targeting that port, a grace period longer
than --drain); the systemd unit's and the Dockerfile's command lines use options rsr-serve has.
Usage: deploy_check.py RSR-SERVE"""
import json
import os
import re
import shlex
import subprocess
import sys

import yaml

DEPLOY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def options_of(args):
    return [a.split("=")[0] for a in args if a.startswith("--")]


def value_of(args, opt):
    return args[args.index(opt) + 1] if opt in args else None


def main():
    helptext = subprocess.run([sys.argv[1], "--help"], capture_output=True, text=True, check=True).stdout
    known = set(re.findall(r"(--[a-z][a-z0-9-]*)", helptext))
    docs = list(yaml.safe_load_all(open(os.path.join(DEPLOY, "k8s", "rsr-serve.yaml"))))
    docs += list(yaml.safe_load_all(open(os.path.join(DEPLOY, "k8s", "inferencepool.yaml"))))
    by_kind = {d["kind"]: d for d in docs}
    check(set(by_kind) >= {"Deployment", "Service", "InferencePool", "HTTPRoute"}, f"kinds: {sorted(by_kind)}")
    dep = by_kind["Deployment"]["spec"]
    pod = dep["template"]
    c = pod["spec"]["containers"][0]
    args = [str(a) for a in c["args"]]
    unknown = [o for o in options_of(args) if o not in known]
    check(not unknown, f"Deployment: every option is rsr-serve's (unknown: {unknown})")
    port = int(value_of(args, "--port"))
    svc_name = by_kind["Service"]["metadata"]["name"]
    hosts = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--allow-host"]
    check("*" in hosts or any(h.startswith(svc_name) for h in hosts),
          f"Deployment: --allow-host lets the Service's and the gateway's Host in (given: {hosts}; "
          "without it a request by name gets 403)")
    check(c["ports"][0]["containerPort"] == port, f"Deployment: containerPort is --port {port}")
    for probe in ("startupProbe", "readinessProbe"):
        p = c[probe]["httpGet"]
        check(p["path"] == "/health" and p["port"] == port, f"Deployment: {probe} GET /health on {port}")
    check(c["livenessProbe"].get("tcpSocket", {}).get("port") == port,
          "Deployment: liveness by TCP (a draining pod answers /health 503 and must not be restarted)")
    labels = pod["metadata"]["labels"]
    check(labels.get("llm-d.ai/inference-serving") == "true", "pods labelled llm-d.ai/inference-serving: \"true\"")
    check(dep["selector"]["matchLabels"].items() <= labels.items(), "Deployment selects its pods")
    svc = by_kind["Service"]["spec"]
    check(svc["selector"].items() <= labels.items() and svc["ports"][0]["targetPort"] == port,
          "Service: selects the pods, targets their port")
    pool = by_kind["InferencePool"]["spec"]
    check(pool["selector"]["matchLabels"].items() <= labels.items() and pool["targetPorts"][0]["number"] == port,
          "InferencePool: selects the pods, targets their port")
    route = by_kind["HTTPRoute"]["spec"]["rules"][0]["backendRefs"][0]
    check(route["kind"] == "InferencePool" and route["name"] == by_kind["InferencePool"]["metadata"]["name"],
          "HTTPRoute: to the pool")
    ev = value_of(args, "--kv-events")
    env = {e["name"]: e for e in c.get("env", [])}
    check(ev is None or (int(ev.rsplit(":", 1)[1]) in [q["containerPort"] for q in c["ports"]] and
                         env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") ==
                         "status.podIP"), f"Deployment: --kv-events {ev} on a container port, POD_IP the pod's")
    drain = int(value_of(args, "--drain") or 10)
    check(pod["spec"]["terminationGracePeriodSeconds"] > drain, f"grace period longer than --drain {drain}")

    unit = open(os.path.join(DEPLOY, "rsr-serve.service")).read()
    exec_start = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))
    unknown = [o for o in options_of(exec_start) if o not in known]
    check(exec_start[0].endswith("rsr-serve") and not unknown, f"systemd unit: rsr-serve's options (unknown: {unknown})")
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
    check(stop > int(value_of(exec_start, "--drain") or 10), "systemd unit: the stop timeout outlasts --drain")
    for must in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n",
                 "PrivateTmp=yes", "RestrictAddressFamilies="):
        check(must in unit, f"systemd unit: {must.strip()}")

    docker = open(os.path.join(DEPLOY, "Dockerfile")).read()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", docker, re.M).group(1))
    unknown = [o for o in options_of(cmd) if o not in known]
    check(not unknown and docker.count("FROM ") >= 2, f"Dockerfile: multi-stage, rsr-serve's options (unknown: {unknown})")
    haproxy = open(os.path.join(DEPLOY, "haproxy.cfg")).read()
    check("httpchk GET /health" in haproxy and "retry-on 503" in haproxy, "haproxy.cfg: checks /health, retries a 503")
    nginx = open(os.path.join(DEPLOY, "nginx.conf")).read()
    check("http_503" in nginx and "proxy_set_header Host" in nginx, "nginx.conf: retries a 503, passes the Host")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
