"""k8snet.fabric.network_policies through ansible-playbook against the testbed."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_playbook

pytestmark = pytest.mark.testbed
CLUSTER = "eu-west"


def config(ns, flows=None):
    return [{"namespace": ns, "default_deny": True, "flows": flows if flows is not None else [
        {"name": "web-to-api", "from": {"pods": {"app": "web"}}, "to": {"pods": {"app": "api"}}, "ports": [8080]},
        {"name": "api-to-db", "from": {"pods": {"app": "api"}}, "to": {"pods": {"app": "db"}}, "ports": [5432]}]}]


def play(testbed, ns, state, cfg, tmp_path):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"k8snet.fabric.network_policies": {"name": "np-set", "set_namespace": ns, "state": state, "config": cfg,
                                            **testbed.connection(CLUSTER)}, "register": "out"},
        {"ansible.builtin.copy": {"content": "{{ out | to_json }}", "dest": str(tmp_path / "out.json"), "mode": "0600"}}]}]


@pytest.fixture
def ns(testbed, namespace_name):
    testbed.client(CLUSTER).request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name}})
    return namespace_name


def policies(testbed, ns):
    items = testbed.client(CLUSTER).request("GET", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies")["items"]
    return sorted(i["metadata"]["name"] for i in items)


def test_converge_prune_gather(testbed, ns, tmp_path):
    mark = testbed.audit_mark(CLUSTER)
    checked = run_playbook(tmp_path, play(testbed, ns, "overridden", config(ns), tmp_path), "--check")
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert testbed.writes(CLUSTER, since=mark) == [] and policies(testbed, ns) == []

    first = run_playbook(tmp_path, play(testbed, ns, "overridden", config(ns), tmp_path))
    assert first.returncode == 0, first.stdout[-3000:]
    assert policies(testbed, ns) == ["allow-dns", "api-to-db-in", "api-to-db-out", "default-deny",
                                     "web-to-api-in", "web-to-api-out"]
    mark = testbed.audit_mark(CLUSTER)
    again = run_playbook(tmp_path, play(testbed, ns, "overridden", config(ns), tmp_path))
    assert again.returncode == 0 and json.loads((tmp_path / "out.json").read_text())["changed"] is False
    assert testbed.writes(CLUSTER, since=mark) == []

    shrunk = run_playbook(tmp_path, play(testbed, ns, "overridden", config(ns, config(ns)[0]["flows"][:1]), tmp_path))
    assert shrunk.returncode == 0
    assert policies(testbed, ns) == ["allow-dns", "default-deny", "web-to-api-in", "web-to-api-out"], \
        "the removed allow-rule really disappears from the cluster"

    gathered = run_playbook(tmp_path, play(testbed, ns, "gathered", [], tmp_path))
    assert gathered.returncode == 0
    intent = json.loads((tmp_path / "out.json").read_text())["gathered"]
    assert intent == [{"namespace": ns, "default_deny": ["egress", "ingress"], "allow_dns": True, "flows": [
        {"name": "web-to-api", "from": {"pods": {"app": "web"}}, "to": {"pods": {"app": "api"}}, "ports": ["8080/TCP"]}]}]


def test_bad_intent_fails_before_any_write(testbed, ns, tmp_path):
    mark = testbed.audit_mark(CLUSTER)
    bad = config(ns, [{"name": "x", "from": {"pods": {"app": "a"}}, "to": {"pods": {"app": "b"}}, "ports": [70000]}])
    result = run_playbook(tmp_path, play(testbed, ns, "overridden", bad, tmp_path))
    assert result.returncode != 0
    assert "config[0].flows[0].ports[0]: port 70000" in result.stdout
    assert testbed.writes(CLUSTER, since=mark) == []


def test_rendered_parsed_and_deleted(testbed, ns, tmp_path):
    import yaml
    dest = tmp_path / "policies.yaml"
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"k8snet.fabric.network_policies": {"state": "rendered", "config": config(ns), "dest": str(dest)}},
        {"k8snet.fabric.network_policies": {"state": "parsed", "src": [str(dest)]}, "register": "parsed"},
        {"ansible.builtin.assert": {"that": ["parsed.parsed[0].flows | length == 2",
                                             "parsed.parsed[0].default_deny == ['egress', 'ingress']"]}}]}]
    result = run_playbook(tmp_path, plays)
    assert result.returncode == 0, result.stdout[-3000:]
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(dest.read_text())][:2] == ["default-deny", "allow-dns"]

    assert run_playbook(tmp_path, play(testbed, ns, "overridden", config(ns), tmp_path)).returncode == 0
    deleted = run_playbook(tmp_path, play(testbed, ns, "deleted", [], tmp_path))
    assert deleted.returncode == 0, deleted.stdout[-3000:]
    assert policies(testbed, ns) == []
