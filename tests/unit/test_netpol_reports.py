"""The analyzer's external ranges, reports, expectations, findings, and properties."""

from __future__ import annotations

import ipaddress
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import report, runner
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import Analysis
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.semantics import ConnSet


def dep(ns, name, labels, ports=()):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"metadata": {"labels": labels}, "spec": {"containers": [
                {"name": "c", "ports": [{"name": n, "containerPort": p} for n, p in ports]}]}}}}


def netpol(ns, name, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec}


CHAPTER = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ecommerce", "labels": {"environment": "production"}}},
    dep("ecommerce", "frontend", {"app": "frontend"}), dep("ecommerce", "api", {"app": "api"}),
    dep("ecommerce", "database", {"app": "database"}),
    netpol("ecommerce", "frontend-policy", {
        "podSelector": {"matchLabels": {"app": "frontend"}}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                     "ports": [{"protocol": "TCP", "port": 80}]}],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"protocol": "TCP", "port": 8080}]}]}),
    netpol("ecommerce", "db-policy", {
        "podSelector": {"matchLabels": {"app": "database"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"protocol": "TCP", "port": 5432}]}]}),
]

CHAPTER_TXT = """\
0.0.0.0-255.255.255.255 => ecommerce/api[Deployment] : All Connections
0.0.0.0-9.255.255.255 => ecommerce/frontend[Deployment] : TCP 80
11.0.0.0-255.255.255.255 => ecommerce/frontend[Deployment] : TCP 80
ecommerce/api[Deployment] => 0.0.0.0-255.255.255.255 : All Connections
ecommerce/api[Deployment] => ecommerce/database[Deployment] : TCP 5432
ecommerce/database[Deployment] => 0.0.0.0-255.255.255.255 : All Connections
ecommerce/database[Deployment] => ecommerce/api[Deployment] : All Connections
ecommerce/frontend[Deployment] => ecommerce/api[Deployment] : TCP 8080
"""


def test_chapter_policies_in_np_guard_line_format():
    result = runner.analyse(CHAPTER, ["txt"], [])
    assert result["reports"]["txt"] == CHAPTER_TXT


def test_every_format_renders_the_same_connections():
    result = runner.analyse(CHAPTER, list(report.FORMATS), [])
    texts = result["reports"]
    assert json.loads(texts["json"])[4] == {"src": "ecommerce/api[Deployment]", "dst": "ecommerce/database[Deployment]", "conn": "TCP 5432"}
    assert texts["csv"].splitlines()[0] == "src,dst,conn" and len(texts["csv"].splitlines()) == 9
    assert "| ecommerce/frontend[Deployment] | ecommerce/api[Deployment] | TCP 8080 |" in texts["md"]
    assert 'subgraph "cluster_ecommerce"' in texts["dot"] and '-> "ecommerce/database[Deployment]" [label="TCP 5432"' in texts["dot"]
    assert texts["mermaid"].startswith("flowchart LR") and '-->|"TCP 5432"|' in texts["mermaid"]
    page = texts["html"]
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert 'src="http' not in page and 'href="http' not in page, "self-contained: nothing loaded from elsewhere"
    assert "<svg" in page and page.count("<line") == 8, "the graph: one arrow per allowed connection"
    assert "no-dns-egress" in page, "findings are in the report"


def test_expectations_name_every_violation():
    violations = report.check_expectations(Analysis(CHAPTER), [
        {"src": "8.8.8.8", "dst": "ecommerce/frontend", "port": 80},
        {"src": "10.1.2.3", "dst": "ecommerce/frontend", "port": 80, "allowed": False},
        {"src": "ecommerce/frontend", "dst": "ecommerce/database", "port": 5432, "allowed": False},
        {"src": "ecommerce/api", "dst": "ecommerce/database", "port": 5432},
        {"src": "ecommerce/database", "dst": "ecommerce/api", "port": 8080, "allowed": False},
        {"src": "ecommerce/nope", "dst": "ecommerce/api"},
    ])
    assert violations == [
        "expect[4]: ecommerce/database => ecommerce/api TCP 8080 should be denied but is allowed (allowed: All Connections)",
        "expect[5]: src ecommerce/nope is not a known workload or address"]


