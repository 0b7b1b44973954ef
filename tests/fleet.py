"""Generated fleets of edge sites shaped like inventories/local, for tests and bench/fleet.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.helpers import REPO


def inventory(sites: int, first: int = 1) -> dict:
    """sites edge sites (one server, two agents, the site's cluster entry); site i's LAN is
    172.(16 + i // 256).(i % 256).0/24 with a MetalLB pool and a registry mirror."""
    children, servers, agents, clusters = {}, {}, {}, {}
    for i in range(first, first + sites):
        lan = f"172.{16 + i // 256}.{i % 256}"
        server, agent1, agent2, entry = (f"f{i}-server-1", f"f{i}-agent-1", f"f{i}-agent-2", f"edge-factory-{i}")
        children[f"edge_factory_{i}"] = {
            "vars": {"edge_k3s_site": f"factory-{i}", "edge_k3s_lan_cidr": f"{lan}.0/24",
                     "edge_k3s_metallb_pool": [f"{lan}.240-{lan}.250"],
                     "edge_k3s_registry_mirrors": {"docker.io": ["https://registry.local:5000"]}},
            "hosts": {server: {"ansible_host": f"{lan}.10"},
                      agent1: {"ansible_host": f"{lan}.21", "edge_k3s_node_labels": ["edge-zone=line-a"]},
                      agent2: {"ansible_host": f"{lan}.22", "edge_k3s_node_labels": ["edge-zone=line-b"]},
                      entry: {}}}
        servers[server], clusters[entry] = None, None
        agents[agent1] = agents[agent2] = None
    children.update(edge_servers={"hosts": servers}, edge_agents={"hosts": agents}, edge_clusters={"hosts": clusters})
    return {"all": {"children": children}}


def write_inventory(folder: Path, data: dict) -> Path:
    """An inventory folder: hosts.yml and the embedded default's group_vars (render mode)."""
    (folder / "group_vars").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "inventories" / "local" / "group_vars" / "all.yml", folder / "group_vars" / "all.yml")
    (folder / "hosts.yml").write_text(yaml.safe_dump(data))
    return folder


def files_of(build: Path) -> dict:
    """Every file under build: relative path -> (bytes, permission bits)."""
    return {str(p.relative_to(build)): (p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(build.rglob("*")) if p.is_file()}
