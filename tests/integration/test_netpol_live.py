"""netpol_analyze against a live cluster (the testbed), and what-if with proposed policies."""

from __future__ import annotations

import pytest

from tests.helpers import run_playbook, running, wait_for

pytestmark = pytest.mark.testbed
CLUSTER = "us-east"


def web_deployment(ns):
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "c", "image": "registry.local/app:v1",
                          "ports": [{"name": "http", "containerPort": 8080}]}]}}}}


def db_pod(ns):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db", "namespace": ns, "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c", "image": "registry.local/db:v1",
                                     "ports": [{"containerPort": 5432}]}]}}


@pytest.fixture
def live_app(testbed, namespace_name):
    """A Deployment's pods as the controllers and kwok make them, a bare pod, one policy."""
    client = testbed.client(CLUSTER)
    ns = namespace_name
    client.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"environment": "production"}}})
    wait_for(lambda: client.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default", allow=(404,)),
             "the default ServiceAccount")
    client.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body=web_deployment(ns))
    client.request("POST", f"/api/v1/namespaces/{ns}/pods", body=db_pod(ns))
    client.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies", body={
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "db"},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}]}})
    wait_for(lambda: running(client, ns, "", 3), "2 web pods and the db pod Running")
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
