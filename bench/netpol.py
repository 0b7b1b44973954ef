"""The analyzer against its peers on generated clusters of 200 / 2,000 pods and 50 / 500 policies.

Peers, run in the same process tree on the same YAML: np-guard netpol-analyzer (`netpolicy list`,
built by the testbed) and IBM network-config-analyzer (`nca --connectivity`, PyPI, in
.cache/peers/nca-venv). Each tool reads the YAML folder and writes its connectivity list; we
time that whole job and print ratios.

    make bench     # or: .venv/bin/python -m bench.netpol
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import manifests  # noqa: E402
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import report  # noqa: E402
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import Analysis  # noqa: E402
from tests.testbed import build  # noqa: E402

NCA_VENV = REPO / ".cache" / "peers" / "nca-venv"
WORK = REPO / ".cache" / "bench" / "netpol"
TIMEOUT = 600


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


def ours(folder: Path, out: Path) -> int:
    objects = manifests.load([str(folder)])
    connections = Analysis(objects).connections()
    out.write_text(report.render(connections, "txt"))
    return len(connections)


def timed(fn):
    began = time.monotonic()
    result = fn()
    return time.monotonic() - began, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200:50,2000:500", help="pods:policies,...")
    args = parser.parse_args()
    npguard = build.build_tool("netpolicy")
    if not (NCA_VENV / "bin" / "nca").exists():
        subprocess.run([sys.executable, "-m", "venv", str(NCA_VENV)], check=True)
        subprocess.run([str(NCA_VENV / "bin" / "pip"), "install", "-q", "-r", str(REPO / "bench" / "requirements-nca.txt")], check=True)
    rows = []
    for size in args.sizes.split(","):
        pods, policies = (int(x) for x in size.split(":"))
        folder = WORK / f"{pods}-{policies}"
        folder.mkdir(parents=True, exist_ok=True)
        objects = cluster(pods, policies)
        (folder / "cluster.yaml").write_text(yaml.safe_dump_all(objects))
        npol = sum(o["kind"] == "NetworkPolicy" for o in objects)
        npods = sum(o["kind"] == "Pod" for o in objects)
        mine, count = timed(lambda: ours(folder, WORK / f"ours-{pods}.txt"))
        results = {"fabric": (mine, f"{count} connections")}
        for name, cmd in (("np-guard", [str(npguard), "list", "--dirpath", str(folder), "-f", str(WORK / f"npguard-{pods}.txt")]),
                          ("network-config-analyzer", [str(NCA_VENV / "bin" / "nca"), "--connectivity", str(folder),
                                                       "--pod_list", str(folder), "--ns_list", str(folder),
                                                       "--output_format", "txt", "--file_out", str(WORK / f"nca-{pods}.txt")])):
            try:
                seconds, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False))
                results[name] = (seconds, "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr[-200:]}")
            except subprocess.TimeoutExpired:
                results[name] = (float(TIMEOUT), f"timed out after {TIMEOUT}s")
        for name, (seconds, note) in results.items():
            print(f"{npods:>5} pods {npol:>4} policies  {name:<24} {seconds:8.2f}s  {note}", flush=True)
            rows.append({"pods": npods, "policies": npol, "tool": name, "seconds": round(seconds, 3), "note": note})
        for name in ("np-guard", "network-config-analyzer"):
            print(f"{npods:>5} pods {npol:>4} policies  fabric is {results[name][0] / mine:6.1f}x faster than {name}")
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "results" / "netpol.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
