"""Services on real packets: kube-proxy in every node namespace and the clusters' DNS.

What these tests hold: a Service's ClusterIP and DNS name reach its pods from a pod, on the
Service's ports only, and a NetworkPolicy still decides behind the ClusterIP; a Service with no
endpoints is rejected at once; a NodePort reaches the pods from outside the cluster, with the client's
address rewritten to the node's (externalTrafficPolicy: Cluster) or kept, on the nodes that
run an endpoint only (Local); and ``down`` removes the proxies, the DNS servers and the DNS
objects it added.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers import wait_for
from tests.packets import create_pods, links, pod, policy, root_rules, until
from tests.testbed.dataplane import DataPlane
from tests.testbed.versions import CLUSTERS

pytestmark = pytest.mark.testbed
DATAPLANE_SERVICES = True  # the dataplane fixture runs kube-proxy and the DNS (conftest.py)

CLUSTER = "us-east"
NODE_A, NODE_B, NODE_C = (node.name for node in CLUSTERS[CLUSTER].nodes)
CLIENT_OUTSIDE = "198.51.100.7"


def service(ns: str, name: str, selector: dict, ports: list[tuple], **spec) -> dict:
    """A Service; ports are (port, targetPort, protocol)."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": {
        "selector": selector, **spec,
        "ports": [{"name": f"p{port}-{protocol.lower()}", "port": port, "targetPort": target, "protocol": protocol}
                  for port, target, protocol in ports]}}


def node_address(node: str) -> str:
    return CLUSTERS[CLUSTER].node_address([n.name for n in CLUSTERS[CLUSTER].nodes].index(node))


@pytest.fixture
def shop(testbed, dataplane, namespace_name):
    """Two web pods behind Service ``web`` (80 -> 8080/TCP, 5353/UDP), a client and a frontend."""
    client = testbed.client(CLUSTER)
    web_ports = ((8080, "TCP"), (5353, "UDP"))
    create_pods(client, namespace_name, [
        pod(namespace_name, "web-1", {"app": "web"}, web_ports, node=NODE_A),
        pod(namespace_name, "web-2", {"app": "web"}, web_ports, node=NODE_B),
        pod(namespace_name, "client", {"app": "client"}, node=NODE_C),
        pod(namespace_name, "frontend", {"app": "frontend"}, node=NODE_C)])
    web = client.request("POST", f"/api/v1/namespaces/{namespace_name}/services", body=service(
        namespace_name, "web", {"app": "web"}, [(80, 8080, "TCP"), (5353, 5353, "UDP")]))
    dataplane.sync()
    dataplane.settle()
    yield namespace_name, web["spec"]["clusterIP"]
    client.request("DELETE", f"/api/v1/namespaces/{namespace_name}", allow=(404,))


def test_a_service_answers_on_its_name_and_cluster_ip_on_its_ports_only(testbed, dataplane, shop):
    ns, cluster_ip = shop
    client_pod, frontend = f"{CLUSTER}/{ns}/client", f"{CLUSTER}/{ns}/frontend"
    # The name resolves inside the pod through the cluster DNS Service, as its resolver would ask.
    answer = dataplane.resolve(client_pod, "web")
    assert answer == {"name": f"web.{ns}.svc.cluster.local.", "rcode": "NOERROR", "addresses": [cluster_ip]}
    assert dataplane.resolve(client_pod, f"web.{ns}")["addresses"] == [cluster_ip]
    # (The testbed's DNS has no upstream: names outside cluster.local get SERVFAIL, not NXDOMAIN.)
    assert dataplane.resolve(client_pod, f"no-such-service.{ns}.svc.cluster.local.")["rcode"] == "NXDOMAIN"
    # The ClusterIP reaches a web pod on the Service's ports; the pod sees the client's own
    # address (no masquerade inside the cluster); a port the Service does not declare is closed.
    client_ip = dataplane.pods[client_pod].address
    matrix = dataplane.probe_addresses([client_pod], [(cluster_ip, 80, "TCP"), (cluster_ip, 5353, "UDP"),
                                                      (cluster_ip, 8080, "TCP")], peers=True)
    assert matrix[(client_pod, f"{cluster_ip}:80/TCP")] == f"open from {client_ip}"
    assert matrix[(client_pod, f"{cluster_ip}:5353/UDP")] == f"open from {client_ip}"
    assert not matrix[(client_pod, f"{cluster_ip}:8080/TCP")].startswith("open")

    # A policy on the pods decides behind the ClusterIP: kube-router sees the translated packet.
    testbed.client(CLUSTER).request("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies", body=policy(
        ns, "web-from-frontend", {"podSelector": {"matchLabels": {"app": "web"}},
                                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}]}]}))
    target = [(cluster_ip, 80, "TCP")]
    until(lambda: dataplane.probe_addresses([client_pod], target)[(client_pod, f"{cluster_ip}:80/TCP")] == "refused")
    dataplane.settle()
    matrix = dataplane.probe_addresses([client_pod, frontend], target)
    assert matrix == {(client_pod, f"{cluster_ip}:80/TCP"): "refused", (frontend, f"{cluster_ip}:80/TCP"): "open"}


