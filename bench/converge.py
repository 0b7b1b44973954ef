"""Converge 100, 1,000 (and 10,000) network objects three ways on a real testbed apiserver.

Peers, measured in the same run on the same cluster with the same definitions, each reading
them from the same file (one JSON `kind: List`, as kubectl takes it):
  fabric           k8snet.fabric.resource_set (state=replaced, src=<file>, report_unchanged=false:
                   the result names the objects that changed, the summary counts all) via ansible-playbook
  kubernetes.core  kubernetes.core.k8s (state=present, src=<file>) via ansible-playbook
  kubectl          kubectl apply --server-side -f <file>  (the testbed's own kubectl build)

For each size: a first apply into fresh namespaces and an unchanged re-run, repeated (--repeat)
with the tools' order rotated each round so that none always runs on the fullest store. Prints
every measurement, then medians of wall time and requests (counted from the apiserver's audit
log) and the ratios of the medians. kubernetes.core comes from the
`ansible` package, installed into .cache/bench/venv for the benchmark only.

    make bench            # or: .venv/bin/python -m bench.converge --sizes 100,1000 --repeat 3
    make bench-large      # 10,000 objects: .venv/bin/python -m bench.converge --sizes 10000 --repeat 1

Besides the times and requests it prints the peak memory of resource_set's module process (the
module reports it) per size and phase.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "collections"))

from tests.testbed import Testbed  # noqa: E402
from tests.testbed.build import BIN  # noqa: E402

BENCH_VENV = REPO / ".cache" / "bench" / "venv"
RESULTS = REPO / "bench" / "results"
CLUSTER = "us-east"
TOOLS = ("fabric", "kubernetes.core", "kubectl")


def ensure_bench_venv() -> Path:
    python = BENCH_VENV / "bin" / "python"
    if not (BENCH_VENV / "bin" / "ansible-playbook").exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REPO / "bench" / "requirements.txt")],
                       check=True)
    return BENCH_VENV / "bin"


def generate(count: int, prefix: str) -> tuple[list[str], list[dict]]:
    """count objects, 40% NetworkPolicies, 30% Services, 30% ConfigMaps, 50 per namespace."""
    namespaces = [f"{prefix}-{i}" for i in range(max(1, count // 50))]
    objects = []
    for index in range(count):
        ns = namespaces[index % len(namespaces)]
        kind = ("NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy",
                "Service", "Service", "Service", "ConfigMap", "ConfigMap", "ConfigMap")[index % 10]
        name = f"o{index:04d}"
        if kind == "NetworkPolicy":
            objects.append({"apiVersion": "networking.k8s.io/v1", "kind": kind,
                            "metadata": {"name": name, "namespace": ns},
                            "spec": {"podSelector": {"matchLabels": {"app": name}},
                                     "policyTypes": ["Ingress", "Egress"],
                                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": "web"}}}],
                                                  "ports": [{"protocol": "TCP", "port": 8080}]}],
                                     "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.255.0.0/16"]}}]}]}})
        elif kind == "Service":
            objects.append({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns},
                            "spec": {"type": "ClusterIP", "selector": {"app": name},
                                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}})
        else:
            objects.append({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns},
                            "data": {"endpoint": f"https://{name}.example.com", "index": str(index)}})
    return namespaces, objects


def run_tool(tool: str, bindir: Path, work: Path, objects_file: Path, testbed: Testbed, set_name: str,
             set_namespace: str) -> float | None:
    """One run of a tool; for fabric, the module's peak memory in MiB."""
    conn = testbed.connection(CLUSTER)
    if tool == "kubectl":
        cmd = [str(BIN / "kubectl"), "apply", "--server-side", "-f", str(objects_file),
               "--kubeconfig", conn["kubeconfig"], "--context", conn["context"]]
    else:
        if tool == "fabric":
            tasks = [{"k8snet.fabric.resource_set": {"name": set_name, "set_namespace": set_namespace,
                                                     "state": "replaced", **conn, "src": [str(objects_file)],
                                                     "report_unchanged": False},
                      "register": "converged"},
                     {"ansible.builtin.debug": {"msg": "peak_memory_mb={{ converged.peak_memory_mb }}"}}]
        else:
            tasks = [{"kubernetes.core.k8s": {"state": "present", **conn, "src": str(objects_file)}}]
        playbook = work / f"{tool}.yml"
        playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
        cmd = [str(bindir / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
               "-e", f"ansible_python_interpreter={bindir / 'python'}"]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=f"{REPO / 'collections'}",
               ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    found = re.search(r"peak_memory_mb=([0-9.]+)", proc.stdout)
    return float(found.group(1)) if found else None


def requests_since(testbed: Testbed, mark: int) -> int:
    return sum(1 for e in testbed.audit_events(CLUSTER, since=mark)
               if e.get("user", {}).get("username") == "k8snet-admin")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bindir = ensure_bench_venv()
    testbed = Testbed()
    started_here = not testbed.is_up()
    testbed.up()
    admin = testbed.client(CLUSTER)
    work = REPO / ".cache" / "bench" / "work"
    work.mkdir(parents=True, exist_ok=True)
    stamp = str(int(time.time()))[-6:]
    rows = []
    try:
        for size, round_ in ((int(s), r) for s in args.sizes.split(",") for r in range(args.repeat)):
            for tool in TOOLS[round_ % 3:] + TOOLS[:round_ % 3]:
                prefix = f"b{stamp}-{size}-{round_}-{tool.replace('.', '')}"
                namespaces, objects = generate(size, prefix)
                for ns in namespaces:
                    admin.request("POST", "/api/v1/namespaces",
                                  body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
                objects_file = work / f"{prefix}.json"
                objects_file.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
                for phase in ("first apply", "unchanged re-run"):
                    mark = testbed.audit_mark(CLUSTER)
                    began = time.monotonic()
                    memory = run_tool(tool, bindir, work, objects_file, testbed, f"bench-{prefix}", namespaces[0])
                    seconds = time.monotonic() - began
                    rows.append({"size": size, "round": round_, "tool": tool, "phase": phase, "memory_mb": memory,
                                 "seconds": round(seconds, 2), "requests": requests_since(testbed, mark)})
                    print(f"{size:>5} round {round_} {tool:<16} {phase:<17} {seconds:7.2f}s {rows[-1]['requests']:>6} requests"
                          + (f" {memory:.0f} MiB peak (module)" if memory else ""), flush=True)
    finally:
        if started_here:
            testbed.down()
    # What ansible-playbook itself costs (start-up, one task), paid by both Ansible tools.
    noop = work / "noop.yml"
    noop.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                     "tasks": [{"ansible.builtin.meta": "noop"}]}]))
    began = time.monotonic()
    subprocess.run([str(bindir / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(noop)],
                   capture_output=True, check=True)
    overhead = time.monotonic() - began
    print(f"\nansible-playbook fixed cost (one no-op task): {overhead:.2f}s")
    medians = {}
    for size in sorted({r["size"] for r in rows}):
        for tool in TOOLS:
            for phase in ("first apply", "unchanged re-run"):
                runs = [r for r in rows if (r["size"], r["tool"], r["phase"]) == (size, tool, phase)]
                medians[size, tool, phase] = {"seconds": statistics.median(r["seconds"] for r in runs),
                                              "requests": statistics.median(r["requests"] for r in runs)}
    print(f"medians of {args.repeat} rounds; ratios = peer time / fabric time (> 1: fabric is faster):")
    for size in sorted({r["size"] for r in rows}):
        for phase in ("first apply", "unchanged re-run"):
            mine = medians[size, "fabric", phase]
            for peer in TOOLS[1:]:
                theirs = medians[size, peer, phase]
                net = ""
                if peer == "kubernetes.core":
                    net = (f", {max(theirs['seconds'] - overhead, 0.01) / max(mine['seconds'] - overhead, 0.01):.1f}x"
                           f" without the shared ansible-playbook cost")
                print(f"{size:>5} {phase:<17} fabric {mine['seconds']:5.2f}s vs {peer:<16} {theirs['seconds']:5.2f}s"
                      f" {theirs['seconds'] / mine['seconds']:5.1f}x (requests {mine['requests']:.0f} vs "
                      f"{theirs['requests']:.0f}{net})")
    for size in sorted({r["size"] for r in rows}):
        for phase in ("first apply", "unchanged re-run"):
            peaks = [r["memory_mb"] for r in rows if (r["size"], r["tool"], r["phase"]) == (size, "fabric", phase)]
            if all(peaks):
                print(f"{size:>5} {phase:<17} resource_set module peak memory {max(peaks):.0f} MiB")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "converge.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
