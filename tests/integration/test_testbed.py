"""The testbed itself: real apiservers, real upstream CRDs, real RBAC, real audit logs."""

from __future__ import annotations

import pytest

from tests.testbed import build
from tests.testbed.versions import CRD_SOURCES

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ApiError

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
    "Gateway:gateway-api": ("gateway.networking.k8s.io/v1", "gateways", {
        "gatewayClassName": "example",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}]}),
    "HTTPRoute": ("gateway.networking.k8s.io/v1", "httproutes",
                  {"hostnames": ["shop.example.com"]}),
    "Gslb": ("k8gb.io/v1beta1", "gslbs",
             {"resourceRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                              "matchLabels": {"app": "web"}},
              "strategy": {"type": "failover", "primaryGeoTag": "us-east"}}),
}


def test_every_cluster_is_ready(testbed):
    for cluster in testbed.clusters:
        client = testbed.client(cluster)
        assert client.request("GET", "/readyz") is not None
        version = client.request("GET", "/version")
        assert version["gitVersion"] == build.kubernetes_version()


def test_every_upstream_crd_is_established(testbed):
    expected = {crd["metadata"]["name"] for src in CRD_SOURCES for crd in build.crds_of(src)}
    assert len(expected) >= 25
    # Gateway API's standard channel and k8gb (from shared/upstream/) among them.
    assert {"gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
            "gatewayclasses.gateway.networking.k8s.io", "referencegrants.gateway.networking.k8s.io",
            "gslbs.k8gb.io"} <= expected
    for cluster in testbed.clusters:
        items = testbed.client(cluster).request(
            "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
        established = {i["metadata"]["name"] for i in items
                       if any(c["type"] == "Established" and c["status"] == "True"
                              for c in i["status"]["conditions"])}
        assert expected <= established, expected - established


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_an_object_of_each_kind_round_trips(testbed, namespace_name, sample):
    api_version, plural, spec = SAMPLES[sample]
    kind = sample.split(":")[0]
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


# -- fault hooks (later issues build on them) ---------------------------------------------

def _socket_refused(server: str) -> bool:
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(server)
    try:
        socket.create_connection((url.hostname, url.port), timeout=1).close()
        return False
    except OSError:
        return True


def test_an_apiserver_stopped_and_started_keeps_its_port_and_its_data(testbed, namespace_name):
    client = testbed.client("eu-west")
    client.request("POST", "/api/v1/namespaces",
                   body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name}})
    testbed.stop("eu-west")
    try:
        assert _socket_refused(client.server)
        assert testbed.client("us-east").request("GET", "/readyz") is not None, "the other clusters go on"
    finally:
        testbed.start("eu-west")
    assert testbed.client("eu-west").request("GET", f"/api/v1/namespaces/{namespace_name}")["metadata"]["name"] == namespace_name


def test_paused_etcd_answers_nothing_until_resumed(testbed):
    from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import Client
    from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ClusterUnreachable

    impatient = Client({**testbed.connection("us-east"), "request_timeout": 2}, retries=0)
    testbed.pause("etcd")
    try:
        with pytest.raises((ClusterUnreachable, ApiError)):
            # A quorum read: the apiserver must ask etcd, which is frozen.
            impatient.request("GET", "/api/v1/namespaces/default/configmaps", query={"resourceVersion": ""})
    finally:
        testbed.resume("etcd")
    assert testbed.client("us-east").request("GET", "/api/v1/namespaces/default")["metadata"]["name"] == "default"


def test_a_throttled_apiserver_answers_429_and_retries_get_through(testbed):
    from concurrent.futures import ThreadPoolExecutor

    from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import Client

    with testbed.throttled("eu-west", inflight=1, mutating=1):
        # system:masters is exempt from inflight limits: the limited user is throttled.
        raw = Client(testbed.connection("eu-west", user="limited"), workers=16, retries=0)
        patient = Client(testbed.connection("eu-west", user="limited"), workers=16, retries=8, backoff=0.05)

        def attempt(client):
            try:
                client.request("GET", "/api/v1/configmaps")
                return 200
            except ApiError as exc:
                return exc.status
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _: attempt(raw), range(64)))
            assert 429 in statuses, statuses
            assert set(pool.map(lambda _: attempt(patient), range(32))) == {200}
    assert testbed.client("eu-west").request("GET", "/readyz") is not None


def test_a_second_testbed_comes_up_within_budget_and_down_leaves_no_process(testbed, tmp_path):
    """A whole testbed of its own (fresh store, own ports): up within 60 s, then down."""
    from tests.testbed import Testbed
    from tests.testbed.harness import gone

    if testbed.external:
        pytest.skip("an external cluster is not started here")
    other = Testbed(run_dir=tmp_path / "run")
    try:
        timings = other.up(log=lambda *_: None)
        assert timings["total"] <= 60, timings
        pids = dict(other._state()["pids"])
        assert {f"{c}-{part}" for c in other.clusters for part in ("controller-manager", "scheduler", "kwok")} <= set(pids)
    finally:
        other.down(quiet=True)
    assert [name for name, pid in pids.items() if not gone(pid)] == []
    assert testbed.client("us-east").request("GET", "/readyz") is not None, "the session's testbed is untouched"