def test_a_service_without_endpoints_is_refused(testbed, dataplane, shop):
    ns, cluster_ip = shop
    client_pod = f"{CLUSTER}/{ns}/client"
    client = testbed.client(CLUSTER)
    for name in ("web-1", "web-2"):
        client.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", query={"gracePeriodSeconds": "0"})
    wait_for(lambda: not client.request("GET", f"/api/v1/namespaces/{ns}/pods", query={
        "labelSelector": "app=web"})["items"], "the web pods gone")
    dataplane.sync()
    # At once, not after a time-out. kube-proxy's "has no endpoints" REJECT sits behind
    # kube-router's FORWARD chain, which accepts the pod's packet first (as on a real node that
    # runs both); the fabric then answers "network unreachable", as a node's default route would.
    rejected, _unused = until(lambda: dataplane.probe_addresses([client_pod], [(cluster_ip, 80, "TCP")])
                              [(client_pod, f"{cluster_ip}:80/TCP")] in ("refused", "unreachable"))
    assert rejected, "a Service with no endpoints is rejected at once"


def test_node_ports_rewrite_or_keep_the_client_address_by_traffic_policy(testbed, dataplane, namespace_name):
    """externalTrafficPolicy: Cluster answers on every node and the pod sees the node's address;
    Local answers only where an endpoint runs (the others reject), and the pod sees the client's
    own address (the roles' ipBlock policies for outside clients depend on it)."""
    client = testbed.client(CLUSTER)
    create_pods(client, namespace_name, [pod(namespace_name, "echo", {"app": "echo"}, ((9000, "TCP"),), node=NODE_A)])
    ports = {}
    for name, policy_name in (("echo-cluster", "Cluster"), ("echo-local", "Local")):
        created = client.request("POST", f"/api/v1/namespaces/{namespace_name}/services", body=service(
            namespace_name, name, {"app": "echo"}, [(9000, 9000, "TCP")], type="NodePort",
            externalTrafficPolicy=policy_name))
        ports[policy_name] = created["spec"]["ports"][0]["nodePort"]
    try:
        dataplane.sync()
        dataplane.add_outside("client", CLIENT_OUTSIDE)
        dataplane.settle()
        expected = {(NODE_A, "Cluster"): f"open from {node_address(NODE_A)}",
                    (NODE_B, "Cluster"): f"open from {node_address(NODE_B)}",
                    (NODE_A, "Local"): f"open from {CLIENT_OUTSIDE}",
                    (NODE_B, "Local"): "timeout"}  # kube-proxy drops: "has no local endpoints"

        def seen() -> dict:
            targets = [(node_address(node), ports[traffic], "TCP") for node, traffic in expected]
            matrix = dataplane.probe_addresses(["outside:client"], targets, timeout=0.5, peers=True)
            return {(node, traffic): matrix[("outside:client", f"{node_address(node)}:{ports[traffic]}/TCP")]
                    for node, traffic in expected}

        # The EndpointSlice reaches each node's proxy in its own time (a busy CI machine once took
        # more than 10 s on one node): wait for the answer, then hold it; a failure shows the proxies' logs.
        _reached, waited = until(lambda: seen() == expected, timeout=30)
        held = seen()
        assert held == expected, f"after {waited:.1f}s: {held}\n" + "\n".join(
            f"kube-proxy on {node}:\n{dataplane.log('kube-proxy', node)[-2500:]}" for node in (NODE_A, NODE_B))
    finally:
        client.request("DELETE", f"/api/v1/namespaces/{namespace_name}", allow=(404,))


def test_down_removes_proxies_dns_servers_and_dns_objects(testbed, namespace_name):
    """Last in the module: a plane of its own replaces the module's (one plane at a time)."""
    client = testbed.client("edge-factory-1")
    links_before, rules_before = links(), root_rules()
    plane = DataPlane(testbed, ("edge-factory-1",), services=True)
    try:
        plane.up()
        pids = list(plane.proxies.values()) + list(plane.dns_servers.values())
        assert len(plane.proxies) == 3 and len(plane.dns_servers) == 1
        dns_pod = next(iter(plane.dns_servers))
        assert plane.resolve(dns_pod, "kubernetes.default")["addresses"] == [
            client.request("GET", "/api/v1/namespaces/default/services/kubernetes")["spec"]["clusterIP"]]
        assert links() == links_before and root_rules() == rules_before
    finally:
        plane.down(quiet=True)
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    assert client.request("GET", "/apis/apps/v1/namespaces/kube-system/deployments/coredns", allow=(404,)) is None
    assert client.request("GET", "/api/v1/namespaces/kube-system/services/kube-dns", allow=(404,)) is None
    assert links() == links_before and root_rules() == rules_before
