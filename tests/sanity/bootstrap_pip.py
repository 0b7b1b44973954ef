"""Let `ansible-test --venv` create its virtual environments on a machine that reaches PyPI but
not ci-files.testing.ansible.com, where ansible-test fetches its get-pip bootstrap script.

The pip wheel comes from PyPI (`pip download`); next to it goes a small get-pip stand-in that
installs pip from that wheel the way get-pip does (its `--no-setuptools`/`--no-wheel` options
handled, the rest handed to `pip install`). Both land in ansible-test's own cache folder
(~/.ansible/test/cache); nothing in the repository changes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import ansible_test

CACHE = Path.home() / ".ansible" / "test" / "cache"
SHIM = '''\
# get-pip stand-in written by k8snet.fabric's tests/sanity/bootstrap_pip.py: pip from its PyPI wheel.
import glob, os, sys
here = os.path.dirname(os.path.abspath(__file__))
wheel = sorted(glob.glob(os.path.join(here, "pip-{version}-*.whl")))[0]
sys.path.insert(0, wheel)
from pip._internal.cli.main import main
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--find-links", here] + args))
'''


def pip_version() -> str:
    text = (Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
    return re.search(r"pip='([0-9.]+)'", text).group(1)


def main() -> None:
    version = pip_version()
    CACHE.mkdir(parents=True, exist_ok=True)
    if not list(CACHE.glob(f"pip-{version}-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(CACHE),
                        f"pip=={version}"], check=True)
    (CACHE / f"get_pip_{version.replace('.', '_')}.py").write_text(SHIM.format(version=version))
    print(f"ansible-test pip {version} bootstrap ready in {CACHE}")


if __name__ == "__main__":
    main()
