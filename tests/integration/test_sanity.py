"""The ecosystem's own checks on the collection: ansible-test sanity (every test that runs in a
virtual environment, no container), antsibull-docs' collection docs lint and
antsibull-changelog's lint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def collection_copy(tmp_path_factory) -> Path:
    """The working tree (tracked and new files, as git sees them) under ansible_collections/k8snet/fabric,
    where ansible-test and antsibull-docs expect a collection to be."""
    root = tmp_path_factory.mktemp("sanity")
    target = root / "ansible_collections" / "k8snet" / "fabric"
    target.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        source = REPO / rel
        if source.is_symlink() or not source.is_file():
            if source.is_symlink():
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.readlink(source), target / rel)
            continue
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes(source.read_bytes())
    return target


def env() -> dict:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def test_ansible_test_sanity(collection_copy):
    subprocess.run([sys.executable, str(REPO / "tests" / "sanity" / "bootstrap_pip.py")], check=True,
                   capture_output=True)
    result = subprocess.run([str(BIN / "ansible-test"), "sanity", "--venv", "--python", "3.11", "--color", "no"],
                            cwd=collection_copy, capture_output=True, text=True, timeout=2400, env=env(), check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    ran = [line for line in output.splitlines() if line.startswith("Running sanity test")]
    assert len(ran) >= 24 and not any("skipping" in line.lower() for line in output.splitlines()), output[-3000:]


def test_antsibull_docs_lint(collection_copy):
    result = subprocess.run([str(BIN / "antsibull-docs"), "lint-collection-docs", "--plugin-docs", "."],
                            cwd=collection_copy, capture_output=True, text=True, timeout=600, check=False,
                            env={**env(), "ANSIBLE_COLLECTIONS_PATH": str(collection_copy.parents[2])})
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


def test_changelog_fragments_and_changelog_are_valid():
    result = subprocess.run([str(BIN / "antsibull-changelog"), "lint"], cwd=REPO, capture_output=True, text=True,
                            timeout=120, check=False, env=env())
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    assert (REPO / "CHANGELOG.md").read_text().startswith("# k8snet\\.fabric Release Notes")
