"""Faults survived by every apply-mode cluster role, through its real playbook on the testbed:
an apiserver killed while the role writes, a frozen etcd, an apiserver that throttles.
(tests/integration/test_faults.py measures the engine itself at 1,500 objects.)"""

from __future__ import annotations

import time

import pytest
import yaml

from tests.faults import kill_at_first_write, succeeded_writes
from tests.helpers import REPO, recap, run_playbook, start_playbook, wait_for
from tests.integration.test_istio_mesh import mesh_vars
from tests.integration.test_kubefed import federation
from tests.rbac import as_accounts, shipped_role

pytestmark = pytest.mark.testbed
INVENTORY = str(REPO / "inventories" / "testbed")


def ecommerce(ns):
    return {"ecommerce_net_set_namespace": ns, "ecommerce_net_environments": [{"name": "production", "namespace": ns}]}


def hybrid(ns):
    return {"hybrid_dns_apps": [{"name": "hybrid-app", "namespace": ns, "port": 443, "create_namespace": True}]}


# role: (playbook, the cluster faults hit, every cluster it writes to, its variables for a namespace)
ROLES = {
    "ecommerce_net": ("ecommerce.yml", "us-east", ["us-east"], ecommerce),
    "hybrid_dns": ("hybrid.yml", "us-east", ["us-east"], hybrid),
    "istio_mesh": ("mesh.yml", "us-east", ["us-east"], mesh_vars),
    "kubefed": ("multicluster.yml", "eu-west", ["us-east", "eu-west"], federation),
}


@pytest.fixture
def prepared(testbed, namespace_name):
    """The namespace the sets live in, and what istioctl install would have left."""
    admin = testbed.client("us-east")
    for name in (namespace_name, "istio-system"):
        admin.request("POST", "/api/v1/namespaces", allow=(409,),
                      body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return namespace_name


def plays(role):
    return yaml.safe_load((REPO / "playbooks" / ROLES[role][0]).read_text())


def run(role, folder, extra, *args):
    folder.mkdir(parents=True, exist_ok=True)
    return run_playbook(folder, plays(role), *args, inventory=INVENTORY,
                        extra_vars={"fabric_build_dir": str(folder / "build"), **extra})


@pytest.mark.parametrize("role", sorted(ROLES))
def test_an_apiserver_killed_while_the_role_writes(testbed, tmp_path, prepared, role):
    """The run fails within 30 s of the kill naming the cluster; back up, the re-run converges
    and the next one changes nothing."""
    _playbook, cluster, _clusters, variables = ROLES[role]
    extra = variables(prepared)
    folder = tmp_path / "killed"
    folder.mkdir()
    proc = start_playbook(folder, plays(role), inventory=INVENTORY, extra_vars={"fabric_build_dir": str(folder / "build"), **extra})
    stdout, took = kill_at_first_write(testbed, cluster, proc, role)
    text = " ".join(stdout.split())
    assert proc.returncode != 0, text[-2000:]
    assert took < 30, f"the failure surfaced {took:.1f}s after {cluster} died"
    assert f"{cluster}: the API server" in text and "cannot be reached" in text, text[-3000:]
    print(f"\n{role}: failed {took:.1f}s after {cluster} was killed")

    again = run(role, tmp_path / "again", extra)
    assert again.returncode == 0, again.stdout[-3000:]
    mark = testbed.audit_mark(cluster)
    third = run(role, tmp_path / "again", extra)
    assert third.returncode == 0 and recap(third.stdout)["changed"] == 0, third.stdout[-3000:]
    assert testbed.writes(cluster, since=mark) == []


@pytest.mark.parametrize("role", sorted(ROLES))
def test_a_frozen_etcd_is_a_clear_timeout_and_nothing_is_claimed(testbed, tmp_path, prepared, role):
    _playbook, cluster, clusters, variables = ROLES[role]
    extra = {**variables(prepared), "fabric_request_timeout": 5}
    marks = {c: testbed.audit_mark(c) for c in clusters}
    testbed.pause("etcd")
    started = time.monotonic()
    try:
        frozen = run(role, tmp_path / "frozen", extra)
    finally:
        took = time.monotonic() - started
        testbed.resume("etcd")
    text = " ".join(frozen.stdout.split())
    assert frozen.returncode != 0, text[-2000:]
    assert "timed out" in text.lower() and "the API server" in text, text[-3000:]
    assert took < 60, f"{took:.1f}s for a run whose requests may take 5 s"
    print(f"\n{role}: frozen etcd failed the run after {took:.1f}s (request budget 5 s)")
    wait_for(lambda: all(testbed._ready(c) for c in clusters), "the clusters answer again", timeout=60)
    assert [e for c in clusters for e in succeeded_writes(testbed, c, marks[c])] == [], "nothing half-claimed"
    assert run(role, tmp_path / "after", variables(prepared)).returncode == 0


@pytest.mark.parametrize("role", sorted(ROLES))
def test_a_throttling_apiserver_is_waited_for(testbed, tmp_path, prepared, role):
    """429s with Retry-After are retried; the role converges. It runs as accounts bound to its
    RBAC: system:masters is exempt from inflight limits."""
    _playbook, cluster, clusters, variables = ROLES[role]
    _users, kubeconfig = as_accounts(testbed, clusters, shipped_role(role), tmp_path / "kubeconfig")
    extra = {**variables(prepared), "fabric_testbed_kubeconfig": str(kubeconfig)}
    with testbed.throttled(cluster, inflight=1, mutating=1):
        result = run(role, tmp_path / "throttled", extra)
    assert result.returncode == 0, result.stdout[-3000:]
