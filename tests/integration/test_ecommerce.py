"""Scenario 1: playbooks/ecommerce.yml, rendered offline and applied to the testbed's us-east."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.helpers import REPO, run_playbook

CLUSTER = "us-east"
CART = {"ecommerce_net_tiers": [
    {"name": "frontend", "port": 80, "service_type": "LoadBalancer", "metrics_port": 9090},
    {"name": "api", "port": 8080, "service_type": "ClusterIP", "metrics_port": 9090},
    {"name": "cart", "port": 8081},
    {"name": "database", "port": 5432, "service_type": "ClusterIP", "headless": True}],
    "ecommerce_net_flows": [
    {"from": "internet", "to": "frontend", "port": 80}, {"from": "frontend", "to": "api", "port": 8080},
    {"from": "api", "to": "cart", "port": 8081}, {"from": "api", "to": "database", "port": 5432}]}


def ecommerce(tmp_path, *args, inventory="local", extra=None):
    plays = yaml.safe_load((REPO / "playbooks" / "ecommerce.yml").read_text())
    extra = {"fabric_build_dir": str(tmp_path / "build"), **(extra or {})}
    return run_playbook(tmp_path, plays, *args, extra_vars=extra, inventory=str(REPO / "inventories" / inventory))


def host_recap(output, host="us-east"):
    line = next(l for l in output.splitlines() if l.startswith(host + " ") and "ok=" in l)
    return {k: int(v) for k, v in (p.split("=") for p in line.split(":", 1)[1].split())}


def test_render_mode_writes_validates_and_proves(tmp_path):
    result = ecommerce(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    out = tmp_path / "build" / "ecommerce"
    policies = list(yaml.safe_load_all((out / "network-policies.yaml").read_text()))
    names = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in policies}
    assert ("ecommerce-prod", "default-deny") in names and ("ecommerce-staging", "internet-to-frontend-in") in names
    manifests = list(yaml.safe_load_all((out / "manifests.yaml").read_text()))
    secret = next(m for m in manifests if m["kind"] == "Secret")
    assert secret["type"] == "kubernetes.io/tls" and secret["stringData"] == {"tls.crt": "<redacted>", "tls.key": "<redacted>"}
    key_text = (tmp_path / "build" / "tls" / "shop.key").read_text()
    assert key_text.split("\n")[1] not in result.stdout, "the key never reaches the log"
    lines = (out / "report" / "connlist.txt").read_text().splitlines()
    assert "ecommerce-prod/frontend[Pod] => ecommerce-prod/api[Pod] : TCP 8080" in lines
    assert not any("ecommerce-prod" in l and "ecommerce-staging" in l for l in lines), "environments never meet"
    assert (out / "report" / "connlist.html").read_text().startswith("<!doctype html>")
    assert "44 expectations hold" in result.stdout
    again = ecommerce(tmp_path)
    assert host_recap(again.stdout)["changed"] == 0


@pytest.mark.parametrize("extra,words", [
    ({"ecommerce_net_tiers": [{"name": "frontend", "port": 70000}]}, ["ecommerce_net_tiers[0].port: 70000"]),
    ({"ecommerce_net_internet": {"cidr": "10.0.0.0/33"}}, ["ecommerce_net_internet.cidr: '10.0.0.0/33'"]),
    ({"ecommerce_net_flows": [{"from": "frontend", "to": "payments", "port": 443}]},
     ["ecommerce_net_flows[0].to: 'payments' is not a tier"]),
])
def test_bad_variables_fail_naming_them(tmp_path, extra, words):
    result = ecommerce(tmp_path, extra=extra)
    assert result.returncode != 0
    for word in words:
        assert word in result.stdout, result.stdout[-2000:]
    assert not (tmp_path / "build" / "ecommerce").exists(), "nothing rendered"


def test_tls_key_that_does_not_match_its_certificate(tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir()
    for name in ("a", "b"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(tls / f"{name}.key"), "-out", str(tls / f"{name}.crt"), "-days", "2",
                        "-subj", "/CN=shop.example.com"], check=True, capture_output=True)
    result = ecommerce(tmp_path, extra={"ecommerce_net_tls": {
        "mode": "provided", "cert_file": str(tls / "a.crt"), "key_file": str(tls / "b.key"), "days": 1, "warn_days": 30}})
    assert result.returncode != 0
    assert "does not match the certificate" in result.stdout
    ok = ecommerce(tmp_path, extra={"ecommerce_net_tls": {
        "mode": "provided", "cert_file": str(tls / "a.crt"), "key_file": str(tls / "a.key"), "days": 1, "warn_days": 30}})
    assert ok.returncode == 0, ok.stdout[-2000:]
    assert "expires in 1 days" in ok.stdout + ok.stderr or "expires in 2 days" in ok.stdout + ok.stderr
    assert "does not cover shop.example.com, staging.shop.example.com (SANs: none)" in ok.stdout + ok.stderr


@pytest.mark.testbed
def test_apply_on_the_testbed(testbed, tmp_path):
    c = testbed.client(CLUSTER)
    result = ecommerce(tmp_path, inventory="testbed")
    assert result.returncode == 0, result.stdout[-4000:]
    ns = c.request("GET", "/api/v1/namespaces/ecommerce-prod")
    assert ns["metadata"]["labels"]["environment"] == "production"
    frontend = c.request("GET", "/api/v1/namespaces/ecommerce-prod/services/frontend")
    assert frontend["spec"]["type"] == "LoadBalancer"
    assert frontend["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    assert c.request("GET", "/api/v1/namespaces/ecommerce-prod/services/database")["spec"]["clusterIP"] == "None"
    ingress = c.request("GET", "/apis/networking.k8s.io/v1/namespaces/ecommerce-prod/ingresses/shop")
    assert ingress["spec"]["tls"] == [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/enable-modsecurity"] == "true"
    assert annotations["nginx.ingress.kubernetes.io/limit-rps"] == "20"
    assert c.request("GET", "/api/v1/namespaces/ecommerce-staging/secrets/shop-tls")["type"] == "kubernetes.io/tls"
    rules = c.request("GET", "/apis/monitoring.coreos.com/v1/namespaces/ecommerce-prod/prometheusrules/network-alerts")
    assert [r["alert"] for r in rules["spec"]["groups"][0]["rules"]] == ["HighLatency", "HighErrorRate"]
    assert c.request("GET", "/apis/monitoring.coreos.com/v1/namespaces/ecommerce-prod/servicemonitors/ecommerce")
    policies = {i["metadata"]["name"] for i in c.request(
        "GET", "/apis/networking.k8s.io/v1/namespaces/ecommerce-prod/networkpolicies")["items"]}
    assert {"default-deny", "allow-dns", "api-to-database-in", "api-to-database-out"} <= policies

    mark = testbed.audit_mark(CLUSTER)
    again = ecommerce(tmp_path, inventory="testbed")
    assert again.returncode == 0 and host_recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert testbed.writes(CLUSTER, since=mark) == []
    checked = ecommerce(tmp_path, "--check", inventory="testbed", extra=CART)
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert testbed.writes(CLUSTER, since=mark) == [], "check mode writes nothing"

    with_cart = ecommerce(tmp_path, inventory="testbed", extra=CART)
    assert with_cart.returncode == 0, with_cart.stdout[-3000:]
    assert c.request("GET", "/api/v1/namespaces/ecommerce-prod/services/cart")
    removed = ecommerce(tmp_path, inventory="testbed")
    assert removed.returncode == 0
    assert c.request("GET", "/api/v1/namespaces/ecommerce-prod/services/cart", allow=(404,)) is None
    left = {i["metadata"]["name"] for i in c.request(
        "GET", "/apis/networking.k8s.io/v1/namespaces/ecommerce-prod/networkpolicies")["items"]}
    assert not any("cart" in name for name in left), "removing a tier prunes its policies and service"

    mark = testbed.audit_mark(CLUSTER)
    bad = ecommerce(tmp_path, inventory="testbed", extra={"ecommerce_net_tiers": [{"name": "frontend", "port": 70000}]})
    assert bad.returncode != 0 and testbed.writes(CLUSTER, since=mark) == []


def test_services_without_readiness_probes_are_reported(tmp_path):
    workloads = [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "ecommerce-prod"},
                  "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                      {"name": name, "image": "shop/" + name, **probe}]}}}}
                 for name, probe in (("api", {}), ("frontend", {"readinessProbe": {"httpGet": {"path": "/health", "port": 80}}}))]
    result = ecommerce(tmp_path, extra={"ecommerce_net_workloads": workloads})
    assert result.returncode == 0, result.stdout[-2000:]
    assert "WARNING: no readinessProbe on api:" in result.stdout
    assert "readinessProbe on api, frontend" not in result.stdout