def test_selector_expectations_cover_every_matched_workload_and_say_why():
    objects = CHAPTER + [dep("ecommerce", "frontend-canary", {"app": "frontend", "track": "canary"})]
    analysis = Analysis(objects)
    violations = report.check_expectations(analysis, [
        {"src": {"namespace": "ecommerce", "pods": {"app": "frontend"}}, "dst": "ecommerce/database", "port": 5432,
         "allowed": False},
        {"src": {"namespace": "ecommerce", "pods": {"app": "frontend"}}, "dst": "ecommerce/database", "port": 5432,
         "why": "the frontend reads the database"},
        {"src": {"namespace": "ecommerce", "pods": {"app": "ghost"}}, "dst": "ecommerce/api", "why": "ghosts"},
    ])
    assert violations == [
        "expect[1] (the frontend reads the database): ecommerce/frontend-canary[Deployment] => "
        "ecommerce/database TCP 5432 should be allowed but is denied (allowed: No Connections)",
        "expect[1] (the frontend reads the database): ecommerce/frontend[Deployment] => "
        "ecommerce/database TCP 5432 should be allowed but is denied (allowed: No Connections)",
        "expect[2] (ghosts): src pods app=ghost in namespace ecommerce is not a known workload or address"]


def test_findings_of_the_chapter():
    found = runner.analyse(CHAPTER, [], [])["findings"]
    kinds = {(f["kind"], f.get("workload") or f.get("policy")) for f in found}
    assert ("no-dns-egress", "ecommerce/frontend[Deployment]") in kinds, "the classic: default deny broke DNS"
    assert ("not-isolated", "ecommerce/api[Deployment]") in kinds


def test_more_findings():
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod", "labels": {"environment": "production"}}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "stage", "labels": {"environment": "staging"}}},
        dep("prod", "web", {"app": "web"}, [("http", 8080)]), dep("stage", "web", {"app": "web"}),
        netpol("prod", "ghost", {"podSelector": {"matchLabels": {"app": "ghost"}}, "ingress": [{}]}),
        netpol("prod", "web", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": "nobody"}}}]},
            {"ports": [{"port": "metrics"}]},
            {}, {"ports": [{"port": 80}]}]}),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "node-agent", "namespace": "prod"},
         "spec": {"hostNetwork": True, "containers": [{"name": "c"}]}},
    ]
    found = runner.analyse(objects, [], [])["findings"]
    kinds = [f["kind"] for f in found]
    for kind in ("policy-selects-nothing", "peer-matches-nothing", "named-port-unresolved", "rule-shadowed",
                 "cross-environment", "host-network"):
        assert kind in kinds, (kind, found)
    assert any("stage/web[Deployment] (staging) => prod/web[Deployment] (production)" in f["message"] for f in found)


def test_live_pods_stand_for_their_deployment():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "api-7d9f8c6b5-x2x4z", "namespace": "shop", "labels": {"app": "api", "pod-template-hash": "7d9f8c6b5"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "api-7d9f8c6b5", "controller": True}]}, "spec": {"containers": []}}
    twin = {**pod, "metadata": {**pod["metadata"], "name": "api-7d9f8c6b5-abcde"}}
    analysis = Analysis([pod, twin])
    assert [w.id for w in analysis.workloads] == ["shop/api[Deployment]"]


def test_conn_set_algebra_and_spelling():
    tcp80 = ConnSet.ports("TCP", 80, 80)
    assert str(tcp80 | ConnSet.ports("TCP", 81, 90) | ConnSet.ports("UDP", 53, 53)) == "TCP 80-90,UDP 53"
    assert str(ConnSet.all() & tcp80) == "TCP 80" and str(ConnSet.none()) == "No Connections"
    assert str(ConnSet.all()) == "All Connections" and tcp80 <= ConnSet.all()


# -- properties ----------------------------------------------------------------------------
LABELS = st.sampled_from([{"app": "a"}, {"app": "b"}, {"app": "c", "tier": "db"}, {}])
SELECTOR = st.sampled_from([{}, {"matchLabels": {"app": "a"}}, {"matchLabels": {"app": "b"}},
                            {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}])
PORTS = st.sampled_from([None, [{"port": 80}], [{"port": 53, "protocol": "UDP"}], [{"port": 80, "endPort": 90}]])
PEER = st.one_of(st.builds(lambda s: {"podSelector": s}, SELECTOR),
                 st.builds(lambda s: {"namespaceSelector": {"matchLabels": {"ns": s}}}, st.sampled_from(["one", "two"])),
                 st.just({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}))
RULE = st.builds(lambda peers, ports: {k: v for k, v in (("peers", peers), ("ports", ports)) if v is not None},
                 st.one_of(st.none(), st.lists(PEER, min_size=1, max_size=2)), PORTS)


def world(pod_labels, policies):
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {"ns": n}}} for n in ("one", "two")]
    for i, labels in enumerate(pod_labels):
        objects.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": ("one", "two")[i % 2],
                                                                        "labels": labels}, "spec": {"containers": []}})
    for i, (selector, direction, rules) in enumerate(policies):
        key = "from" if direction == "ingress" else "to"
        spec = {"podSelector": selector, "policyTypes": ["Ingress" if direction == "ingress" else "Egress"],
                direction: [{**({key: r["peers"]} if "peers" in r else {}), **({"ports": r["ports"]} if "ports" in r else {})}
                            for r in rules]}
        objects.append({"kind": "NetworkPolicy", "metadata": {"name": f"np{i}", "namespace": "one"}, "spec": spec})
    return objects


