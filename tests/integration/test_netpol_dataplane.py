"""netpol_analyze against the kernel: generated clusters on the data plane, every probe equal to
the analyzer's answer.

Each example draws namespaces, bare pods (named and numeric ports, TCP and UDP), and policies
(selectors, both directions, named ports, port ranges, ipBlocks with ``except``, including blocks
that hold pod addresses and blocks naming the outside namespaces). The testbed runs the pods,
kube-router enforces the policies, and every (source, destination, port) is probed: pods to pods,
outside clients to pods, pods to outside servers. The answer must equal netpol_analyze's
(address model) pair for pair, except where kube-router v2.1.0 departs from the API in one known
two ways (tests/kube_router_model.py: a policy of both types runs its egress rules in its pods'
ingress check too, and the reverse; an egress rule without `to` allows a named port's number
toward every destination): there the kernel must equal that model.

The suite runs a fixed number of examples (K8SNET_PROPERTY_EXAMPLES, default 6);
``make dataplane-property`` runs many more. A disagreement found is kept in REGRESSIONS.
"""

from __future__ import annotations

import collections
import os
import random
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import kube_router_model
from tests.helpers import running, wait_for
from tests.netpol_worlds import world
from tests.packets import agreement
from tests.testbed.versions import CLUSTERS

from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import report
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import Analysis
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.runner import live_objects

pytestmark = pytest.mark.testbed

CLUSTER = "us-east"
PODS = CLUSTERS[CLUSTER].pod_cidr  # 10.0.0.0/14; node n runs 10.0.n.0/24
OUTSIDE = {"internet": ("203.0.113.10", ((443, "TCP"), (53, "UDP"))),
           "lan": ("192.168.1.50", ((8080, "TCP"),))}
# ipBlocks: one node's pods, the pod range less one node, everything but the pod range, the
# whole private range (pods and the LAN), the outside networks, and one covering nothing.
CIDRS = (("10.0.0.0/24", []), ("10.0.0.0/14", ["10.0.1.0/24"]), ("0.0.0.0/0", ["10.0.0.0/14"]),
         ("10.0.0.0/8", ["10.0.2.0/25"]), ("203.0.113.0/24", []), ("192.168.1.0/24", ["192.168.1.50/32"]),
         ("198.51.100.0/24", []))
EXAMPLES = int(os.environ.get("K8SNET_PROPERTY_EXAMPLES", "6"))
# Seeds that once disagreed; each runs on every suite run. 243: kube-router's mirrored rules
# (a policy of both types selecting every pod of the namespace, with egress rules only); 284:
# a named port in an egress rule without `to` allowed toward the internet.
REGRESSIONS: tuple[int, ...] = (243, 284)


def drawn_world(seed: int, prefix: str) -> list[dict]:
    rng = random.Random(seed)
    return world(seed, namespaces=rng.randint(1, 3), workloads=rng.randint(2, 7), policies=rng.randint(1, 4),
                 prefix=prefix, bare_pods=True, cidrs=CIDRS, protocols=("TCP", "UDP"))


def apply_world(client, objects: list[dict]) -> list[str]:
    namespaces = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
    paths = {"Namespace": "/api/v1/namespaces", "Pod": "/api/v1/namespaces/{ns}/pods",
             "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"}
    for obj in objects:
        client.request("POST", paths[obj["kind"]].format(ns=obj["metadata"].get("namespace")), body=obj)
    counts = collections.Counter(o["metadata"]["namespace"] for o in objects if o["kind"] == "Pod")
    wait_for(lambda: all(running(client, ns, "", n) is not None for ns, n in counts.items()),
             "the world's pods Running with IPs", 60, 0.1)
    return namespaces


def answers(analysis: Analysis, dataplane, key) -> tuple[bool, bool]:
    """(the API's answer as netpol_analyze gives it, kube-router's answer) for one probe."""
    src, dst, port = key
    number, protocol = port.split("/")

    def ref(name):
        if name.startswith("outside:"):
            return dataplane.outside[name].address
        _cluster, ns, pod = name.split("/")
        return f"{ns}/{pod}"
    api = analysis.conn(ref(src), ref(dst)).allows(protocol, int(number))
    return api, kube_router_model.allows(analysis, ref(src), ref(dst), protocol, int(number))


