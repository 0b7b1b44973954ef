"""The upstream Kubernetes e2e network-policy cases (test/e2e/network/netpol), re-expressed.

Model: namespaces x, y, z; pods a, b, c in each (label pod=<name>), serving 80 and 81 on TCP,
UDP and SCTP with named ports serve-<port>-<proto>. Each case states the policies and the
expected reachability for one port/protocol, as the upstream tests' truth tables do.
"""

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import Analysis

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
ALL = [f"{n}/{p}" for n in NAMESPACES for p in PODS]


def model(policies):
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {"ns": n}}} for n in NAMESPACES]
    for n in NAMESPACES:
        for p in PODS:
            ports = [{"name": f"serve-{port}-{proto.lower()}", "containerPort": port, "protocol": proto}
                     for port in (80, 81) for proto in ("TCP", "UDP", "SCTP")]
            objects.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": p, "namespace": n, "labels": {"pod": p}},
                            "spec": {"containers": [{"name": "cont", "ports": ports}]}})
    for i, (ns, spec) in enumerate(policies):
        objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": f"p{i}", "namespace": ns}, "spec": spec})
    return Analysis(objects)


def truth(analysis, port=80, proto="TCP"):
    return {(s, d) for s in ALL for d in ALL if s != d and analysis.conn(s, d).allows(proto, port)}


def everything_but(blocked):
    return {(s, d) for s in ALL for d in ALL if s != d} - set(blocked)


def to(dst, sources):
    return {(s, dst) for s in sources if s != dst}


def test_no_policy_allows_everything():
    assert truth(model([])) == everything_but([])


def test_default_deny_ingress():
    a = model([("x", {"podSelector": {}, "policyTypes": ["Ingress"]})])
    assert truth(a) == everything_but({(s, d) for s in ALL for d in ALL if d.startswith("x/") and s != d})


def test_default_deny_all():
    a = model([("x", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})])
    assert truth(a) == everything_but({(s, d) for s in ALL for d in ALL if s != d and ("x/" in s[:2] or d.startswith("x/"))})


def test_allow_from_pod_in_same_namespace():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}},
                      "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]})])
    assert truth(a) == everything_but(to("x/a", ALL)) | {("x/b", "x/a")}


def test_namespace_selector_match_expressions():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"namespaceSelector": {
        "matchExpressions": [{"key": "ns", "operator": "In", "values": ["y"]}]}}]}]})])
    assert truth(a) == everything_but(to("x/a", ALL)) | to("x/a", ["y/a", "y/b", "y/c"])


def test_pod_or_namespace_selector_is_or():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"ns": "y"}}}, {"podSelector": {"matchLabels": {"pod": "b"}}}]}]})])
    assert truth(a) == everything_but(to("x/a", ALL)) | to("x/a", ["y/a", "y/b", "y/c", "x/b"])


def test_pod_and_namespace_selector_is_and():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}}]}]})])
    assert truth(a) == everything_but(to("x/a", ALL)) | {("y/b", "x/a")}


def test_multiple_pod_and_namespace_selectors_with_not_in():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{
        "namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]},
        "podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["b", "c"]}]}}]}]})])
    assert truth(a) == everything_but(to("x/a", ALL)) | to("x/a", ["y/b", "y/c", "z/b", "z/c"])


def test_default_namespace_name_label():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]})])
    assert truth(a) == everything_but(to("x/a", ALL)) | to("x/a", ["y/a", "y/b", "y/c"])


def test_ports_restrict_the_allowed_port():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{
        "from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": 81}]}]})])
    assert truth(a, 80) == everything_but(to("x/a", ALL))
    assert truth(a, 81) == everything_but(to("x/a", ALL)) | to("x/a", ["y/a", "y/b", "y/c"])


def test_stacked_policies_are_additive():
    base = {"podSelector": {"matchLabels": {"pod": "a"}}}
    a = model([("x", {**base, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": 81}]}]}),
               ("x", {**base, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": 80}]}]})])
    assert truth(a, 80) == truth(a, 81) == everything_but(to("x/a", ALL)) | to("x/a", ["y/a", "y/b", "y/c"])


def test_allow_all_ingress_and_empty_ingress():
    assert truth(model([("x", {"podSelector": {}, "ingress": [{}]})])) == everything_but([])
    assert truth(model([("x", {"podSelector": {}, "ingress": []})])) == everything_but(
        {(s, d) for s in ALL for d in ALL if d.startswith("x/") and s != d})


def test_named_ingress_port():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]})])
    assert truth(a, 81) == everything_but([])
    assert truth(a, 80) == everything_but(to("x/a", ALL))


def test_named_egress_port_resolves_on_the_destination():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                      "egress": [{"ports": [{"port": "serve-80-tcp"}]}]})])
    assert truth(a, 80) == everything_but([])
    assert truth(a, 81) == everything_but({("x/a", d) for d in ALL if d != "x/a"})


def test_egress_allow_all_takes_precedence():
    sel = {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"]}
    a = model([("x", {**sel, "egress": [{"ports": [{"port": 80}]}]}), ("x", {**sel, "egress": [{}]})])
    assert truth(a, 81) == everything_but([])


def test_udp_only_policy_blocks_tcp():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": 81, "protocol": "UDP"}]}]})])
    assert truth(a, 81, "TCP") == everything_but(to("x/a", ALL))
    assert truth(a, 81, "UDP") == everything_but([])


def test_sctp_only_policy_still_isolates_for_tcp():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": 80, "protocol": "SCTP"}]}]})])
    assert truth(a, 80, "TCP") == everything_but(to("x/a", ALL))
    assert truth(a, 80, "SCTP") == everything_but([])


def test_protocol_without_port_allows_every_port_of_it():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"protocol": "TCP"}]}]})])
    assert truth(a, 81, "TCP") == everything_but([])
    assert truth(a, 81, "UDP") == everything_but(to("x/a", ALL))


def test_end_port_range_is_inclusive():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": 80, "endPort": 81}]}]})])
    assert truth(a, 80) == truth(a, 81) == everything_but([])
    conn = a.conn("y/a", "x/a")
    assert str(conn) == "TCP 80-81" and not conn.allows("TCP", 82)


def test_ingress_and_egress_are_controlled_independently():
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]})])
    assert truth(a) == everything_but({("x/a", d) for d in ALL if d not in ("x/a", "x/b")})


def test_deny_on_the_client_side_wins_even_if_the_server_allows():
    a = model([("y", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"], "egress": []}),
               ("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{}]})])
    assert ("y/a", "x/a") not in truth(a)


def test_policy_types_default_when_omitted():
    # egress rules present, no policyTypes: both directions isolate
    a = model([("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]})])
    assert truth(a) == everything_but(to("x/a", ALL) | {("x/a", d) for d in ALL if d != "x/a"})
