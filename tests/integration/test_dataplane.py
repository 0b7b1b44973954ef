"""The testbed's data plane: pods as network namespaces, kube-router's firewall per node, probes.

What these tests hold: every pod the testbed runs becomes a namespace answering on its ports
and goes with its pod; with no policy everything is open; kube-router enforces what the
apiserver accepted, within a measured time; rejections come back at once (no ICMP rate limit);
and ``down`` leaves no process, namespace, veth or rule behind.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

from tests.packets import create_pods, links, net_namespaces, pod, policy, root_rules, until
from tests.testbed.dataplane import DataPlane

pytestmark = pytest.mark.testbed

CLUSTER = "us-east"


@pytest.fixture
def app(testbed, dataplane, namespace_name):
    """Four pods (two web, two db) spread over the nodes, as namespaces."""
    client = testbed.client(CLUSTER)
    create_pods(client, namespace_name, [
        pod(namespace_name, "web-1", {"app": "web"}), pod(namespace_name, "web-2", {"app": "web"}),
        pod(namespace_name, "db-1", {"app": "db"}, ports=((5432, "TCP"),)),
        pod(namespace_name, "db-2", {"app": "db"}, ports=((5432, "TCP"),))])
    dataplane.sync()
    yield namespace_name
    client.request("DELETE", f"/api/v1/namespaces/{namespace_name}", allow=(404,))


def names(ns: str, *pods: str) -> list[str]:
    return [f"{CLUSTER}/{ns}/{p}" for p in pods]


def test_pods_are_namespaces_open_to_all_without_policy(testbed, dataplane, app):
    members = names(app, "web-1", "web-2", "db-1", "db-2")
    assert set(members) <= set(dataplane.pods)
    ips = {dataplane.pods[m].address for m in members}
    assert len(ips) == 4 and all(ip.startswith("10.") for ip in ips)
    matrix = dataplane.probe(members, members)
    # web: 80/TCP and 53/UDP; db: 5432/TCP; each from the three others.
    assert len(matrix) == 2 * 2 * 3 + 2 * 1 * 3
    assert set(matrix.values()) == {"open"}, matrix


def test_policies_are_enforced_in_the_kernel_within_a_measured_time(testbed, dataplane, app, record_property):
    client = testbed.client(CLUSTER)
    web1, web2, db1, db2 = names(app, "web-1", "web-2", "db-1", "db-2")
    dataplane.add_outside("internet", "203.0.113.10")
    written = time.monotonic()
    client.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{app}/networkpolicies", body=policy(
        app, "db-from-web", {"podSelector": {"matchLabels": {"app": "db"}},
                             "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                          "ports": [{"port": 5432}]}]}))
    closed, _unused = until(lambda: dataplane.probe([db2], [db1])[(db2, db1, "5432/TCP")] == "refused")
    latency = time.monotonic() - written
    record_property("policy_to_kernel_seconds", round(latency, 3))
    assert closed, "db-2 still reaches db-1 after the policy"
    dataplane.settle()
    matrix = dataplane.probe([web1, web2, db2, "outside:internet"], [db1])
    assert matrix == {(web1, db1, "5432/TCP"): "open", (web2, db1, "5432/TCP"): "open",
                      (db2, db1, "5432/TCP"): "refused", ("outside:internet", db1, "5432/TCP"): "refused"}
    # Unselected pods stay open to everyone, the internet included.
    assert set(dataplane.probe(["outside:internet", db1], [web2]).values()) == {"open"}

    # Egress and a named port: web may send only to db and to DNS on itself... as kube-router sees it.
    client.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{app}/networkpolicies", body=policy(
        app, "web-egress", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]},
                                       {"ports": [{"port": "http"}]}]}))
    until(lambda: dataplane.probe([web1], [web2])[(web1, web2, "53/UDP")] == "refused")
    dataplane.settle()
    matrix = dataplane.probe([web1], [web2, db1])
    assert matrix == {(web1, web2, "80/TCP"): "open", (web1, web2, "53/UDP"): "refused",
                      (web1, db1, "5432/TCP"): "open"}
    assert not dataplane.enforcer_failures()


def test_rejections_answer_at_once(testbed, dataplane, app):
    """A deny-all matrix ends in refusals, not timeouts: the node namespaces' ICMP rate limit
    is lifted, so a closed port costs a round trip, not the probe's timeout."""
    client = testbed.client(CLUSTER)
    client.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{app}/networkpolicies",
                   body=policy(app, "deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))
    members = names(app, "web-1", "web-2", "db-1", "db-2")
    until(lambda: set(dataplane.probe(members, members).values()) == {"refused"})
    dataplane.settle()
    for _unused in range(3):
        started = time.monotonic()
        matrix = dataplane.probe(members, members, timeout=2.0)
        assert Counter(matrix.values()) == Counter({"refused": 18})
        assert time.monotonic() - started < 1.0


def test_a_deleted_pod_loses_its_namespace(testbed, dataplane, app):
    client = testbed.client(CLUSTER)
    gone = names(app, "db-2")[0]
    holder = dataplane.pods[gone].holder
    node = dataplane.nodes[client.request("GET", f"/api/v1/namespaces/{app}/pods/db-2")["spec"]["nodeName"]]
    link = dataplane.pods[gone].link
    client.request("DELETE", f"/api/v1/namespaces/{app}/pods/db-2", query={"gracePeriodSeconds": "0"})
    until(lambda: client.request("GET", f"/api/v1/namespaces/{app}/pods/db-2", allow=(404,)) is None)
    assert dataplane.sync()["removed"] >= 1  # earlier tests' pods may go in the same sync
    assert gone not in dataplane.pods and set(names(app, "web-1", "web-2", "db-1")) <= set(dataplane.pods)
    assert not os.path.exists(f"/proc/{holder}/ns/net")
    removed, _unused = until(lambda: link not in links(node.holder), timeout=5)
    assert removed, f"{link} is still in {node.name}'s namespace"


def test_down_leaves_nothing_behind(testbed, namespace_name):
    """A data plane of its own on the edge cluster: after down, no process it started runs, no
    namespace it made exists, and the machine's own links and rules are as before."""
    client = testbed.client("edge-factory-1")
    links_before, rules_before = links(), root_rules()
    plane = DataPlane(testbed, ("edge-factory-1",))
    try:
        plane.up()
        create_pods(client, namespace_name, [pod(namespace_name, f"sensor-{i}", {"app": "sensor"}) for i in range(3)])
        plane.sync()
        plane.add_outside("lan", "192.168.1.50", ports=((1883, "TCP"),))
        # Its own pods and the LAN host (earlier modules' pods may sit behind their policies).
        own = [name for name in plane.pods if name.split("/")[1] == namespace_name] + ["outside:lan"]
        assert set(plane.probe(own, own).values()) == {"open"}
        pids = [e.holder for e in plane._endpoints()] + list(plane.enforcers.values()) + [plane.agent.pid]
        made = {os.stat(e.netns).st_ino for e in plane._endpoints()}  # earlier tests' pods too
        ours = [plane.fabric, *plane.nodes.values(), plane.outside["outside:lan"],
                *(e for name, e in plane.pods.items() if name.split("/")[1] == namespace_name)]
        assert len({os.stat(e.netns).st_ino for e in ours}) == 1 + 3 + 1 + 3  # fabric, nodes, lan, pods: each its own
        assert links() == links_before and root_rules() == rules_before
    finally:
        plane.down(quiet=True)
        client.request("DELETE", f"/api/v1/namespaces/{namespace_name}", allow=(404,))
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    assert not made & net_namespaces(), "namespaces survived down"
    assert links() == links_before and root_rules() == rules_before
    assert not plane.state_file.exists()
