"""The analyzer against its peers on generated clusters of 200 / 2,000 pods and 50 / 500 policies
(mostly isolated namespaces), and with --dense on a dense random cluster (issue 14: 4,000
workloads, 1,000 policies, 80 namespaces, most pods reachable).

Peers, run in the same process tree on the same YAML: np-guard netpol-analyzer (`netpolicy list`,
built by the testbed) and IBM network-config-analyzer (`nca --connectivity`, PyPI, in
.cache/peers/nca-venv; on dense cases only with --dense-nca). Each tool is its own process that
reads the YAML folder and writes its connectivity list; we time that whole job, take its peak
memory, and print ratios.

    make bench     # or: .venv/bin/python -m bench.netpol
    .venv/bin/python -m bench.netpol --sizes "" --dense 4000:1000:80
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import manifests  # noqa: E402
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import runner  # noqa: E402
from tests.testbed import build  # noqa: E402

NCA_VENV = REPO / ".cache" / "peers" / "nca-venv"
WORK = REPO / ".cache" / "bench" / "netpol"
TIMEOUT = 1800


def cluster(pods: int, policies: int) -> list[dict]:
    """Namespaces of 10 pods: 5 apps x 2 replicas; per namespace a default deny, a DNS egress
    rule, and allow rules along the app chain until the policy budget is spent."""
    namespaces = max(1, pods // 10)
    dns_pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
               "spec": {"containers": [{"name": "c", "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]}}
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}, dns_pod]
    budget = policies
    for n in range(namespaces):
        ns = f"team-{n:03d}"
        objects.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": ns, "labels": {"environment": "production" if n % 2 else "staging"}}})
        for i in range(10):
            app = f"app{i // 2}"
            objects.append({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": f"{app}-{i % 2}", "namespace": ns, "labels": {"app": app, "tier": str(i // 4)}},
                            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}})
    n = 0
    while budget > 0:
        ns = f"team-{n % namespaces:03d}"
        round_ = n // namespaces
        if round_ == 0:
            spec = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                    "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                                "ports": [{"protocol": "UDP", "port": 53}]}]}
        else:
            a = (round_ - 1) % 4
            spec = {"podSelector": {"matchLabels": {"app": f"app{a + 1}"}}, "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": f"app{a}"}}}],
                                 "ports": [{"port": "http"}]},
                                {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"10.{round_}.0.0/16"]}}],
                                 "ports": [{"port": 443}]}]}
            objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                            "metadata": {"name": f"egress-{a}-{round_}", "namespace": ns},
                            "spec": {"podSelector": {"matchLabels": {"app": f"app{a}"}}, "policyTypes": ["Egress"],
                                     "egress": [{"to": [{"podSelector": {"matchLabels": {"app": f"app{a + 1}"}}}]}]}})
            budget -= 1
        objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": f"p{round_}", "namespace": ns}, "spec": spec})
        budget -= 1
        n += 1
    return objects


def dense(workloads: int, policies: int, namespaces: int, seed: int = 7) -> list[dict]:
    """A dense random cluster (issue 14's shape: 4,000 workloads, 1,000 policies, 80 namespaces,
    most pods reachable): Deployments with labels drawn from a small vocabulary (so many share
    them), policies that select by one label and admit from namespaces by label, from pods by
    label, or from ipBlocks, on numbered or named ports. Seeded: the same YAML every run."""
    import random

    rng = random.Random(seed)
    apps, tiers, teams = [f"app{i}" for i in range(40)], ["web", "api", "db", "cache", "batch"], ["a", "b", "c", "d"]
    objects = []
    for n in range(namespaces):
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": f"ns-{n:02d}", "labels": {"team": teams[n % 4], "env": "prod" if n % 3 else "dev"}}})
    for i in range(workloads):
        labels = {"app": rng.choice(apps), "tier": rng.choice(tiers), "version": f"v{rng.randint(1, 3)}"}
        objects.append({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": f"w{i:04d}", "namespace": f"ns-{i % namespaces:02d}"},
                        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                            "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080},
                                                                   {"name": "metrics", "containerPort": 9090}]}]}}}})
    for p in range(policies):
        key = rng.choice(["app", "tier"])
        selector = {"matchLabels": {key: rng.choice(apps if key == "app" else tiers)}}
        peers = rng.choice([
            [{"namespaceSelector": {"matchLabels": {"team": rng.choice(teams)}}}],
            [{"namespaceSelector": {"matchLabels": {"env": "prod"}}, "podSelector": {"matchLabels": {"tier": rng.choice(tiers)}}}],
            [{"podSelector": {"matchLabels": {"app": rng.choice(apps)}}}, {"podSelector": {"matchLabels": {"tier": "web"}}}],
            [{"namespaceSelector": {}}],
            [{"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"10.{rng.randint(0, 255)}.0.0/16"]}}]])
        ports = rng.choice([[{"port": "http"}], [{"protocol": "TCP", "port": 8080}, {"port": "metrics"}],
                            [{"protocol": "TCP", "port": 8000, "endPort": 9100}]])
        objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": f"p{p:04d}", "namespace": f"ns-{rng.randrange(namespaces):02d}"},
                        "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": [{"from": peers, "ports": ports}]}})
    return objects


def ours(folder: Path, out: Path, detail: str) -> None:
    """The module's own path (runner.analyse): read the folder, analyse, write connlist.txt."""
    objects = manifests.load([str(folder)])
    result = runner.analyse(objects, ["txt"], [], dest=str(out.parent / f"{out.stem}-dest"), detail=detail)
    os.replace(result["paths"]["txt"], out)