def as_map(objects):
    return {(s, d): c for s, d, c in Analysis(objects).connections()}


POLICY = st.tuples(SELECTOR, st.sampled_from(["ingress", "egress"]), st.lists(RULE, max_size=3))


@settings(max_examples=150, deadline=None)
@given(st.lists(LABELS, min_size=2, max_size=5), st.lists(POLICY, max_size=4), POLICY)
def test_adding_a_rule_never_removes_a_connection(pod_labels, policies, extra):
    if not policies:
        return
    before = as_map(world(pod_labels, policies))
    selector, direction, rules = policies[0]
    widened = [(selector, direction, rules + extra[2])] + policies[1:]
    after = as_map(world(pod_labels, widened))
    for (src, dst), conn in before.items():
        # Range labels may merge differently after the change: compare at the range's first address.
        assert conn <= at(after, src, dst), (src, dst)


def at(connections: dict, src: str, dst: str) -> ConnSet:
    def same(label, ref):
        if "[" in ref:
            return label == ref
        if "[" in label:
            return False
        first, last = (int(ipaddress.ip_address(end)) for end in label.split("-"))
        return first <= int(ipaddress.ip_address(ref.split("-")[0])) <= last
    return next((c for (s, d), c in connections.items() if same(s, src) and same(d, dst)), ConnSet.none())


@settings(max_examples=100, deadline=None)
@given(st.lists(LABELS, min_size=2, max_size=5), st.sampled_from(["ingress", "egress"]))
def test_default_deny_alone_allows_nothing_in_that_direction(pod_labels, direction):
    objects = world(pod_labels, [({}, direction, [])])
    for src, dst, conn in Analysis(objects).connections():
        target = dst if direction == "ingress" else src
        assert not target.startswith("one/"), (src, dst, conn)


def test_an_isolated_workload_with_no_connections_is_still_known():
    objects = CHAPTER + [dep("ecommerce", "island", {"app": "island"}),
                         netpol("ecommerce", "island", {"podSelector": {"matchLabels": {"app": "island"}},
                                                        "policyTypes": ["Ingress", "Egress"]})]
    analysis = Analysis(objects)
    assert report.check_expectations(analysis, [
        {"src": "ecommerce/island", "dst": "ecommerce/api", "allowed": False}]) == []


def test_a_service_sending_to_a_port_no_policy_admits_is_found():
    """The chapter's hybrid global-app: a LoadBalancer 443 -> targetPort 8443, and a policy that
    admits 443 on the pods - every request through the LoadBalancer is dropped."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "global-app", "namespace": "hybrid"},
               "spec": {"type": "LoadBalancer", "selector": {"app": "hybrid-app"},
                        "ports": [{"port": 443, "targetPort": 8443}]}}
    chapter = netpol("hybrid", "cross-cloud-policy", {"podSelector": {"matchLabels": {"app": "hybrid-app"}}, "policyTypes": ["Ingress"],
                                                      "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
                                                                   "ports": [{"protocol": "TCP", "port": 443}]}]})
    objects = [dep("hybrid", "hybrid-app", {"app": "hybrid-app"}), service, chapter]
    found = [f for f in runner.analyse(objects, [], [])["findings"] if f["kind"] == "service-port-blocked"]
    assert [f["message"] for f in found] == [
        "Service hybrid/global-app sends port 443 to TCP 8443 of hybrid/hybrid-app[Deployment], and no policy admits "
        "anything there (they admit TCP 443)"]
    rule = {**chapter["spec"]["ingress"][0], "ports": [{"protocol": "TCP", "port": 8443}]}
    fixed = netpol("hybrid", "cross-cloud-policy", {**chapter["spec"], "ingress": [rule]})
    assert not [f for f in runner.analyse(objects[:2] + [fixed], [], [])["findings"] if f["kind"] == "service-port-blocked"]


def test_every_finding_kind_is_one_registered_function_and_documented():
    import re
    from pathlib import Path

    module = (Path(__file__).resolve().parents[2] / "plugins" / "modules" / "netpol_analyze.py").read_text()
    documented = set(re.findall(r"C\(([a-z]+(?:-[a-z]+)+)\)", module[module.index("findings:"):module.index("violations:")]))
    assert set(report.FINDINGS) == documented
    assert len(set(map(id, report.FINDINGS.values()))) == len(report.FINDINGS)
