"""The testbed itself: real apiservers, real upstream CRDs, real RBAC, real audit logs."""

from __future__ import annotations

import pytest

from tests.testbed import build
from tests.testbed.versions import CRD_SOURCES

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ApiError

pytestmark = pytest.mark.testbed

# One object of each kind the scenarios use, minimal but valid for the upstream schema.
SAMPLES = {
    "VirtualService": ("networking.istio.io/v1", "virtualservices",
                       {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}),
    "DestinationRule": ("networking.istio.io/v1", "destinationrules", {"host": "reviews"}),
    "Gateway": ("networking.istio.io/v1", "gateways",
                {"selector": {"istio": "ingressgateway"},
                 "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}),
    "PeerAuthentication": ("security.istio.io/v1", "peerauthentications", {"mtls": {"mode": "STRICT"}}),
    "AuthorizationPolicy": ("security.istio.io/v1", "authorizationpolicies", {"action": "ALLOW", "rules": [{}]}),
    "ServiceExport": ("multicluster.x-k8s.io/v1alpha1", "serviceexports", None),
    "ServiceImport": ("multicluster.x-k8s.io/v1alpha1", "serviceimports",
                      {"type": "ClusterSetIP", "ports": [{"port": 80, "protocol": "TCP"}]}),
    "DNSEndpoint": ("externaldns.k8s.io/v1alpha1", "dnsendpoints",
                    {"endpoints": [{"dnsName": "app.example.com", "recordType": "A", "targets": ["192.0.2.1"]}]}),
    "ServiceMonitor": ("monitoring.coreos.com/v1", "servicemonitors",
                       {"selector": {"matchLabels": {"app": "x"}}, "endpoints": [{"port": "metrics"}]}),
    "PrometheusRule": ("monitoring.coreos.com/v1", "prometheusrules",
                       {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0"}]}]}),
    "Prometheus": ("monitoring.coreos.com/v1", "prometheuses", {"retention": "24h"}),
    "IPAddressPool": ("metallb.io/v1beta1", "ipaddresspools", {"addresses": ["192.168.1.240-192.168.1.250"]}),
    "L2Advertisement": ("metallb.io/v1beta1", "l2advertisements", {"ipAddressPools": ["p"]}),
    "KubeFedCluster": ("core.kubefed.io/v1beta1", "kubefedclusters",
                       {"apiEndpoint": "https://127.0.0.1:6443", "secretRef": {"name": "c"}}),
}


def test_every_cluster_is_ready(testbed):
    for cluster in testbed.clusters:
        client = testbed.client(cluster)
        assert client.request("GET", "/readyz") is not None
        version = client.request("GET", "/version")
        assert version["gitVersion"] == build.kubernetes_version()


def test_every_upstream_crd_is_established(testbed):
    expected = {crd["metadata"]["name"] for src in CRD_SOURCES if not src.unavailable
                for crd in build.crds_of(src)}
    assert len(expected) >= 20
    for cluster in testbed.clusters:
        items = testbed.client(cluster).request(
            "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
        established = {i["metadata"]["name"] for i in items
                       if any(c["type"] == "Established" and c["status"] == "True"
                              for c in i["status"]["conditions"])}
        assert expected <= established, expected - established


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_an_object_of_each_kind_round_trips(testbed, namespace_name, kind):
    api_version, plural, spec = SAMPLES[kind]
    client = testbed.client("us-east")
    client.request("POST", "/api/v1/namespaces",
                   body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name}})
    obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "sample", "namespace": namespace_name}}
    if spec is not None:
        obj["spec"] = spec
    path = f"/apis/{api_version}/namespaces/{namespace_name}/{plural}"
    client.request("POST", path, body=obj)
    read = client.request("GET", f"{path}/sample")
    assert read["kind"] == kind
    if spec is not None:
        for key, value in spec.items():
            assert read["spec"][key] == value


def test_limited_user_is_refused_outside_its_role(testbed):
    limited = testbed.client("eu-west", user="limited")
    # Inside its role: reading namespaces works.
    assert "items" in limited.request("GET", "/api/v1/namespaces")
    # Outside: creating a namespace is a real 403 from the RBAC authorizer.
    with pytest.raises(ApiError) as refused:
        limited.request("POST", "/api/v1/namespaces",
                        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nope"}})
    assert refused.value.status == 403
    assert "k8snet-limited" in refused.value.message
    assert 'cannot create resource "namespaces"' in refused.value.message


def test_audit_log_records_writes_not_reads(testbed, namespace_name):
    client = testbed.client("edge-factory-1")
    mark = testbed.audit_mark("edge-factory-1")
    client.request("GET", "/api/v1/namespaces")
    assert testbed.writes("edge-factory-1", since=mark) == []
    reads = [e for e in testbed.audit_events("edge-factory-1", since=mark)
             if e["verb"] == "list" and e["objectRef"]["resource"] == "namespaces"]
    assert reads, "the read itself is audited"
    client.request("POST", "/api/v1/namespaces", query={"dryRun": "All"},
                   body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name}})
    assert testbed.writes("edge-factory-1", since=mark) == [], "a dry run is not a write"
    client.request("POST", "/api/v1/namespaces",
                   body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name}})
    writes = testbed.writes("edge-factory-1", since=mark)
    assert [(w["verb"], w["objectRef"]["resource"], w["objectRef"].get("name")) for w in writes] == [
        ("create", "namespaces", namespace_name)]


def test_clusters_are_isolated(testbed, namespace_name):
    testbed.client("us-east").request(
        "POST", "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name}})
    assert testbed.client("eu-west").request(
        "GET", f"/api/v1/namespaces/{namespace_name}", allow=(404,)) is None