def workload_pairs(path: Path) -> set[str]:
    """The lines of a connectivity list between two workloads (``ns/name[Kind]`` on both sides)."""
    with path.open() as handle:
        return {line.strip() for line in handle if line.count("[") >= 2}


def measured(cmd: list[str]) -> tuple[float, int, str, float]:
    """Run cmd: (seconds, exit code, stderr's tail, its peak memory in MiB). A launcher process
    whose only child is cmd reports that child's peak (RUSAGE_CHILDREN) on its last stderr line."""
    launcher = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")
    began = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-c", launcher, *cmd], capture_output=True, text=True, timeout=TIMEOUT,
                              cwd=REPO, check=False)
    except subprocess.TimeoutExpired:
        return float(TIMEOUT), -1, f"timed out after {TIMEOUT}s", 0.0
    seconds = time.monotonic() - began
    *lines, peak = proc.stderr.strip().splitlines() or ["0"]
    return seconds, proc.returncode, "\n".join(lines)[-300:], int(peak) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200:50,2000:500", help="pods:policies,...")
    parser.add_argument("--dense", default="", help="workloads:policies:namespaces of a dense random cluster, e.g. 4000:1000:80")
    parser.add_argument("--dense-nca", action="store_true", help="run network-config-analyzer on the dense cases too")
    parser.add_argument("--ours", nargs=3, metavar=("FOLDER", "OUT", "DETAIL"), help=argparse.SUPPRESS)  # one run, measured
    args = parser.parse_args()
    if args.ours:
        ours(Path(args.ours[0]), Path(args.ours[1]), args.ours[2])
        return 0
    npguard = build.build_tool("netpolicy")
    if not (NCA_VENV / "bin" / "nca").exists():
        subprocess.run([sys.executable, "-m", "venv", str(NCA_VENV)], check=True)
        subprocess.run([str(NCA_VENV / "bin" / "pip"), "install", "-q", "-r", str(REPO / "bench" / "requirements-nca.txt")], check=True)
    rows = []
    cases = [("", size) for size in args.sizes.split(",") if size] + [("dense-", size) for size in args.dense.split(",") if size]
    for kind, size in cases:
        numbers = [int(x) for x in size.split(":")]
        pods, policies = numbers[:2]
        folder = WORK / f"{kind}{pods}-{policies}"
        folder.mkdir(parents=True, exist_ok=True)
        objects = dense(*numbers) if kind else cluster(pods, policies)
        (folder / "cluster.yaml").write_text(yaml.safe_dump_all(objects))
        npol = sum(o["kind"] == "NetworkPolicy" for o in objects)
        npods = sum(o["kind"] in ("Pod", "Deployment") for o in objects)
        results = {}
        for detail in ("full", "grouped"):
            out = WORK / f"ours-{detail}-{kind}{pods}.txt"
            seconds, code, err, memory = measured([sys.executable, "-m", "bench.netpol", "--ours", str(folder), str(out), detail])
            if code != 0:
                raise SystemExit(f"the analyzer failed on {folder}: {err}")
            with out.open() as written:
                count = sum(1 for _unused in written)
            results["fabric" if detail == "full" else "fabric (grouped report)"] = (
                seconds, f"{count} {'connection' if detail == 'full' else 'namespace-pair'} lines", memory)
        mine = results["fabric"][0]
        for name, cmd in (("np-guard", [str(npguard), "list", "--dirpath", str(folder), "-f", str(WORK / f"npguard-{kind}{pods}.txt")]),
                          ("network-config-analyzer", [str(NCA_VENV / "bin" / "nca"), "--connectivity", str(folder),
                                                       "--pod_list", str(folder), "--ns_list", str(folder),
                                                       "--output_format", "txt", "--file_out", str(WORK / f"nca-{kind}{pods}.txt")])):
            if kind and name == "network-config-analyzer" and not args.dense_nca:
                continue  # hours at this size; --dense-nca runs it
            seconds, code, err, peak = measured(cmd)
            results[name] = (seconds, "ok" if code == 0 else f"exit {code}: {err}", peak)
        if kind and results["np-guard"][1] == "ok":  # the same answer, pair for pair (ranges are cut differently)
            same = workload_pairs(WORK / f"ours-full-{kind}{pods}.txt") == workload_pairs(WORK / f"npguard-{kind}{pods}.txt")
            results["fabric"] = (*results["fabric"][:1], results["fabric"][1] + (
                ", workload pairs identical to np-guard's" if same else ", WORKLOAD PAIRS DIFFER from np-guard's"),
                results["fabric"][2])
        for name, (seconds, note, peak) in results.items():
            print(f"{kind}{npods:>5} workloads {npol:>4} policies  {name:<24} {seconds:8.2f}s {peak:8.0f} MiB  {note}", flush=True)
            rows.append({"case": kind + size, "workloads": npods, "policies": npol, "tool": name, "seconds": round(seconds, 3),
                         "peak_mib": round(peak), "note": note})
        for name in [n for n in ("np-guard", "network-config-analyzer") if n in results]:
            print(f"{kind}{npods:>5} workloads {npol:>4} policies  fabric is {results[name][0] / mine:6.1f}x faster than {name}")
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "results" / "netpol.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
