#!/usr/bin/env python3
"""Offline check of contrib/k8s/fibd.yaml (no cluster, no kubectl): the
YAML parses, the kinds and apiVersions are the ones Kubernetes serves,
the required fields are there with the right types, the names and labels
tie together (selector, template, Service, named port), the probes hit
GET /healthz on the port fibd listens on, the drain is wired (fibd
--drain SECS; readiness notices it within SECS, liveness does not take a
draining pod for dead, and the grace period outlasts it), and the
hardening is in place.

  k8s_check.py FILE            prints a line per failed check; exit 0
                               when none
  k8s_check.py --mutants FILE  FILE must pass, and each copy of it with
                               one thing broken (the drain unwired, ...)
                               must fail; exit 0 when so

Needs python3-yaml (Debian).
"""
import copy
import re
import sys

import yaml

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
CPU = re.compile(r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$")
MEM = re.compile(r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$")

# Fields Kubernetes knows at the levels checked (a typo is an error: the
# API server would reject it, or drop it silently with older clients).
CONTAINER_KEYS = {"name", "image", "imagePullPolicy", "args", "command",
                  "ports", "env", "readinessProbe", "livenessProbe",
                  "startupProbe", "resources", "securityContext",
                  "volumeMounts"}
PROBE_KEYS = {"httpGet", "tcpSocket", "exec", "grpc", "initialDelaySeconds",
              "periodSeconds", "timeoutSeconds", "failureThreshold",
              "successThreshold", "terminationGracePeriodSeconds"}

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
    return bool(ok)


def get(obj, path):
    """obj["a"]["b"]... for "a.b...", or None."""
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def cpu_milli(q):
    return int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)


def mem_bytes(q):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
             "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for u, m in units.items():
        if q.endswith(u):
            return int(q[: -len(u)]) * m
    return int(q)


def check_meta(obj, kind):
    name = get(obj, "metadata.name")
    check(isinstance(name, str) and DNS_LABEL.match(name),
          "%s: metadata.name is not a DNS label" % kind)
    check(set(obj) <= {"apiVersion", "kind", "metadata", "spec"},
          "%s: unknown top-level field" % kind)


def check_probe(c, which, ports):
    p = c.get(which)
    if not check(isinstance(p, dict), "container: no %s" % which):
        return
    check(set(p) <= PROBE_KEYS, "%s: unknown field" % which)
    path, port = get(p, "httpGet.path"), get(p, "httpGet.port")
    check(path == "/healthz", "%s: not GET /healthz" % which)
    check(port in ports or port in ports.values(),
          "%s: port %r is not a container port" % (which, port))
    for k in PROBE_KEYS - {"httpGet", "tcpSocket", "exec", "grpc"}:
        if k in p:
            check(isinstance(p[k], int) and p[k] >= 0,
                  "%s.%s: not a count" % (which, k))


def check_resources(c):
    r = c.get("resources") or {}
    req, lim = r.get("requests") or {}, r.get("limits") or {}
    good = True
    for part, d in (("requests", req), ("limits", lim)):
        good &= check(isinstance(d.get("cpu"), str) and CPU.match(d["cpu"]),
                      "resources.%s.cpu: missing or not a quantity" % part)
        good &= check(isinstance(d.get("memory"), str) and
                      MEM.match(d["memory"]),
                      "resources.%s.memory: missing or not a quantity" % part)
    if good:
        check(cpu_milli(req["cpu"]) <= cpu_milli(lim["cpu"]),
              "resources: cpu request above its limit")
        check(mem_bytes(req["memory"]) <= mem_bytes(lim["memory"]),
              "resources: memory request above its limit")


def check_container(c, pod_sc):
    check(set(c) <= CONTAINER_KEYS, "container: unknown field %s"
          % sorted(set(c) - CONTAINER_KEYS))
    check(isinstance(c.get("name"), str) and DNS_LABEL.match(c["name"]),
          "container: bad name")
    check(isinstance(c.get("image"), str) and c["image"],
          "container: no image")
    ports = {}
    for p in c.get("ports") or []:
        n = p.get("containerPort")
        if check(isinstance(n, int) and 0 < n < 65536,
                 "container: bad containerPort %r" % n):
            ports[p.get("name", n)] = n
    check(len(ports) >= 1, "container: no port")
    args = [str(a) for a in c.get("args") or []]
    listen = args[args.index("--listen") + 1] if "--listen" in args[:-1] \
        else ""
    check(listen.startswith("0.0.0.0:") or listen.startswith("[::]:"),
          "args: fibd must --listen on every address in a pod")
    check(listen.rsplit(":", 1)[-1] in [str(n) for n in ports.values()],
          "args: --listen port is not the containerPort")
    check_probe(c, "readinessProbe", ports)
    check_probe(c, "livenessProbe", ports)
    check_resources(c)
    sc = c.get("securityContext") or {}
    check(sc.get("allowPrivilegeEscalation") is False,
          "securityContext: allowPrivilegeEscalation must be false")
    check(sc.get("readOnlyRootFilesystem") is True,
          "securityContext: readOnlyRootFilesystem must be true")
    check(get(sc, "capabilities.drop") == ["ALL"],
          "securityContext: capabilities must drop ALL")
    check(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True,
          "securityContext: runAsNonRoot must be true")
    return ports


def probe_window(p):
    """Seconds of failed checks before a probe acts (Kubernetes' defaults
    where a field is left out)."""
    return p.get("periodSeconds", 10) * p.get("failureThreshold", 3)


def check_drain(pod, c):
    """fibd --drain SECS: on SIGTERM it serves SECS more with /healthz at
    503. The readiness probe must see that within SECS (the Service stops
    sending it traffic before it stops serving), the liveness probe must
    not (a draining pod is not dead), and the grace period must let the
    drain end and the last requests be answered before SIGKILL."""
    args = [str(a) for a in c.get("args") or []]
    if not check("--drain" in args[:-1], "args: no --drain SECS"):
        return
    try:
        drain = float(args[args.index("--drain") + 1])
    except ValueError:
        drain = 0
    if not check(drain > 0, "args: --drain must be a positive number"):
        return
    ready, live = c.get("readinessProbe"), c.get("livenessProbe")
    if isinstance(ready, dict):
        check(probe_window(ready) < drain,
              "readinessProbe: %ds of failures to notice a %gs drain; "
              "want less" % (probe_window(ready), drain))
    if isinstance(live, dict):
        check(probe_window(live) > drain,
              "livenessProbe: a %gs drain would restart the pod as dead"
              % drain)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(isinstance(grace, int) and grace > drain,
          "terminationGracePeriodSeconds %r: not above --drain %g"
          % (grace, drain))


def check_deployment(d):
    check_meta(d, "Deployment")
    spec = d.get("spec") or {}
    check(isinstance(spec.get("replicas"), int) and spec["replicas"] >= 1,
          "Deployment: replicas must be a count >= 1")
    sel = get(spec, "selector.matchLabels")
    labels = get(spec, "template.metadata.labels") or {}
    check(isinstance(sel, dict) and sel and
          all(labels.get(k) == v for k, v in sel.items()),
          "Deployment: selector.matchLabels do not match the template")
    pod = get(spec, "template.spec") or {}
    cs = pod.get("containers")
    if not check(isinstance(cs, list) and len(cs) == 1,
                 "Deployment: want one container"):
        return labels, {}
    ports = check_container(cs[0], pod.get("securityContext") or {})
    check_drain(pod, cs[0])
    return labels, ports


def check_service(s, labels, ports):
    check_meta(s, "Service")
    spec = s.get("spec") or {}
    sel = spec.get("selector")
    check(isinstance(sel, dict) and sel and
          all(labels.get(k) == v for k, v in sel.items()),
          "Service: selector matches no pod of the Deployment")
    check(spec.get("type", "ClusterIP") in ("ClusterIP", "NodePort",
                                            "LoadBalancer"),
          "Service: unknown type")
    sp = spec.get("ports") or []
    check(len(sp) >= 1, "Service: no port")
    for p in sp:
        check(isinstance(p.get("port"), int) and 0 < p["port"] < 65536,
              "Service: bad port")
        t = p.get("targetPort", p.get("port"))
        check(t in ports or t in ports.values(),
              "Service: targetPort %r is not a container port" % t)
        check(p.get("protocol", "TCP") == "TCP", "Service: not TCP")


def check_docs(docs):
    """Runs every check on the parsed documents; the failures."""
    failures.clear()
    kinds = {(d.get("apiVersion"), d.get("kind")): d for d in docs}
    check(len(kinds) == len(docs) == 2,
          "want one Deployment and one Service, got %s" % sorted(kinds))
    dep = kinds.get(("apps/v1", "Deployment"))
    svc = kinds.get(("v1", "Service"))
    if check(dep is not None, "no Deployment of apiVersion apps/v1"):
        labels, ports = check_deployment(dep)
        if check(svc is not None, "no Service of apiVersion v1"):
            check_service(svc, labels, ports)
    return list(failures)


def container(docs):
    return next(d for d in docs if d.get("kind") == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]


def pod(docs):
    return next(d for d in docs if d.get("kind") == "Deployment")[
        "spec"]["template"]["spec"]


def drop_drain(docs):
    args = container(docs)["args"]
    i = args.index("--drain")
    del args[i:i + 2]


def set_arg(docs, name, value):
    args = container(docs)["args"]
    args[args.index(name) + 1] = value


# Each breaks one thing the checks above must catch.
MUTANTS = {
    "no --drain": drop_drain,
    "--drain 0": lambda d: set_arg(d, "--drain", "0"),
    "grace period under the drain":
        lambda d: pod(d).update(terminationGracePeriodSeconds=2),
    "readiness too slow for the drain":
        lambda d: container(d)["readinessProbe"].update(periodSeconds=30),
    "readiness on another path":
        lambda d: container(d)["readinessProbe"]["httpGet"].update(
            path="/"),
    "liveness kills a draining pod":
        lambda d: container(d)["livenessProbe"].update(
            periodSeconds=1, failureThreshold=1),
    "listening on loopback":
        lambda d: set_arg(d, "--listen", "127.0.0.1:25000"),
}


def run_mutants(docs):
    bad = check_docs(docs)
    for f in bad:
        print("FAIL: the file itself:", f)
    missed = 0
    for name, mutate in MUTANTS.items():
        m = copy.deepcopy(docs)
        mutate(m)
        if not check_docs(m):
            print("FAIL: not caught: %s" % name)
            missed += 1
    print("k8s_check: %d mutants, %d not caught" % (len(MUTANTS), missed))
    return 1 if bad or missed else 0


def main():
    mutants = sys.argv[1] == "--mutants"
    path = sys.argv[-1]
    with open(path) as f:
        try:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            print("FAIL: not YAML: %s" % e)
            return 1
    if mutants:
        return run_mutants(docs)
    check_docs(docs)
    for f in failures:
        print("FAIL:", f)
    print("k8s_check: %s: %s" % (path,
                                 "%d problems" % len(failures)
                                 if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
