"""k8snet.fabric.kubeconfig (inventory plugin): clusters from the testbed's kubeconfig contexts,
used by a scenario playbook in apply mode without any other inventory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, run_playbook

BIN = Path(sys.executable).parent


def inventory_file(tmp_path: Path, testbed, **options) -> Path:
    path = tmp_path / "clusters.kubeconfig.yml"
    path.write_text(yaml.safe_dump({"plugin": "k8snet.fabric.kubeconfig", "kubeconfig": [str(testbed.kubeconfig)],
                                    **options}))
    return path


def listing(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--list"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                                                       "PATH": "/usr/bin:/bin", "HOME": str(path.parent)}, check=False)


@pytest.mark.testbed
def test_contexts_become_cluster_hosts_with_the_roles_connection_variables(testbed, tmp_path):
    path = inventory_file(tmp_path, testbed, context_regex="^(us-east|eu-west)$",
                          keyed_groups=[{"key": "fabric_context", "prefix": "context"}])
    result = listing(path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert sorted(data["clusters"]["hosts"]) == ["eu-west", "us-east"]
    assert data["context_us_east"]["hosts"] == ["us-east"]
    # Values from an inventory source are data, never templates (ansible-core marks them unsafe).
    hostvars = {k: v.get("__ansible_unsafe", v) if isinstance(v, dict) else v
                for k, v in data["_meta"]["hostvars"]["eu-west"].items()}
    assert hostvars["ecommerce_net_context"] == "eu-west" and hostvars["istio_mesh_kubeconfig"] == str(testbed.kubeconfig)
    assert hostvars["hybrid_dns_context"] == "eu-west" and hostvars["ansible_connection"] == "local"
    assert hostvars["fabric_cluster_server"].startswith("https://127.0.0.1:")
    assert "token" not in json.dumps(hostvars) and "client-key" not in json.dumps(hostvars)

    # The inventory alone is enough to run a scenario against the cluster.
    plays = [{"hosts": "clusters", "gather_facts": False, "tasks": [
        {"name": "Read the cluster the host stands for",
         "k8snet.fabric.netpol_analyze": {"from_cluster": True, "namespaces": ["kube-system"],
                                          "kubeconfig": "{{ ecommerce_net_kubeconfig }}",
                                          "context": "{{ ecommerce_net_context }}"},
         "delegate_to": "localhost", "register": "seen"},
        {"ansible.builtin.assert": {"that": ["seen.summary.workloads is defined"]}}]}]
    ran = run_playbook(tmp_path, plays, inventory=str(path), extra_vars={"ansible_python_interpreter": sys.executable})
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert "eu-west                    : ok=2" in ran.stdout and "us-east                    : ok=2" in ran.stdout


@pytest.mark.testbed
def test_bad_selections_name_what_is_wrong(testbed, tmp_path):
    missing = listing(inventory_file(tmp_path, testbed, contexts=["us-east", "ap-south"]))
    assert "contexts ap-south are not in" in missing.stderr and "us-east-limited" in missing.stderr
    regex = listing(inventory_file(tmp_path, testbed, context_regex="(["))
    assert "context_regex '([' is not a regular expression" in regex.stderr
