"""The IP plan (fabric_clusters): checked once for every role, read by kubefed, hybrid_dns,
ecommerce_net and istio_mesh, declared once."""

from __future__ import annotations

import copy

import pytest
import yaml

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import fabric_clusters
from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import ecommerce_net, hybrid_dns, istio_mesh, kubefed
from tests.helpers import REPO
from tests.unit.test_plan_properties import ECOMMERCE_SPEC, HYBRID_SPEC, KUBEFED_SPEC, MESH_SPEC

PLAN = yaml.safe_load((REPO / "inventories" / "local" / "group_vars" / "all.yml").read_text())["fabric_clusters"]


def plan(changes: dict):
    out = copy.deepcopy(PLAN)
    for (index, field), value in changes.items():
        out[index][field] = value
    return out


def test_the_embedded_plan_is_dual_stack_and_clean():
    assert fabric_clusters.problems(PLAN) == []
    assert {c["name"] for c in PLAN} == {"us-east", "eu-west"}
    assert all(any(":" in r for r in c["pod_cidrs"]) for c in PLAN), "the example shows IPv6 too"


@pytest.mark.parametrize("changes, message", [
    ({(1, "pod_cidrs"): ["10.42.128.0/17"]},
     "fabric_clusters[0].pod_cidrs[0] (us-east) (10.42.0.0/16) overlaps fabric_clusters[1].pod_cidrs[0] (eu-west) "
     "(10.42.128.0/17): fabric_clusters[1].pod_cidrs[0] (eu-west) lies inside fabric_clusters[0].pod_cidrs[0] (us-east)"),
    ({(1, "pod_cidrs"): ["10.44.0.0/16", "fd00:10:42:80::/64"]},
     "fabric_clusters[0].pod_cidrs[1] (us-east) (fd00:10:42::/56) overlaps fabric_clusters[1].pod_cidrs[1] (eu-west)"),
    ({(0, "service_cidrs"): ["10.96.0.0/16", "10.98.0.0/16"]},
     "fabric_clusters[0].service_cidrs: us-east has 2 IPv4 service ranges; Kubernetes takes one per family"),
    ({(0, "service_cidrs"): ["10.96.0.0/16"]},
     "fabric_clusters[0]: us-east's pod ranges are IPv4/IPv6 but its service ranges IPv4"),
    ({(0, "vips"): ["10.97.0.1"]},
     "fabric_clusters[0].vips[0] (us-east): 10.97.0.1 overlaps fabric_clusters[1].service_cidrs[0] (eu-west), "
     "10.97.0.0/16: a VIP must lie outside every cluster's pod and service ranges"),
    ({(1, "node_cidrs"): ["10.42.7.0/24"]}, "fabric_clusters[1].node_cidrs[0] (eu-west): 10.42.7.0/24 overlaps "
                                            "fabric_clusters[0].pod_cidrs[0] (us-east)"),
    ({(1, "name"): "us-east"}, "fabric_clusters[1].name: 'us-east' is used twice"),
    ({(0, "pod_cidrs"): ["10.42.0.0/33"]}, "fabric_clusters[0].pod_cidrs[0]: '10.42.0.0/33' is not a valid CIDR"),
    ({(0, "pod_cidrs"): "10.42.0.0/16"}, "fabric_clusters[0].pod_cidrs: '10.42.0.0/16' must be a list"),
])
def test_the_plan_refuses_overlaps_and_bad_ranges_naming_both(changes, message):
    assert any(p.startswith(message) for p in fabric_clusters.problems(plan(changes))), fabric_clusters.problems(plan(changes))


def test_kubefed_takes_ranges_from_the_plan_dual_stack_policies_and_proof():
    spec = copy.deepcopy(KUBEFED_SPEC)
    result = kubefed.plan(spec)
    assert result["problems"] == []
    assert result["clusters"] == [{"name": "us-east", "context": "us-east"}, {"name": "eu-west", "context": "eu-west"}]
    flows = {f["name"]: f for config in result["policy_config"] for f in config["flows"]}
    assert flows["us-east-to-financial-app"]["from"] == {"cidr": "10.42.0.0/16"}
    assert flows["us-east-1-to-financial-app"]["from"] == {"cidr": "fd00:10:42::/56"}
    sources = {e["src"] for proof in result["proofs"].values() for e in proof["expect"]}
    assert {"10.42.0.0", "fd00:10:42::", "10.44.0.0", "fd00:10:44::"} <= sources


def test_kubefed_regulated_data_is_proven_per_cluster_where_it_runs():
    spec = copy.deepcopy(KUBEFED_SPEC)
    spec["services"].append({"name": "ledger", "namespace": "ledger", "port": 443, "data_region": "eu"})
    result = kubefed.plan(spec)
    assert result["problems"] == []
    assert not any(e["dst"] == "ledger/ledger" for e in result["proofs"]["us-east"]["expect"]), "ledger does not run in us-east"
    into = {(e["src"], e["allowed"]) for e in result["proofs"]["eu-west"]["expect"]
            if e["dst"] == "ledger/ledger" and e["port"] == 443}
    assert ("10.44.0.0", True) in into and ("fd00:10:44::", True) in into
    assert ("10.42.0.0", False) in into and ("fd00:10:42::", False) in into


def test_a_range_declared_twice_must_agree():
    spec = copy.deepcopy(KUBEFED_SPEC)
    spec["clusters"][1]["pod_cidr"] = "10.4.0.0/14"
    assert kubefed.problems(spec) == [
        "kubefed_clusters[1].pod_cidr: '10.4.0.0/14' differs from fabric_clusters[1].pod_cidrs "
        "['10.44.0.0/16', 'fd00:10:44::/56'] (eu-west); declare it once, in fabric_clusters"]
    spec["clusters"][1]["pod_cidr"] = "10.44.0.0/16"  # the plan's IPv4 range alone is still another value
    assert "differs" in kubefed.problems(spec)[0]


