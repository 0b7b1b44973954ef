"""The class-level connectivity (behaviour classes, streamed listing, counts, groups) against a
brute-force listing that asks every workload pair and every address range one by one. The
brute force lives here only, as the oracle: the analyzer has one pair semantics (the class
matrix), and Analysis.conn answers from it."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import report, runner
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import Analysis
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.connectivity import merge_segments
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.semantics import ConnSet, rule_conns
from bench.netpol import dense

NAMED_PORTS = st.sampled_from([[], [{"name": "http", "containerPort": 8080}],
                               [{"name": "http", "containerPort": 9090}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}]])
LABELS = st.sampled_from([{"app": "a"}, {"app": "b"}, {"app": "c", "tier": "db"}, {}])
SELECTOR = st.sampled_from([{}, {"matchLabels": {"app": "a"}}, {"matchLabels": {"app": "b"}},
                            {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}])
PORTS = st.sampled_from([None, [{"port": 80}], [{"port": "http"}], [{"port": "dns", "protocol": "UDP"}],
                         [{"port": 80, "endPort": 90}]])
PEER = st.one_of(st.builds(lambda s: {"podSelector": s}, SELECTOR),
                 st.builds(lambda s: {"namespaceSelector": {"matchLabels": {"ns": s}}}, st.sampled_from(["one", "two"])),
                 st.builds(lambda s, p: {"namespaceSelector": {"matchLabels": {"ns": s}}, "podSelector": p},
                           st.sampled_from(["one", "two"]), SELECTOR),
                 st.sampled_from([{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                                  {"ipBlock": {"cidr": "10.1.2.0/24"}}, {"ipBlock": {"cidr": "fd00::/8"}}]))
RULE = st.fixed_dictionaries({}, optional={"peers": st.lists(PEER, min_size=1, max_size=2), "ports": PORTS})
POLICY = st.tuples(st.sampled_from(["one", "two"]), SELECTOR, st.sampled_from(["Ingress", "Egress"]),
                   st.lists(RULE, max_size=3))


def world(pods, policies):
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {"ns": n}}} for n in ("one", "two")]
    for i, (labels, ports) in enumerate(pods):
        objects.append({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": f"p{i}", "namespace": ("one", "two")[i % 2], "labels": labels},
                        "spec": {"containers": [{"name": "c", "ports": ports}]}})
    for i, (namespace, selector, direction, rules) in enumerate(policies):
        key = "from" if direction == "Ingress" else "to"
        spec = {"podSelector": selector, "policyTypes": [direction],
                direction.lower(): [{**({key: r["peers"]} if r.get("peers") else {}), **({"ports": r["ports"]} if r.get("ports") else {})}
                                    for r in rules]}
        objects.append({"kind": "NetworkPolicy", "metadata": {"name": f"np{i}", "namespace": namespace}, "spec": spec})
    return objects


def side(a: Analysis, rules: list, isolated: bool, peer: int, named_ports: dict) -> ConnSet:
    """One direction, rule by rule: every rule open to any peer or naming ``peer`` adds its ports."""
    if not isolated:
        return ConnSet.all()
    out = ConnSet.none()
    for classes, _blocks, ports, _policy in rules:
        if classes is None or peer in classes:
            out = out | rule_conns(ports, named_ports, a.strict)
    return out


def pair(a: Analysis, src: int, dst: int) -> ConnSet:
    """Label class to label class: what the destination's ingress admits and the source's egress lets out."""
    named = a.classes[dst].named_ports
    return side(a, a.in_rules[dst], a.ingress_isolated[dst], src, named) & \
        side(a, a.out_rules[src], a.egress_isolated[src], dst, named)


def brute_force(a: Analysis) -> list[tuple]:
    """Every workload pair asked on its label classes, every workload's ranges merged on its own."""
    out = []
    segments = a.segments()
    for i, src in enumerate(a.workloads):
        for j, dst in enumerate(a.workloads):
            if i != j:
                conn = pair(a, a.class_of[i], a.class_of[j])
                assert a.conn(src.id, dst.id) == conn, (src.id, dst.id)
                if conn:
                    out.append((src.id, dst.id, conn))
    for i, w in enumerate(a.workloads):
        c = a.class_of[i]
        inbound = [a.external(a.in_rules[c], a.ingress_isolated[c], s, w.named_ports) for s in segments]
        outbound = [a.external(a.out_rules[c], a.egress_isolated[c], s, {}) for s in segments]
        out += [(label, w.id, conn) for label, conn in merge_segments(segments, inbound)]
        out += [(w.id, label, conn) for label, conn in merge_segments(segments, outbound)]
    return sorted(out, key=lambda t: (t[0], t[1]))


