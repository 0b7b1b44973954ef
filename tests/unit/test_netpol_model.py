"""The network policy intent model: validation, generation, and proof by the analyzer."""

from __future__ import annotations

import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import model
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import Analysis

SHOP = [{"namespace": "shop", "default_deny": True, "flows": [
    {"name": "internet-to-web", "from": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}, "to": {"pods": {"app": "web"}}, "ports": [80]},
    {"name": "web-to-api", "from": {"pods": {"app": "web"}}, "to": {"pods": {"app": "api"}}, "ports": [8080]},
    {"name": "api-to-db", "from": {"pods": {"app": "api"}}, "to": {"pods": {"app": "db"}}, "ports": ["5432/TCP"]},
    {"name": "monitoring", "from": {"pods": {"app": "prometheus"}, "namespace": "ops"}, "to": {"pods": {}}, "ports": ["metrics"]},
]}]


def pod(ns, name, labels, ports=()):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "c", "ports": [{"name": n, "containerPort": p} for n, p in ports]}]}}


def test_generated_policies_allow_exactly_the_intent():
    policies = model.build(SHOP)
    workloads = [pod("shop", "web", {"app": "web"}), pod("shop", "api", {"app": "api"}, [("metrics", 9090)]),
                 pod("shop", "db", {"app": "db"}), pod("ops", "prom", {"app": "prometheus"}),
                 pod("kube-system", "coredns", {"k8s-app": "kube-dns"})]
    a = Analysis(workloads + policies)
    assert str(a.conn("shop/web", "shop/api")) == "TCP 8080"
    assert str(a.conn("shop/api", "shop/db")) == "TCP 5432"
    assert not a.conn("shop/web", "shop/db") and not a.conn("shop/db", "shop/api")
    assert str(a.conn("ops/prom", "shop/api")) == "TCP 9090", "named port resolved on the destination"
    assert not a.conn("ops/prom", "shop/web"), "web has no metrics port"
    assert str(a.conn("shop/web", "kube-system/coredns")) == "TCP 53,UDP 53", "DNS egress is on by default"
    lines = {(s, d): str(c) for s, d, c in a.connections()}
    assert lines[("0.0.0.0-9.255.255.255", "shop/web[Pod]")] == "TCP 80"
    assert ("10.0.0.0-10.255.255.255", "shop/web[Pod]") not in lines


def test_gathered_round_trip():
    intent = model.to_intent(model.build(SHOP))
    shop = next(e for e in intent if e["namespace"] == "shop")
    assert shop["default_deny"] == ["egress", "ingress"] and shop["allow_dns"] is True
    flows = {f["name"]: f for f in shop["flows"]}
    assert flows["web-to-api"] == {"name": "web-to-api", "from": {"pods": {"app": "web"}}, "to": {"pods": {"app": "api"}},
                                   "ports": ["8080/TCP"]}
    assert flows["internet-to-web"]["from"] == {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}
    assert model.build([{**shop, "flows": list(flows.values())}]) is not None


@pytest.mark.parametrize("flow,fragment", [
    ({"ports": [70000]}, "config[0].flows[0].ports[0]: port 70000 in 70000 is out of range (1-65535)"),
    ({"ports": ["80/ICMP"]}, "protocol 'ICMP' in '80/ICMP' is not one of TCP, UDP, SCTP"),
    ({"ports": ["90-80"]}, "ends before it starts"),
    ({"ports": []}, "an empty list would allow every port"),
    ({"from": {"cidr": "10.0.0.0/33"}}, "config[0].flows[0].from.cidr: '10.0.0.0/33' is not a valid CIDR"),
    ({"from": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}, "except[0] (192.168.0.0/16) is not inside"),
    ({"from": {}}, "an empty peer would match every pod"),
    ({"from": {"pod": {"app": "x"}}}, "unknown key(s) pod"),
    ({"name": "Bad_Name"}, "flows[0].name: 'Bad_Name' must be a DNS label"),
])
def test_bad_intent_names_the_field(flow, fragment):
    base = {"name": "f", "from": {"pods": {"app": "a"}}, "to": {"pods": {"app": "b"}}}
    with pytest.raises(ValidationError) as exc:
        model.build([{"namespace": "shop", "flows": [{**base, **flow}]}])
    assert fragment in str(exc.value)


def test_ports_forms():
    assert model.port_entry("8000-8100/UDP", "p") == {"protocol": "UDP", "port": 8000, "endPort": 8100}
    assert model.port_entry({"port": 53, "protocol": "udp"}, "p") == {"protocol": "UDP", "port": 53}
    assert model.port_entry("dns/UDP", "p") == {"protocol": "UDP", "port": "dns"}
    assert model.port_entry("/SCTP", "p") == {"protocol": "SCTP"}