def check_world(testbed, dataplane, seed: int) -> int:
    """Run one world; returns how many probes kube-router's known deviation decided."""
    client = testbed.client(CLUSTER)
    # Fresh names each time: hypothesis runs a seed again while shrinking, and a namespace being
    # deleted keeps its name for a while.
    objects = drawn_world(seed, f"pp{uuid.uuid4().hex[:6]}-")
    namespaces = apply_world(client, objects)
    try:
        dataplane.sync()
        for name, (address, ports) in OUTSIDE.items():
            dataplane.add_outside(name, address, ports)
        analysis = Analysis(live_objects(client, namespaces), ipblock_pods="address")
        ours = [n for n in dataplane.pods if n.split("/")[1] in namespaces]
        endpoints = ours + list(dataplane.outside)
        dataplane.settle()
        expected: dict = {}  # key -> (the API's answer, kube-router's)

        def kernel_answer(key):
            expected[key] = answers(analysis, dataplane, key)
            return expected[key][1]
        matrix, _claims, wrong = agreement(
            lambda: {k: v for k, v in dataplane.probe(endpoints, endpoints, timeout=1.0).items()
                     if not (k[0].startswith("outside:") and k[1].startswith("outside:"))}, kernel_answer, 8)
        assert matrix, "nothing was probed"
        assert not [v for v in matrix.values() if v not in ("open", "refused")], matrix
        assert not wrong, (f"seed {seed}: {len(wrong)} of {len(matrix)} probes disagree with netpol_analyze "
                           f"(kernel's answer shown):\n" + "\n".join(f"  {k}: {v}" for k, v in sorted(wrong.items())[:30])
                           + f"\nobjects: {objects}")
        assert not dataplane.enforcer_failures()
        return sum(1 for api, kernel in expected.values() if api != kernel)
    finally:
        for ns in namespaces:
            client.request("DELETE", f"/api/v1/namespaces/{ns}", allow=(404,))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("K8SNET_PROPERTY_RANDOM"),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2 ** 31))
def test_kernel_agrees_with_the_analyzer(testbed, dataplane, seed):
    check_world(testbed, dataplane, seed)


@pytest.mark.parametrize("seed", REGRESSIONS)
def test_regressions(testbed, dataplane, seed):
    check_world(testbed, dataplane, seed)


def two_pods_and_a_policy(namespace: str, names: tuple[str, str], policy: str, spec: dict) -> list[dict]:
    """A namespace, two bare pods labelled app=<name> answering on 8080/TCP (named http), one policy."""
    ports = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}] + [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
         "spec": {"containers": [{"name": "c", "image": "x", "ports": ports}]}} for name in names] + [
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": policy, "namespace": namespace}, "spec": spec}]


def test_kube_routers_mirrored_rules(testbed, dataplane, namespace_name):
    """The deviation the property test found, on its smallest shape: one policy of both types
    selects web and worker and gives egress to web only. The API isolates web's ingress (no
    ingress rule); kube-router lets worker in, because the policy's egress rule matches the
    packet in web's chain too. netpol_analyze keeps the API's answer; the model has kube-router's."""
    client = testbed.client(CLUSTER)
    apply_world(client, two_pods_and_a_policy(namespace_name, ("web", "worker"), "egress-to-web", {
        "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}))
    try:
        dataplane.sync()
        dataplane.settle()
        worker, web = f"{CLUSTER}/{namespace_name}/worker", f"{CLUSTER}/{namespace_name}/web"
        assert dataplane.probe([worker, web], [worker, web]) == {
            (worker, web, "8080/TCP"): "open", (web, worker, "8080/TCP"): "refused"}
        analysis = Analysis(live_objects(client, [namespace_name]))
        assert not analysis.conn(f"{namespace_name}/worker", f"{namespace_name}/web")
        assert kube_router_model.allows(analysis, f"{namespace_name}/worker", f"{namespace_name}/web", "TCP", 8080)
    finally:
        client.request("DELETE", f"/api/v1/namespaces/{namespace_name}", allow=(404,))


def test_an_ipblock_holding_pod_addresses_admits_those_pods(testbed, dataplane, namespace_name):
    """The case the first enforcer run disagreed on: an egress ipBlock holding another pod's
    address. kube-router lets the packet through; the analyzer's address model says so, its
    identity model does not, and both report the finding."""
    client = testbed.client(CLUSTER)
    apply_world(client, two_pods_and_a_policy(namespace_name, ("client", "server"), "client-egress", {
        "podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": PODS}}], "ports": [{"port": 8080}]}]}))
    try:
        dataplane.sync()
        dataplane.settle()
        src, dst = f"{CLUSTER}/{namespace_name}/client", f"{CLUSTER}/{namespace_name}/server"
        assert dataplane.probe([src], [dst]) == {(src, dst, "8080/TCP"): "open"}
        live = live_objects(client, [namespace_name])
        for model, allowed in (("address", True), ("identity", False)):
            analysis = Analysis(live, ipblock_pods=model)
            assert analysis.conn(f"{namespace_name}/client", f"{namespace_name}/server").allows("TCP", 8080) is allowed
            kinds = [f["kind"] for f in report.findings(analysis)]
            assert "ipblock-holds-pods" in kinds
    finally:
        client.request("DELETE", f"/api/v1/namespaces/{namespace_name}", allow=(404,))
