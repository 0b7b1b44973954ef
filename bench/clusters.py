"""Converge one scenario on the testbed's three clusters, one cluster at a time and in parallel.

The cluster part of the scenario playbooks runs each task on `forks` cluster hosts at a time.
Peers, measured in the same run on the same three real apiservers (us-east, eu-west,
edge-factory-1), each cluster host converging playbooks/hybrid.yml (CoreDNS zones, external-dns
records, policies, the proof) into fresh namespaces:
  sequential   --forks 1
  parallel     --forks 3
Prints wall time per round and the medians, the per-cluster cost (sequential / 3) and the speedup.
On this 2-core machine the three apiservers and Ansible share the cores, which bounds the speedup.

    make bench-clusters     # or: .venv/bin/python -m bench.clusters --repeat 3
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
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "collections"))

from tests.testbed import Testbed  # noqa: E402
from tests.testbed.versions import CLUSTERS  # noqa: E402

PLAYBOOK = REPO / "playbooks" / "hybrid.yml"


def inventory(folder: Path, kubeconfig: str) -> Path:
    """One cluster host per testbed cluster, connection and location from the IP plan."""
    folder.mkdir(parents=True, exist_ok=True)
    hosts = {name: {} for name in CLUSTERS}
    plan = [{"name": name, "context": name, "kubeconfig": kubeconfig, "location": "on-prem"} for name in CLUSTERS]
    data = {"all": {"vars": {"fabric_mode": "apply", "ansible_connection": "local",
                             "ansible_python_interpreter": sys.executable, "fabric_clusters": plan,
                             "hybrid_dns_probes": {"resolvers": False, "endpoints": False, "port": 443, "timeout": 3}},
                    "children": {"clusters": {"hosts": hosts}}}}
    (folder / "hosts.yml").write_text(json.dumps(data))
    return folder


def converge(folder: Path, forks: int, namespace: str, build: Path) -> float:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    apps = [{"name": "hybrid-app", "namespace": namespace, "port": 443, "create_namespace": True}]
    args = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(folder), str(PLAYBOOK), "--forks", str(forks),
            "-e", json.dumps({"hybrid_dns_apps": apps, "fabric_build_dir": str(build)})]
    started = time.monotonic()
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"ansible-playbook failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    recap = proc.stdout[proc.stdout.rfind("PLAY RECAP"):]
    for cluster in CLUSTERS:  # each cluster really converged its new namespace
        line = next((l for l in recap.splitlines() if l.startswith(cluster + " ")), "")
        if not re.search(r"changed=[1-9]", line):
            raise SystemExit(f"{cluster} did not converge anything: {line or recap}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    testbed = Testbed()
    testbed.up()
    folder = inventory(REPO / ".cache" / "bench" / "clusters", str(testbed.kubeconfig))
    times: dict = {1: [], 3: []}
    namespaces = []
    try:
        for round_ in range(options.repeat):
            for forks in ((1, 3) if round_ % 2 == 0 else (3, 1)):  # alternate who runs first
                namespace = f"bench-{uuid.uuid4().hex[:8]}"
                namespaces.append(namespace)
                wall = converge(folder, forks, namespace, folder / "build")
                times[forks].append(wall)
                print(f"round {round_ + 1}: forks {forks}: {wall:.1f} s", flush=True)
    finally:
        for cluster in CLUSTERS:
            client = testbed.client(cluster)
            for namespace in namespaces:
                client.request("DELETE", f"/api/v1/namespaces/{namespace}", allow=(404,))
    sequential, parallel = statistics.median(times[1]), statistics.median(times[3])
    print(f"\nmedians over {options.repeat} rounds, {len(CLUSTERS)} clusters: sequential (forks 1) {sequential:.1f} s, "
          f"parallel (forks 3) {parallel:.1f} s; per cluster {sequential / len(CLUSTERS):.1f} s; "
          f"speedup {sequential / parallel:.2f}x")


if __name__ == "__main__":
    main()
