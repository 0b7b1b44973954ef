"""``python -m tests.testbed build|up|down|status``."""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from . import build
from .harness import Testbed
from .sshhosts import SshHosts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed",
                                     description="Real kube-apiservers on loopback for tests.")
    parser.add_argument("command", choices=("build", "up", "down", "status", "hosts-up", "hosts-down"))
    parser.add_argument("hosts", nargs="*", help="with hosts-up: names of the SSH test hosts")
    args = parser.parse_args(argv)
    if args.command in ("hosts-up", "hosts-down"):
        hosts = SshHosts(args.hosts)
        if args.command == "hosts-down":
            hosts.down()
            return 0
        facts = hosts.up()
        inventory = hosts.run_dir / "inventory.yml"
        vars_ = hosts.inventory_vars(facts, sys.executable)
        artifacts = hosts.write_artifacts(hosts.run_dir / "artifacts")
        addons = hosts.write_addons(hosts.run_dir / "addons")
        for index, (name, host) in enumerate(vars_.items()):
            # Ansible reaches the test hosts on loopback; on the site they sit on the testbed
            # inventory's LAN (192.168.1.0/24), which K3s is told with node-ip.
            host.update({"edge_k3s_node_ip": f"192.168.1.{100 + index}", "edge_k3s_host_part": True,
                         "edge_k3s_manage_service": False,
                         "edge_k3s_node_name": name, "edge_k3s_min_free_gb": 0,
                         "edge_k3s_artifacts_dir": str(artifacts), "edge_k3s_addons_dir": str(addons)})
        inventory.write_text(yaml.safe_dump({"all": {"hosts": vars_}}))
        print(f"testbed: SSH test hosts {', '.join(facts)} up; inventory {inventory}")
        return 0
    testbed = Testbed()
    if args.command == "build":
        build.build_all()
        print(f"testbed: binaries in {build.BIN} and {build.CACHE / 'tools'}, "
              f"{len(build.all_crds())} CRDs cached")
    elif args.command == "up":
        testbed.up()
    elif args.command == "down":
        testbed.down()
    else:
        status = testbed.status()
        print(json.dumps(status, indent=2))
        return 0 if status["up"] else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