def test_without_a_plan_the_roles_own_fields_are_used_and_required():
    spec = copy.deepcopy(KUBEFED_SPEC)
    spec["fabric_clusters"] = []
    problems = kubefed.problems(spec)
    assert "kubefed_clusters[0].pod_cidr: needed (cross-cluster traffic is allowed by pod range; here or in fabric_clusters)" in problems
    spec["clusters"] = [{"name": "a", "context": "a", "pod_cidr": "10.0.0.0/16", "vips": ["203.0.113.1"], "priority": 1},
                        {"name": "b", "context": "b", "pod_cidr": "10.1.0.0/16", "vips": ["10.0.0.9"], "priority": 1,
                         "prometheus": "https://p.example.com:443"}]
    spec["clusters"][0]["prometheus"] = "https://q.example.com:443"
    spec["host"] = "a"
    assert kubefed.problems(spec) == [
        "kubefed_clusters[1].vips[0] (b): 10.0.0.9 overlaps kubefed_clusters[0].pod_cidr (a), 10.0.0.0/16: a VIP must lie "
        "outside every cluster's pod and service ranges (traffic to it would stay inside a cluster)"]


def test_the_federation_needs_one_kubeconfig_unless_kubefed_kubeconfig_says_which():
    spec = copy.deepcopy(KUBEFED_SPEC)
    spec["fabric_clusters"][0]["kubeconfig"] = "/a/kubeconfig"
    spec["fabric_clusters"][1]["kubeconfig"] = "/b/kubeconfig"
    assert kubefed.problems(spec) == [
        "kubefed: the federation's clusters must be reachable through one kubeconfig (or set kubefed_kubeconfig), "
        "but fabric_clusters[0].kubeconfig is /a/kubeconfig, fabric_clusters[1].kubeconfig is /b/kubeconfig"]
    spec["kubeconfig"] = "/c/kubeconfig"
    assert kubefed.plan(spec)["kubeconfig"] == "/c/kubeconfig"


def test_hybrid_reads_location_and_ranges_and_refuses_a_resolver_inside_its_pods():
    spec = copy.deepcopy(HYBRID_SPEC)
    assert hybrid_dns.problems(spec) == []
    cluster = hybrid_dns.this_cluster(spec)[0]
    assert cluster["location"] == "on-prem" and cluster["service_cidrs"] == ["10.96.0.0/16", "fd00:10:96::/112"]
    spec["locations"][0]["dns_servers"] = ["10.42.0.53"]
    assert "hybrid_dns_locations[0].dns_servers[0]: 10.42.0.53 lies inside fabric_clusters[0].pod_cidrs[0], " \
           "10.42.0.0/16: traffic to it would stay in the cluster" in hybrid_dns.problems(spec)
    spec = copy.deepcopy(HYBRID_SPEC)
    spec["cluster"]["location"] = "aws"
    assert hybrid_dns.problems(spec)[0].startswith("hybrid_dns_cluster.location: 'aws' differs from fabric_clusters[0].location")


def test_connection_comes_from_the_plan_unless_the_role_sets_it():
    for module, spec in ((ecommerce_net, ECOMMERCE_SPEC), (istio_mesh, MESH_SPEC)):
        spec = {**copy.deepcopy(spec), "fabric_clusters": plan({(0, "kubeconfig"): "/plan/kubeconfig"})}
        assert module.problems(spec) == []
        assert module.plan(spec)["connection"] == {"context": "us-east", "kubeconfig": "/plan/kubeconfig"}
        spec.update(context="other", kubeconfig="/runner/kubeconfig")  # another account: the runner's own file wins
        assert module.plan(spec)["connection"] == {"context": "other", "kubeconfig": "/runner/kubeconfig"}


def test_ecommerce_takes_node_ranges_from_the_plan_for_a_cluster_policy_load_balancer():
    spec = copy.deepcopy(ECOMMERCE_SPEC)
    spec["lb"] = {**spec["lb"], "external_traffic_policy": "Cluster", "node_cidrs": []}
    assert ecommerce_net.problems(spec) == []
    sources = [f["from"] for c in ecommerce_net.plan(spec)["policy_config"] for f in c["flows"] if f["from"].get("cidr") == "10.40.0.0/24"]
    assert sources, "the nodes' range from fabric_clusters admits the LoadBalancer's traffic"
    spec["lb"]["node_cidrs"] = ["10.50.0.0/24"]
    assert ecommerce_net.problems(spec)[0].startswith("ecommerce_net_lb.node_cidrs: ['10.50.0.0/24'] differs from fabric_clusters[0].node_cidrs")


def test_every_role_refuses_an_overlap_anywhere_in_the_plan():
    bad = plan({(1, "service_cidrs"): ["10.96.0.0/16", "fd00:10:97::/112"]})
    for module, spec in ((ecommerce_net, ECOMMERCE_SPEC), (istio_mesh, MESH_SPEC), (hybrid_dns, HYBRID_SPEC), (kubefed, KUBEFED_SPEC)):
        found = module.problems({**copy.deepcopy(spec), "fabric_clusters": bad})
        assert found == ["fabric_clusters[0].service_cidrs[0] (us-east) (10.96.0.0/16) overlaps fabric_clusters[1]."
                         "service_cidrs[0] (eu-west) (10.96.0.0/16): are the same range"], (module.__name__, found)