def check(objects) -> Analysis:
    a = Analysis(objects)
    connectivity = a.connectivity()
    expected = brute_force(a)
    assert list(connectivity) == expected
    assert connectivity.count() == len(expected)
    groups = connectivity.groups()
    assert sum(g["pairs"] for g in groups) == len(expected), "every pair is in exactly one group"
    for fmt in ("txt", "csv", "md"):
        handle = io.StringIO()
        assert connectivity.write(handle, fmt) == len(expected)
        assert handle.getvalue() == report.render(report.rows(expected), fmt), fmt
    return a


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(LABELS, NAMED_PORTS), min_size=1, max_size=7), st.lists(POLICY, max_size=5))
def test_class_level_listing_is_the_pairwise_listing(pods, policies):
    check(world(pods, policies))


def test_a_dense_cluster_needs_far_fewer_behaviour_classes_than_workloads():
    a = check(dense(300, 80, 8))
    connectivity = a.connectivity()
    assert len(a.workloads) == 300
    assert len(connectivity.src_reps) < 100 and len(connectivity.dst_reps) < 200, \
        (len(connectivity.src_reps), len(connectivity.dst_reps))


def test_large_results_are_grouped_by_namespace_unless_the_full_list_is_asked(tmp_path, monkeypatch):
    objects = dense(120, 30, 4)
    full = runner.analyse(objects, ["txt", "csv"], [], dest=str(tmp_path / "full"), detail="full")
    lines = (tmp_path / "full" / "connlist.txt").read_text().splitlines()
    assert full["summary"]["detail"] == "full" and len(lines) == full["summary"]["connections"] == len(full["connections"])
    again = runner.analyse(objects, ["txt", "csv"], [], dest=str(tmp_path / "full"), detail="full")
    assert full["changed"] and not again["changed"], "an unchanged streamed report is not rewritten"

    monkeypatch.setattr(runner, "FULL_LIST_LIMIT", len(lines) - 1)
    auto = runner.analyse(objects, ["txt", "csv", "dot"], [{"src": "ns-00/w0000", "dst": "ns-01/w0001", "allowed": False}])
    assert auto["summary"]["detail"] == "grouped" and "connections" not in auto
    assert sum(g["pairs"] for g in auto["groups"]) == len(lines)
    first = auto["groups"][0]
    assert auto["reports"]["txt"].splitlines()[0] == f"{first['src']} => {first['dst']} : {first['conn']} ({first['pairs']} workload pairs)"
    assert auto["reports"]["csv"].splitlines()[0] == "src,dst,conn,pairs"
    assert 'subgraph "cluster_ns-00"' in auto["reports"]["dot"]
    expected = full["connections"]
    allowed = any(r["src"] == "ns-00/w0000[Deployment]" and r["dst"] == "ns-01/w0001[Deployment]" for r in expected)
    assert bool(auto["violations"]) == allowed, "expectations are answered without the list"


def test_cross_environment_findings_name_namespace_pairs_once_the_list_is_large(monkeypatch):
    objects = dense(120, 30, 4)
    for obj in objects:
        if obj["kind"] == "Namespace":
            obj["metadata"]["labels"]["environment"] = obj["metadata"]["labels"]["env"]

    def crossing(result):
        return [f for f in result["findings"] if f["kind"] == "cross-environment"]

    small = runner.analyse(objects, [], [], detail="full")
    per_pair = crossing(small)
    assert per_pair and all(f["src"].endswith("[Deployment]") for f in per_pair)
    monkeypatch.setattr(runner, "FULL_LIST_LIMIT", small["summary"]["connections"] - 1)
    for detail in ("full", "grouped"):
        grouped = crossing(runner.analyse(objects, [], [], detail=detail))
        assert grouped and all(f["src"].endswith("/*") and "workload pairs)" in f["message"] for f in grouped), detail
        pairs = sum(int(f["message"].rsplit("(", 1)[1].split()[0]) for f in grouped)
        assert pairs == len(per_pair), "the namespace pairs stand for exactly the workload pairs"
