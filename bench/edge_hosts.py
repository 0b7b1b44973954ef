"""Install K3s's files on 20 SSH edge hosts with playbooks/edge.yml (apply mode, host part),
two collections measured in the same run.

The hosts are the tests' loopback sshd hosts (tests/testbed/sshhosts.py: real OpenSSH servers on
127.0.0.x, each writing below its own root; K3s itself is not started). Sites of one server and
up to two agents, like inventories/local. Peers:
  current    this checkout's collection
  baseline   the collection as of --baseline (a git revision; default: the last one that placed
             each file with its own task), extracted with `git archive` and run the same way

For each: a first install onto empty hosts and an unchanged re-run (which must report changed=0).
Prints wall seconds, seconds per host, and the SSH round trips per host: every ssh or sftp
process Ansible starts for a host (counted from -vvv's "SSH: EXEC" lines; one module run with
pipelining is one, a file transfer is one more).

    make bench-hosts     # or: .venv/bin/python -m bench.edge_hosts --hosts 20
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import recap  # noqa: E402
from tests.testbed.sshhosts import SshHosts, write_addons  # noqa: E402

BASELINE = "b283453"  # edge_k3s before k8snet.fabric.host_files: a task (or loop item) per file


def site_inventory(hosts: SshHosts, facts: dict, artifacts: Path, addons: Path, controller: Path) -> dict:
    """Sites of a server and up to two agents over the SSH hosts; every site's LAN is loopback."""
    host_vars = hosts.inventory_vars(facts, sys.executable)
    names = list(facts)
    children, servers, agents = {}, {}, {}
    for number, start in enumerate(range(0, len(names), 3), 1):
        members = names[start:start + 3]
        entry = f"edge-factory-{number}"
        children[f"edge_factory_{number}"] = {
            "hosts": {**{name: {**host_vars[name], "edge_k3s_node_name": name} for name in members},
                      entry: {"ansible_connection": "local"}},
            "vars": {"edge_k3s_site": f"factory-{number}", "edge_k3s_lan_cidr": f"127.{number}.0.0/16",
                     "edge_k3s_kubeconfig": str(controller / f"factory-{number}.yaml")}}
        servers[members[0]] = None
        agents.update(dict.fromkeys(members[1:]))
    return {"all": {
        "vars": {"fabric_mode": "apply", "edge_k3s_token": "K10-bench-token", "edge_k3s_manage_service": False,
                 "edge_k3s_artifacts_dir": str(artifacts), "edge_k3s_addons_dir": str(addons),
                 "edge_k3s_metallb_pool": [], "edge_k3s_min_free_gb": 0,
                 "edge_k3s_registry_mirrors": {"docker.io": ["https://registry.local:5000"]}},
        "children": {**children, "edge_servers": {"hosts": servers}, "edge_agents": {"hosts": agents},
                     "edge_clusters": {"hosts": {f"edge-factory-{n}": None for n in range(1, len(children) + 1)}}}}}


def run(collection: Path, inventory: Path, home: Path, forks: int, addresses: dict) -> dict:
    """One ansible-playbook run of the collection's playbooks/edge.yml over the SSH hosts."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(collection / "ansible.cfg"), HOME=str(home),
               ANSIBLE_COLLECTIONS_PATH=str(collection / "collections"), ANSIBLE_FORKS=str(forks))
    args = [str(Path(sys.executable).parent / "ansible-playbook"), "-vvv", "-i", str(inventory),
            str(collection / "playbooks" / "edge.yml"), "--limit", "edge_servers:edge_agents"]
    started = time.monotonic()
    proc = subprocess.run(args, cwd=collection, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"ansible-playbook failed ({collection}):\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}")
    trips = Counter(addresses[m] for m in re.findall(r"^<([0-9.]+)> SSH: EXEC", proc.stdout, re.M) if m in addresses)
    return {"wall": wall, "trips": trips, "changed": recap(proc.stdout)["changed"]}


def extract(revision: str, folder: Path) -> Path:
    """The collection at a git revision, as a checkout of it would be."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", revision], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--forks", type=int, default=5, help="Ansible's default")
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the baseline collection")
    options = parser.parse_args()
    names = [f"h{n:02d}" for n in range(1, options.hosts + 1)]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="k8snet-bench-hosts-") as tmp:
        tmp = Path(tmp)
        artifacts = SshHosts([]).write_artifacts(tmp / "artifacts")
        addons = write_addons(tmp / "addons")
        peers = {"current": REPO, f"baseline ({options.baseline})": extract(options.baseline, tmp / "baseline")}
        for peer, collection in peers.items():
            hosts = SshHosts(names, run_dir=tmp / f"hosts-{len(rows)}")
            facts = hosts.up()
            try:
                inventory = tmp / f"inventory-{len(rows)}.yml"
                inventory.write_text(yaml.safe_dump(site_inventory(hosts, facts, artifacts, addons, tmp / "controller")))
                addresses = {h["address"]: name for name, h in facts.items()}
                home = tmp / f"home-{len(rows)}"
                first = run(collection, inventory, home, options.forks, addresses)
                again = run(collection, inventory, home, options.forks, addresses)
            finally:
                hosts.down()
            if again["changed"]:
                raise SystemExit(f"{peer}: the re-run reported changed={again['changed']}")
            rows[peer] = {"first": first, "again": again}
            print(f"measured {peer}", file=sys.stderr, flush=True)
    count = options.hosts
    print(f"\n{count} SSH hosts, forks={options.forks}")
    print(f"{'collection':<22} {'run':<14} {'wall s':>8} {'s/host':>7} {'SSH round trips/host':>21}")
    for peer, row in rows.items():
        for label, result in (("first install", row["first"]), ("no-op re-run", row["again"])):
            trips = sorted(result["trips"].values()) or [0]
            spread = f"{trips[0]}" if trips[0] == trips[-1] else f"{trips[0]}-{trips[-1]}"
            print(f"{peer:<22} {label:<14} {result['wall']:8.1f} {result['wall'] / count:7.2f} {spread:>21}")
    current, baseline = rows["current"], rows[next(p for p in rows if p != "current")]
    for label, key in (("first install", "first"), ("no-op re-run", "again")):
        print(f"{label}: baseline/current wall {baseline[key]['wall'] / current[key]['wall']:.1f}x, round trips "
              f"{sum(baseline[key]['trips'].values()) / max(1, sum(current[key]['trips'].values())):.1f}x")


if __name__ == "__main__":
    main()
