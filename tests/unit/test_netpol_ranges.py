"""Address ranges in the analysis: pods inside ipBlocks (address and identity models), ranges named
for the reader, and the HTML page that says what it proved."""

from __future__ import annotations

import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import report, runner
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import Analysis


def pod(name, ip, owner=None, labels=None):
    meta = {"name": name, "namespace": "a", "labels": labels or {"app": name}}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": f"{owner}-5d4f", "controller": True}]
        meta["labels"] = {"app": owner, "pod-template-hash": "5d4f"}
    return {"kind": "Pod", "metadata": meta, "status": {"podIP": ip, "podIPs": [{"ip": ip}]},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}}


def allow_from(cidr, excepts=()):
    block = {"cidr": cidr, **({"except": list(excepts)} if excepts else {})}
    return {"kind": "NetworkPolicy", "metadata": {"name": "db-in", "namespace": "a"},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"ipBlock": block}]}]}}


def kinds(analysis):
    return [f["kind"] for f in report.findings(analysis)]


@pytest.mark.parametrize("model, allowed", [("address", True), ("identity", False)])
def test_a_pod_inside_the_block_is_a_peer_only_under_the_address_model(model, allowed):
    analysis = Analysis([pod("web", "10.0.0.5"), pod("db", "10.0.1.7"), allow_from("10.0.0.0/24")], ipblock_pods=model)
    assert bool(analysis.conn("a/web", "a/db")) is allowed
    assert "ipblock-holds-pods" in kinds(analysis)
    # The same answer through the streamed rows the reports are written from.
    rows = {(s, d) for s, d, _c in analysis.connections()}
    assert (("a/web[Pod]", "a/db[Pod]") in rows) is allowed


def test_except_keeps_a_pod_out():
    analysis = Analysis([pod("web", "10.0.0.5"), pod("db", "10.0.1.7"), allow_from("10.0.0.0/16", ["10.0.0.0/24"])])
    assert not analysis.conn("a/web", "a/db")
    assert "ipblock-holds-pods" in kinds(analysis)  # db itself is inside


def test_a_controller_whose_pods_are_partly_inside_is_reported():
    objects = [pod("web-1", "10.0.0.5", owner="web"), pod("web-2", "10.9.0.5", owner="web"), pod("db", "10.0.1.7"),
               allow_from("10.0.0.0/16")]
    analysis = Analysis(objects)
    assert analysis.workloads[0].addresses == ["10.0.0.5", "10.9.0.5"]
    assert analysis.conn("a/web", "a/db")
    found = [f for f in report.findings(analysis) if f["kind"] == "ipblock-holds-some-pods"]
    assert [f["workload"] for f in found] == ["a/web[Deployment]"]


def test_manifests_have_no_addresses_and_both_models_agree():
    manifests = [{**pod("web", ""), "status": {}}, {**pod("db", ""), "status": {}}, allow_from("10.0.0.0/8")]
    answers = {model: Analysis(manifests, ipblock_pods=model).conn("a/web", "a/db") for model in ("address", "identity")}
    assert not answers["address"] and not answers["identity"]
    assert "ipblock-holds-pods" not in kinds(Analysis(manifests))
    with_ranges = Analysis(manifests, pod_cidrs=("10.42.0.0/16",))
    found = [f["message"] for f in report.findings(with_ranges) if f["kind"] == "ipblock-holds-pods"]
    assert found and "pod range 10.42.0.0/16" in found[0]
    elsewhere = [{**pod("web", ""), "status": {}}, {**pod("db", ""), "status": {}}, allow_from("192.168.0.0/16")]
    assert "ipblock-holds-pods" not in kinds(Analysis(elsewhere, pod_cidrs=("10.42.0.0/16",)))


def test_bad_options_are_refused_naming_them():
    with pytest.raises(ValidationError, match="ipblock_pods: 'both'"):
        Analysis([], ipblock_pods="both")
    with pytest.raises(ValidationError, match=r"pod_cidrs\[1\]: '10.0.0.1/8'"):
        runner.analyse([], [], [], pod_cidrs=("10.0.0.0/8", "10.0.0.1/8"))


def test_ranges_are_named_by_the_most_specific_name_and_never_merged_across_names():
    web = {"kind": "Pod", "metadata": {"name": "web", "namespace": "a", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c"}]}}
    policy = {"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "a"}, "spec": {
        "podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                                        "ports": [{"port": 80}]}, {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
                                                                   "ports": [{"port": 80}]}]}}
    names = ({"name": "internet", "cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}, {"name": "private", "cidr": "10.0.0.0/8"},
             {"name": "eu-west pods", "cidr": "10.4.0.0/14"})
    rows = [(s, str(c)) for s, d, c in Analysis([web, policy], range_names=names).connections() if d == "a/web[Pod]"]
    assert rows == [("0.0.0.0-9.255.255.255 (internet)", "TCP 80"), ("10.0.0.0-10.3.255.255 (private)", "TCP 80"),
                    ("10.4.0.0-10.7.255.255 (eu-west pods)", "TCP 80"), ("10.8.0.0-10.255.255.255 (private)", "TCP 80"),
                    ("11.0.0.0-255.255.255.255 (internet)", "TCP 80")]
    # Without names the same connections merge into one range.
    assert [(s, str(c)) for s, d, c in Analysis([web, policy]).connections() if d == "a/web[Pod]"] == [
        ("0.0.0.0-255.255.255.255", "TCP 80")]
    with pytest.raises(ValidationError, match=r"range_names\[0\]"):
        Analysis([web], range_names=({"name": "x"},))


def test_the_html_page_has_a_title_the_expectations_and_room_for_long_headers():
    rows = [{"src": "fd00:10::-fd00:10:0:ff:ffff:ffff:ffff:ffff (eu-west pods)", "dst": "a/web[Pod]", "conn": "TCP 80"}]
    expect = [{"src": "10.4.0.1", "dst": "a/web", "port": 80, "allowed": True},
              {"src": "10.0.0.1", "dst": "a/web", "port": 80, "allowed": False, "why": "us-east stays out"}]
    page = report.render(rows, "html", [], title="multicluster - eu-west", expect=expect,
                         violations=["expect[1] (us-east stays out): ..."])
    assert "<title>Network policy connectivity - multicluster - eu-west</title>" in page
    assert "<h2>Expectations (1 of 2 held)</h2>" in page
    assert '<li class="held">held: 10.4.0.1 reaches a/web TCP 80</li>' in page
    assert '<li class="violated">VIOLATED: 10.0.0.1 does not reach a/web TCP 80 (us-east stays out)</li>' in page
    height = float(page.split("th.v{height:")[1].split("rem")[0])
    assert height > 20, "a 58-character IPv6 header needs more than the old 11rem"
