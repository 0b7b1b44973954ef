"""Collection hygiene: ansible-lint's production profile, and documentation that ansible-doc renders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
FILTERS = sorted(p.stem for p in (REPO / "plugins" / "filter").glob("*.yml"))
OTHERS = [(kind, p.stem) for kind in ("lookup", "inventory") for p in (REPO / "plugins" / kind).glob("*.py")]


def test_ansible_lint_production_profile(tmp_path):
    # A HOME of its own: ansible-lint installs the collection it lints into ~/.ansible/collections,
    # where a stale copy would then shadow the checkout for every later run on this machine.
    proc = subprocess.run([str(BIN / "ansible-lint"), "--nocolor"], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
                                                HOME=str(tmp_path)), check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in proc.stderr + proc.stdout


@pytest.mark.parametrize("kind,name", [("module", m) for m in MODULES] + [("filter", f) for f in FILTERS] + OTHERS)
def test_ansible_doc_renders(kind, name):
    proc = subprocess.run([str(BIN / "ansible-doc"), "-t", kind, "--json", f"k8snet.fabric.{name}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "ERROR" not in proc.stderr, proc.stderr
    assert f'"k8snet.fabric.{name}"' in proc.stdout and '"doc"' in proc.stdout
    if kind in ("module", "lookup"):
        assert '"examples"' in proc.stdout and '"return"' in proc.stdout
    else:
        assert '"examples"' in proc.stdout
