"""Render a fleet of edge sites with playbooks/edge.yml, two ways, measured in the same run.

Sites are shaped like inventories/local (one server, two agents, the site's cluster entry; a LAN,
a MetalLB pool and registry mirrors each). Peers:
  fleet      the default render: one pass on the controller (module k8snet.fabric.edge_fleet)
  per-host   bench/peers/edge_per_host_render.yml: the plain Ansible way (a play per host, a copy
             task per file, from the role's own definitions), the path edge.yml took before the
             one-pass render; measured directly up to --per-host-max sites, beyond that scaled
             linearly from its measured marginal cost per site (said in the table)

For each size: a first render into an empty folder and an unchanged re-run (which must report
changed=0). Prints wall and CPU seconds, the marginal cost per site and the ratio per-host/fleet.

    make bench-fleet     # or: .venv/bin/python -m bench.fleet --sizes 1,10,100,1000
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PLAYBOOK = REPO / "playbooks" / "edge.yml"
PEER = REPO / "bench" / "peers" / "edge_per_host_render.yml"

from tests.fleet import files_of, inventory, write_inventory  # noqa: E402
from tests.helpers import recap  # noqa: E402


def run(inventory_dir: Path, build: Path, per_host: bool) -> dict:
    """One ansible-playbook run: wall and CPU seconds (its processes), the recap's changed."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORKS="2")
    args = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory_dir), str(PEER if per_host else PLAYBOOK),
            "-e", f"fabric_build_dir={build}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(args, cwd=build.parent, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"ansible-playbook failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    changed = recap(proc.stdout)["changed"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "changed": changed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10,100,1000")
    parser.add_argument("--per-host-max", type=int, default=10, help="largest size the per-host path is run at")
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]
    rows, per_site = [], None
    with tempfile.TemporaryDirectory(prefix="k8snet-bench-fleet-") as tmp:
        for size in sizes:
            folder = write_inventory(Path(tmp) / f"inv-{size}", inventory(size))
            fleet_build = Path(tmp) / f"run-{size}-fleet" / "build"
            fleet_build.parent.mkdir()
            first, again = run(folder, fleet_build, False), run(folder, fleet_build, False)
            if again["changed"]:
                raise SystemExit(f"{size} sites: the re-run reported changed={again['changed']}")
            row = {"sites": size, "fleet": first, "fleet_again": again}
            if size <= options.per_host_max:
                host_build = Path(tmp) / f"run-{size}-host" / "build"
                host_build.parent.mkdir()
                row["per_host"], row["measured"] = run(folder, host_build, True), True
                if files_of(host_build) != files_of(fleet_build):
                    raise SystemExit(f"{size} sites: the fleet render differs from the per-host render")
                shutil.rmtree(host_build.parent)
            rows.append(row)
            shutil.rmtree(fleet_build.parent)
            print(f"measured {size} sites", file=sys.stderr, flush=True)
    measured = [r for r in rows if r.get("measured")]
    if len(measured) >= 2:  # per-host marginal cost per site, from its two largest measured sizes
        a, b = measured[-2], measured[-1]
        per_site = (b["per_host"]["wall"] - a["per_host"]["wall"]) / (b["sites"] - a["sites"])
        base = b["per_host"]["wall"] - per_site * b["sites"]
    print(f"\n{'sites':>6} {'fleet s':>9} {'fleet CPU':>10} {'re-run s':>9} {'per-host s':>11} {'CPU':>8} {'per-host/fleet':>15}")
    for row in rows:
        fleet = row["fleet"]
        if row.get("measured"):
            host, how = row["per_host"]["wall"], ""
            host_cpu = f"{row['per_host']['cpu']:8.1f}"
        elif per_site is not None:
            host, how, host_cpu = base + per_site * row["sites"], " (linear)", f"{'-':>8}"
        else:
            host, how, host_cpu = None, "", f"{'-':>8}"
        ratio = f"{host / fleet['wall']:.1f}x{how}" if host else "-"
        host_text = f"{host:11.1f}" if host else f"{'-':>11}"
        print(f"{row['sites']:>6} {fleet['wall']:9.1f} {fleet['cpu']:10.1f} {row['fleet_again']['wall']:9.1f} "
              f"{host_text} {host_cpu} {ratio:>15}")
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        fleet_per_site = (b["fleet"]["wall"] - a["fleet"]["wall"]) / (b["sites"] - a["sites"])
        print(f"\nmarginal cost per site: fleet {fleet_per_site * 1000:.0f} ms"
              + (f", per-host {per_site * 1000:.0f} ms (measured {measured[-2]['sites']}-{measured[-1]['sites']} sites)"
                 if per_site is not None else ""))
    print("targets (issue 26): 100 sites <= 15 s, 1,000 sites <= 150 s; output identical to the per-host "
          "render where both ran; re-run changed=0")


if __name__ == "__main__":
    main()
