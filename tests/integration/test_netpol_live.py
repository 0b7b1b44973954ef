"""netpol_analyze against a live cluster (the testbed), and what-if with proposed policies."""

from __future__ import annotations

import pytest

from tests.helpers import run_playbook

pytestmark = pytest.mark.testbed
CLUSTER = "us-east"


def pod(ns, name, labels, owner=None):
    meta = {"name": name, "namespace": ns, "labels": labels}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "controller": True,
                                    "uid": "00000000-0000-0000-0000-000000000001"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "registry.local/app:v1",
                                     "ports": [{"name": "http", "containerPort": 8080}]}]}}


@pytest.fixture
def live_app(testbed, namespace_name):
    client = testbed.client(CLUSTER)
    ns = namespace_name
    client.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                        "metadata": {"name": ns, "labels": {"environment": "production"}}})
    # The testbed runs no controller-manager: create the default ServiceAccount as it would.
    client.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts",
                   body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
    for p in (pod(ns, "web-5f7d8c9b4-aaaaa", {"app": "web", "pod-template-hash": "5f7d8c9b4"}, "web-5f7d8c9b4"),
              pod(ns, "web-5f7d8c9b4-bbbbb", {"app": "web", "pod-template-hash": "5f7d8c9b4"}, "web-5f7d8c9b4"),
              pod(ns, "db", {"app": "db"})):
        client.request("POST", f"/api/v1/namespaces/{ns}/pods", body=p)
    client.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies", body={
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "db"},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}]}})
    return ns


def analyze(testbed, tmp_path, ns, **options):
    task = {"k8snet.fabric.netpol_analyze": {"from_cluster": True, "namespaces": [ns], **testbed.connection(CLUSTER), **options},
            "register": "out"}
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        task, {"ansible.builtin.copy": {"content": "{{ out | to_json }}", "dest": str(tmp_path / "out.json"), "mode": "0600"}}]}]
    return run_playbook(tmp_path, plays)


def test_live_connectivity_and_expectations(testbed, live_app, tmp_path):
    import json
    ns = live_app
    result = analyze(testbed, tmp_path, ns, expect=[
        {"src": f"{ns}/web", "dst": f"{ns}/db", "port": 5432},
        {"src": f"{ns}/db", "dst": f"{ns}/web", "port": 8080}])
    assert result.returncode == 0, result.stdout[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    lines = out["reports"]["txt"].splitlines()
    assert f"{ns}/web[Deployment] => {ns}/db[Pod] : TCP 5432" in lines
    assert f"{ns}/db[Pod] => {ns}/web[Deployment] : All Connections" in lines
    assert out["summary"]["workloads"] == 2, "two pods of one ReplicaSet are one Deployment"


def test_what_if_shows_the_effect_of_a_proposed_policy(testbed, live_app, tmp_path):
    ns = live_app
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-web", "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}}
    mark = testbed.audit_mark(CLUSTER)
    result = analyze(testbed, tmp_path, ns, proposed=[deny], expect=[
        {"src": f"{ns}/db", "dst": f"{ns}/web", "port": 8080}])
    assert result.returncode != 0
    assert f"{ns}/db => {ns}/web TCP 8080 should be allowed but is denied" in result.stdout
    assert testbed.writes(CLUSTER, since=mark) == [], "what-if writes nothing"
