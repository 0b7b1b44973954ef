"""The roles install the controllers their objects need (issue 24, part 3), on a fresh cluster:
one with no CRD at all, as a user first meets it. The bundle holds the real upstream manifests
(tests/testbed/bundle.py); Envoy Gateway's real control plane then runs as the service account
and with the RBAC and configuration its manifest installed, and accepts what the role wrote."""

from __future__ import annotations

import shutil

import pytest
import yaml

from tests.helpers import REPO, condition, on_cluster, recap, route_condition, run_playbook, wait_for
from tests.packets import controlled
from tests.testbed.bundle import write_sums

pytestmark = pytest.mark.testbed
HOST = "us-east"  # the testbed inventory's cluster host; its connection points at the fresh cluster
GATEWAYS = "/apis/gateway.networking.k8s.io/v1"


def ecommerce_on(testbed, cluster: str, tmp_path, *args, extra=None):
    """playbooks/ecommerce.yml against the testbed inventory, its cluster host connected to ``cluster``."""
    plays = yaml.safe_load((REPO / "playbooks" / "ecommerce.yml").read_text())
    return run_playbook(tmp_path, plays, "--limit", f"localhost,{HOST}", *args, extra_vars={
        "fabric_build_dir": str(tmp_path / "build"), **on_cluster(testbed, cluster, HOST), **(extra or {})},
        inventory=str(REPO / "inventories" / "testbed"))


def served(client, path: str) -> bool:
    return client.request("GET", path, allow=(404,)) is not None


def test_without_the_controllers_the_run_names_them_and_writes_nothing(testbed, fresh_cluster, tmp_path):
    mark = testbed.audit_mark(fresh_cluster)
    result = ecommerce_on(testbed, fresh_cluster, tmp_path)
    text = " ".join(result.stdout.split())
    assert result.returncode != 0, result.stdout[-3000:]
    assert "the objects need controllers this cluster does not serve; nothing of the role was applied" in text, text[-3000:]
    assert ("Envoy Gateway: BackendTrafficPolicy (gateway.envoyproxy.io/v1alpha1), Gateway "
            "(gateway.networking.k8s.io/v1), HTTPRoute (gateway.networking.k8s.io/v1)") in text
    assert "the Prometheus Operator: PrometheusRule (monitoring.coreos.com/v1), ServiceMonitor (monitoring.coreos.com/v1)" in text
    assert "name envoy-gateway in its controllers list" in text
    assert testbed.writes(fresh_cluster, since=mark) == []


def test_a_tampered_bundle_is_refused_before_anything_is_written(testbed, fresh_cluster, controller_bundle, tmp_path):
    tampered = shutil.copytree(controller_bundle, tmp_path / "addons")
    manifest = tampered / "envoy-gateway-install.yaml"
    manifest.write_text(manifest.read_text().replace("image: docker.io/envoyproxy/gateway:", "image: evil.example/gateway:"))
    mark = testbed.audit_mark(fresh_cluster)
    result = ecommerce_on(testbed, fresh_cluster, tmp_path, extra={
        "ecommerce_net_controllers": ["envoy-gateway", "prometheus-operator"],
        "ecommerce_net_controllers_dir": str(tampered)})
    assert result.returncode != 0
    assert f"envoy-gateway: {manifest} has sha256 " in result.stdout, result.stdout[-3000:]
    assert testbed.writes(fresh_cluster, since=mark) == []

    # Checksums that match a manifest without a CRD the objects need: refused before connecting.
    docs = [d for d in yaml.safe_load_all((controller_bundle / "envoy-gateway-install.yaml").read_text())
            if d and d["metadata"]["name"] != "backendtrafficpolicies.gateway.envoyproxy.io"]
    manifest.write_text(yaml.safe_dump_all(docs))
    write_sums(tampered)
    lacking = ecommerce_on(testbed, fresh_cluster, tmp_path, extra={
        "ecommerce_net_controllers": ["envoy-gateway"], "ecommerce_net_controllers_dir": str(tampered)})
    assert lacking.returncode != 0
    assert ("install: envoy-gateway's manifest defines no CRD serving BackendTrafficPolicy "
            "(gateway.envoyproxy.io/v1alpha1)") in lacking.stdout, lacking.stdout[-3000:]
    assert testbed.writes(fresh_cluster, since=mark) == []


def test_the_role_installs_them_from_the_bundle_and_the_controller_accepts_its_objects(
        testbed, dataplane, fresh_cluster, controller_bundle, tmp_path):
    c = testbed.client(fresh_cluster)
    install = {"ecommerce_net_controllers": ["envoy-gateway", "prometheus-operator"],
               "ecommerce_net_controllers_dir": str(controller_bundle)}
    mark = testbed.audit_mark(fresh_cluster)
    checked = ecommerce_on(testbed, fresh_cluster, tmp_path, "--check", extra=install)
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert testbed.writes(fresh_cluster, since=mark) == [], "check mode: nothing written, the kinds to come counted as served"
    assert not served(c, f"{GATEWAYS}/gateways")

    first = ecommerce_on(testbed, fresh_cluster, tmp_path, extra=install)
    assert first.returncode == 0, first.stdout[-4000:]
    for path in (f"{GATEWAYS}/namespaces/ecommerce-prod/gateways/shop",
                 "/apis/monitoring.coreos.com/v1/namespaces/ecommerce-prod/servicemonitors",
                 "/apis/apps/v1/namespaces/envoy-gateway-system/deployments/envoy-gateway",
                 "/apis/apps/v1/namespaces/default/deployments/prometheus-operator"):
        assert served(c, path), path
    # The manifests' own RBAC, by name (the chart's and the bundle's).
    assert served(c, "/apis/rbac.authorization.k8s.io/v1/clusterroles/eg-gateway-helm-envoy-gateway-role")
    assert served(c, "/apis/rbac.authorization.k8s.io/v1/clusterroles/prometheus-operator")

    mark = testbed.audit_mark(fresh_cluster)
    again = ecommerce_on(testbed, fresh_cluster, tmp_path, extra=install)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert testbed.writes(fresh_cluster, since=mark) == [], "a second run writes nothing (the certgen hook does not run again)"

    platform = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "eg"},
                "spec": {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"}}
    c.request("POST", f"{GATEWAYS}/gatewayclasses", body=platform)
    try:
        dataplane.run_envoy_gateway(fresh_cluster, installed=True)
        for env in ("ecommerce-prod", "ecommerce-staging"):
            path = f"{GATEWAYS}/namespaces/{env}/gateways/shop"
            controlled(dataplane, lambda: condition(c, path, "Accepted") == "True", f"Gateway {env}/shop Accepted")
            route = f"{GATEWAYS}/namespaces/{env}/httproutes/shop"
            controlled(dataplane, lambda: route_condition(c, route, "ResolvedRefs") == "True",
                       f"HTTPRoute {env}/shop ResolvedRefs")
        proxies = wait_for(lambda: c.request("GET", "/apis/apps/v1/namespaces/envoy-gateway-system/deployments", query={
            "labelSelector": "gateway.envoyproxy.io/owning-gateway-name=shop"})["items"], "proxy Deployments made")
        assert len(proxies) >= 1
    finally:
        dataplane.stop_controller(f"apart:{fresh_cluster}/envoy-gateway")
