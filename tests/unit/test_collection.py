"""The collection builds, and its tarball carries sources only."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN_PARTS = {".venv", ".cache", ".pytest_cache", ".hypothesis", "__pycache__", "build",
                   "collections", ".git", ".ci"}


def test_collection_build_has_no_caches_outputs_or_binaries(tmp_path):
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    # Make sure there is something to leak: a cache folder at the top and in a subfolder.
    (REPO / ".pytest_cache").mkdir(exist_ok=True)
    (REPO / "tests" / "testbed" / "__pycache__").mkdir(exist_ok=True)
    proc = subprocess.run([str(galaxy), "collection", "build", "--force", "--output-path",
                           str(tmp_path), str(REPO)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    tarball = tmp_path / "k8snet-fabric-0.1.0.tar.gz"
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        members = tar.getmembers()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    assert any(n.startswith("plugins/module_utils/k8s/") for n in names)
    leaked = [n for n in names if FORBIDDEN_PARTS & set(Path(n).parts)]
    assert leaked == []
    big = [(m.name, m.size) for m in members if m.size > 2_000_000]
    assert big == [], "no binaries or large outputs in the tarball"
    executables = [m.name for m in members if m.isfile() and m.mode & 0o111
                   and not m.name.endswith((".py", ".sh"))]
    assert executables == []
