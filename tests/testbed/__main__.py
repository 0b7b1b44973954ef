"""``python -m tests.testbed build|up|down|status``."""

from __future__ import annotations

import argparse
import json
import sys

from . import build
from .harness import Testbed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed",
                                     description="Real kube-apiservers on loopback for tests.")
    parser.add_argument("command", choices=("build", "up", "down", "status"))
    args = parser.parse_args(argv)
    testbed = Testbed()
    if args.command == "build":
        build.build_binaries()
        crds, unavailable = build.all_crds()
        print(f"testbed: binaries in {build.BIN}, {len(crds)} CRDs cached")
        for project, why in unavailable.items():
            print(f"testbed: CRDs of {project} not available: {why}")
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
