"""The collection as users get it: built with ansible-galaxy, installed from the tarball into a
collections path outside the checkout, run by FQCN from a project directory. Nothing is ever
written inside the installed collection."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, run_clean as run

BIN = Path(sys.executable).parent
PLAYBOOKS = {"edge": "edge", "ecommerce": "ecommerce", "multicluster": "multicluster", "mesh": "mesh", "hybrid": "hybrid"}
DEV_ONLY = ("tests", "molecule", "bench", "inventories/testbed", "requirements.txt", "ansible.cfg", "Makefile")


def tree(root: Path) -> dict[str, str]:
    """Every file and folder under root with its content hash (folders: 'dir')."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def installed(installed_collection):
    return installed_collection


def test_the_tarball_holds_what_users_need_and_no_dev_files(installed):
    home = installed["home"]
    for needed in ("README.md", "CHANGELOG.md", "LICENSE", "meta/runtime.yml", "meta/execution-environment.yml",
                   "playbooks/edge.yml", "roles/edge_k3s/meta/argument_specs.yml", "plugins/lookup/run_dir.py",
                   "inventories/local/hosts.yml", "docs/architecture.md"):
        assert (home / needed).exists(), needed
    for dev in DEV_ONLY:
        assert not (home / dev).exists(), f"{dev} is development only"
    assert not list(home.rglob("*.go")) and not list(home.rglob("__pycache__"))


@pytest.mark.parametrize("playbook", sorted(PLAYBOOKS))
def test_every_playbook_runs_by_fqcn_and_leaves_the_collection_unchanged(installed, playbook, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(REPO / "inventories" / "local", project / "inventory")
    before = tree(installed["home"])
    result = run([str(BIN / "ansible-playbook"), f"k8snet.fabric.{PLAYBOOKS[playbook]}", "-i", "inventory"], project,
                 env={"ANSIBLE_COLLECTIONS_PATH": str(installed["collections"])})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert tree(installed["home"]) == before, "the installed collection was written into"
    folder = {"edge": "edge/factory-1", "multicluster": "multicluster"}.get(playbook, playbook)
    assert any((project / "build" / folder).iterdir()), "output goes to build/ under the run's directory"
    verified = run([str(BIN / "ansible-galaxy"), "collection", "verify", "--offline", "k8snet.fabric"], project,
                   env={"ANSIBLE_COLLECTIONS_PATH": str(installed["collections"])})
    assert verified.returncode == 0 and "internally consistent" in verified.stdout, verified.stdout + verified.stderr


def test_a_run_started_inside_the_installed_collection_is_refused(installed, tmp_path):
    shutil.copytree(REPO / "inventories" / "local", tmp_path / "inventory")
    before = tree(installed["home"])
    result = run([str(BIN / "ansible-playbook"), "k8snet.fabric.mesh", "-i", str(tmp_path / "inventory")],
                 installed["home"], env={"ANSIBLE_COLLECTIONS_PATH": str(installed["collections"])})
    assert result.returncode != 0
    assert f"the run started inside the installed collection k8snet.fabric ({installed['home']})" in result.stdout
    assert tree(installed["home"]) == before


def test_the_execution_environment_gets_exactly_the_runtime_requirements(installed, tmp_path):
    """What ansible-builder would install for this collection (its own introspection, as the image
    build runs it), and the build context it generates. No image is built: there is no container
    engine here."""
    meta = yaml.safe_load((installed["home"] / "meta" / "execution-environment.yml").read_text())
    assert meta["dependencies"] == {"python": "meta/ee-requirements.txt", "system": "meta/ee-bindep.txt"}
    found = run([str(BIN / "ansible-builder"), "introspect", "--sanitize", str(installed["collections"])], tmp_path)
    assert found.returncode == 0, found.stderr
    data = yaml.safe_load(found.stdout)
    wanted = [line.split("#")[0].strip() for line in (REPO / "meta" / "ee-requirements.txt").read_text().splitlines()
              if line.split("#")[0].strip()]
    # ansible-builder drops what ansible-core itself brings (PyYAML among them).
    assert [entry.split("#")[0].strip() for entry in data["python"]] == [w for w in wanted if not w.startswith("PyYAML")]
    assert not any(dev in entry for entry in data["python"] for dev in ("pytest", "hypothesis", "molecule", "lint", "=="))
    assert [entry.split("#")[0].strip() for entry in data["system"]] == [
        "openssh-client [platform:dpkg]", "openssh-clients [platform:rpm]"]
    definition = tmp_path / "execution-environment.yml"
    definition.write_text(yaml.safe_dump({
        "version": 3,
        "images": {"base_image": {"name": "quay.io/ansible/awx-ee:latest"}},
        "dependencies": {"galaxy": {"collections": [{"name": str(installed["tarball"]), "type": "file"}]},
                         "ansible_core": {"package_pip": "ansible-core>=2.19,<2.20"},
                         "ansible_runner": {"package_pip": "ansible-runner"}}}))
    context = tmp_path / "context"
    created = run([str(BIN / "ansible-builder"), "create", "-f", str(definition), "--context", str(context),
                   "--output-filename", "Containerfile"], tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile and "introspect" in containerfile
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert galaxy == {"collections": [{"name": str(installed["tarball"]), "type": "file"}]}
