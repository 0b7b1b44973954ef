"""Property: whatever the variables hold, a plan filter either plans, lists problems naming the
variable, or raises the project's own error - never a Python exception from deep inside."""

from __future__ import annotations

import copy
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible.errors import AnsibleFilterError
from ansible_collections.k8snet.fabric.plugins.filter.ecommerce_net import ecommerce_net_plan
from ansible_collections.k8snet.fabric.plugins.filter.hybrid_dns import hybrid_dns_plan
from ansible_collections.k8snet.fabric.plugins.filter.istio_mesh import istio_mesh_plan
from ansible_collections.k8snet.fabric.plugins.filter.kubefed import kubefed_plan
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import FabricError
from tests.helpers import REPO


def defaults(role: str) -> dict:
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())


def spec_of(role: str, prefix: str, keys, **extra) -> dict:
    values = defaults(role)
    return {**{key: values[f"{prefix}_{key}"] for key in keys}, **extra}


# The embedded inventory's IP plan, which the cluster roles read (as on its host us-east).
PLAN = yaml.safe_load((REPO / "inventories" / "local" / "group_vars" / "all.yml").read_text())["fabric_clusters"]
WORKLOAD = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "ecommerce-prod"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c"}]}}}}
ECOMMERCE_SPEC = spec_of("ecommerce_net", "ecommerce_net", (
    "environments", "tiers", "peers", "flows", "dns_egress", "lb", "ingress_api", "ingress", "monitoring",
    "spread_topology_key"), workloads=[WORKLOAD], fabric_clusters=PLAN, cluster_name="us-east")
KUBEFED_SPEC = spec_of("kubefed", "kubefed", ("host", "clusters", "services", "global_dns", "probes"), fabric_clusters=PLAN)
HYBRID_SPEC = spec_of("hybrid_dns", "hybrid_dns", ("domain", "locations", "cluster", "apps", "records", "record_ttl",
                                                   "coredns"), probe_port=defaults("hybrid_dns")["hybrid_dns_probes"]["port"],
                      fabric_clusters=PLAN)
HYBRID_SPEC["cluster"]["name"] = "us-east"
MESH_SPEC = spec_of("istio_mesh", "istio_mesh", (
    "root_namespace", "trust_domain", "cluster_domain", "revision", "mtls", "namespaces", "services",
    "authz_default_deny", "gateway", "telemetry", "monitoring", "alerts", "istioctl_install", "install", "expect"),
    fabric_clusters=PLAN, cluster_name="us-east")
PLANS = {"ecommerce_net_plan": (ecommerce_net_plan, ECOMMERCE_SPEC), "kubefed_plan": (kubefed_plan, KUBEFED_SPEC),
         "hybrid_dns_plan": (hybrid_dns_plan, HYBRID_SPEC), "istio_mesh_plan": (istio_mesh_plan, MESH_SPEC)}

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["", "0.0.0.0/0", "10.0.0.0/33", "frontend", "internet",
                                                           "http", "80/UDP", "a_b", "Local", "gateway"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


def paths(value, prefix=()):
    """Every place in a nested structure that a mutation can replace."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from paths(inner, prefix + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from paths(inner, prefix + (index,))


def mutate(spec: dict, path: tuple, value):
    out = copy.deepcopy(spec)
    if not path:
        return value
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


def check_plan(plan_filter, base, changes):
    spec = base
    for path, value in changes:
        try:
            spec = mutate(spec, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed that place
    try:
        plan = plan_filter(spec)
    except (AnsibleFilterError, FabricError):
        return
    assert isinstance(plan, dict) and isinstance(plan["problems"], list)
    assert all(isinstance(p, str) and p for p in plan["problems"])


def test_the_defaults_plan_cleanly():
    for name, (plan_filter, base) in PLANS.items():
        assert plan_filter(copy.deepcopy(base))["problems"] == [], name


@pytest.mark.parametrize("name", sorted(PLANS))
@settings(max_examples=int(os.environ.get("K8SNET_PROPERTY_EXAMPLES", "400")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_plan_never_crashes(name, data):
    plan_filter, base = PLANS[name]
    places = [p for p in paths(base) if p]
    changes = data.draw(st.lists(st.tuples(st.sampled_from(places), VALUES), min_size=1, max_size=3))
    check_plan(plan_filter, base, changes)
