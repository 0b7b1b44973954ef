"""Scenario 4's cluster part: playbooks/edge.yml on inventories/testbed against edge-factory-1."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import REPO, recap, run_playbook

pytestmark = pytest.mark.testbed
CLUSTER = "edge-factory-1"
NODES = ("factory1-server-1", "factory1-agent-1")


def edge(tmp_path, *args, extra_vars=None):
    plays = yaml.safe_load((REPO / "playbooks" / "edge.yml").read_text())
    return run_playbook(tmp_path, plays, *args, extra_vars=extra_vars,
                        inventory=str(REPO / "inventories" / "testbed"))


@pytest.fixture(scope="module")
def edge_cluster(testbed):
    """Node objects for the site's hosts, registered the way a kubelet would."""
    client = testbed.client(CLUSTER)
    # What the MetalLB installation provides (the role configures MetalLB, it does not own it).
    if client.request("GET", "/api/v1/namespaces/metallb-system", allow=(404,)) is None:
        client.request("POST", "/api/v1/namespaces",
                       body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}})
    for name in NODES:
        if client.request("GET", f"/api/v1/nodes/{name}", allow=(404,)) is None:
            client.request("POST", "/api/v1/nodes", body={
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}}})
    return client


def get(client, path):
    return client.request("GET", path, allow=(404,))


def test_site_objects_land_on_the_cluster_and_stay_converged(testbed, edge_cluster, tmp_path):
    result = edge(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    c = edge_cluster
    pool = get(c, "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/factory-1-pool")
    assert pool["spec"]["addresses"] == ["192.168.1.240-192.168.1.250"]
    l2 = get(c, "/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements/factory-1-l2")
    assert l2["spec"]["ipAddressPools"] == ["factory-1-pool"]
    sc = get(c, "/apis/storage.k8s.io/v1/storageclasses/local-storage")
    assert sc["provisioner"] == "kubernetes.io/no-provisioner" and sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert get(c, "/api/v1/namespaces/edge-processing/persistentvolumeclaims/local-pvc")["spec"]["storageClassName"] == "local-storage"
    deploy = get(c, "/apis/apps/v1/namespaces/edge-processing/deployments/edge-processor")
    term = deploy["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term == {"key": "edge-location", "operator": "In", "values": ["factory-1"]}
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"},
                                      "limits": {"cpu": "1", "memory": "1Gi"}}
    cron = get(c, "/apis/batch/v1/namespaces/edge-processing/cronjobs/data-sync")
    assert cron["spec"]["schedule"] == "*/15 * * * *"
    env = {e["name"]: e["valueFrom"] for e in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SYNC_TOKEN"] == {"secretKeyRef": {"name": "sync-secrets", "key": "token"}}
    assert get(c, "/api/v1/namespaces/edge-processing/configmaps/sync-config")["data"]["cloud-endpoint"]
    assert "find /data -mmin +30" in get(c, "/api/v1/namespaces/edge-processing/configmaps/sync-check")["data"]["check.sh"]
    assert get(c, "/api/v1/namespaces/edge-processing/secrets/sync-secrets")["data"]["token"]
    netpol = get(c, "/apis/networking.k8s.io/v1/namespaces/edge-processing/networkpolicies/edge-network-policy")["spec"]
    assert netpol["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"type": "sensor"}}}]
    assert netpol["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.255.255.255/32"]}} in netpol["egress"][0]["to"]
    assert any(p.get("port") == 53 for rule in netpol["egress"] for p in rule.get("ports", []))
    deny = get(c, "/apis/networking.k8s.io/v1/namespaces/edge-processing/networkpolicies/default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    prom = get(c, "/apis/monitoring.coreos.com/v1/namespaces/edge-monitoring/prometheuses/edge-prometheus")["spec"]
    assert prom["retention"] == "24h"
    assert prom["storage"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "40Gi"
    rules = get(c, "/apis/monitoring.coreos.com/v1/namespaces/edge-monitoring/prometheusrules/edge-alerts")
    assert [r["alert"] for r in rules["spec"]["groups"][0]["rules"]] == ["EdgeNodeDown", "EdgeSyncDelayed"]
    for name in NODES:
        assert get(c, f"/api/v1/nodes/{name}")["metadata"]["labels"]["edge-location"] == "factory-1"
    assert get(c, "/api/v1/nodes/factory1-agent-1")["metadata"]["labels"]["edge-zone"] == "line-a"

    mark = testbed.audit_mark(CLUSTER)
    again = edge(tmp_path)
    assert again.returncode == 0 and recap_of(again.stdout, "edge-factory-1")["changed"] == 0, again.stdout[-3000:]
    assert testbed.writes(CLUSTER, since=mark) == []
    assert "testbed-sync-token" not in again.stdout + result.stdout


def recap_of(output: str, host: str) -> dict:
    for line in output.splitlines():
        if line.startswith(host + " ") and "ok=" in line:
            return {k: int(v) for k, v in (p.split("=") for p in line.split(":", 1)[1].split())}
    raise AssertionError(output[-2000:])


def test_check_mode_writes_nothing_and_removed_items_are_pruned(testbed, edge_cluster, tmp_path):
    assert edge(tmp_path).returncode == 0
    mark = testbed.audit_mark(CLUSTER)
    checked = edge(tmp_path, "--check", extra_vars={"edge_k3s_metallb_pool": [], "edge_k3s_sync_schedule": "*/5 * * * *"})
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert recap_of(checked.stdout, "edge-factory-1")["changed"] >= 1
    assert testbed.writes(CLUSTER, since=mark) == []

    pruned = edge(tmp_path, extra_vars={"edge_k3s_metallb_pool": []})
    assert pruned.returncode == 0, pruned.stdout[-3000:]
    c = edge_cluster
    assert get(c, "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/factory-1-pool") is None
    assert get(c, "/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements/factory-1-l2") is None
    assert get(c, "/api/v1/namespaces/metallb-system")["metadata"].get("deletionTimestamp") is None, \
        "MetalLB's own namespace is never pruned"
    restored = edge(tmp_path)
    assert restored.returncode == 0, restored.stdout[-3000:]


@pytest.mark.parametrize("extra,words", [
    ({"edge_k3s_service_cidr": "10.42.0.0/16"}, ["edge_k3s_cluster_cidr (10.42.0.0/16) overlaps edge_k3s_service_cidr"]),
    ({"edge_k3s_cluster_cidr": "10.0.0.0/33"}, ["edge_k3s_cluster_cidr", "10.0.0.0/33"]),
    ({"edge_k3s_disable": ["traefik", "trafik"]}, ["edge_k3s_disable item 'trafik'"]),
    ({"edge_k3s_metallb_pool": ["10.9.0.1-10.9.0.9"]}, ["edge_k3s_metallb_pool[0]", "not inside edge_k3s_lan_cidr"]),
    ({"edge_k3s_sync_token": ""}, ["edge_k3s_sync_token is empty"]),
    ({"edge_k3s_node_labels": ["zone"]}, ["edge_k3s_node_labels item 'zone' must be key=value"]),
])
def test_bad_inventory_values_fail_before_any_change(testbed, edge_cluster, tmp_path, extra, words):
    mark = testbed.audit_mark(CLUSTER)
    result = edge(tmp_path, extra_vars=extra)
    assert result.returncode != 0
    for word in words:
        assert word in result.stdout, result.stdout[-3000:]
    assert testbed.writes(CLUSTER, since=mark) == []
    assert "Converge the site" not in result.stdout, "validation stops the run before the cluster play"
