"""Scenario 1: playbooks/ecommerce.yml, rendered offline and applied to the testbed's us-east."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess

import pytest
import yaml

from ansible_collections.k8snet.fabric.plugins.module_utils import tls_certificate
from tests.helpers import REPO, condition, pods, recap, route_condition, run_playbook, running, wait_for
from tests.packets import controlled, probes_against_report

CLUSTER = "us-east"
TEST_WORKLOADS = "ecommerce-test-workloads"
DATAPLANE_SERVICES = True  # kube-proxy and the cluster DNS on the data plane (conftest.py)
PROOF_NAMESPACES = ["ecommerce-prod", "ecommerce-staging", "envoy-gateway-system", "monitoring", "kube-system"]
DEFAULTS = yaml.safe_load((REPO / "roles" / "ecommerce_net" / "defaults" / "main.yml").read_text())
CART = {"ecommerce_net_tiers": DEFAULTS["ecommerce_net_tiers"] + [{"name": "cart", "port": 8081}],
        "ecommerce_net_flows": DEFAULTS["ecommerce_net_flows"] + [{"from": "api", "to": "cart", "port": 8081}]}


def deployment(namespace: str, name: str, labels: dict, ports=()) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels}, "spec": {"containers": [
                    {"name": "main", "image": f"example.com/{name}:1",
                     "ports": [{"containerPort": p} for p in ports]}]}}}}


def tls_vars(tmp_path, **changes) -> dict:
    """A whole ecommerce_net_tls (partial dicts are refused by the argument specs)."""
    return {"ecommerce_net_tls": {"mode": "generated", "cert_file": str(tmp_path / "build" / "tls" / "shop.crt"),
                                  "key_file": str(tmp_path / "build" / "tls" / "shop.key"), "ca_cert_file": "",
                                  "ca_key_file": "", "days": 365, "warn_days": 30, "min_days": 7,
                                  "renew_days": 30, "issuer": "", **changes}}


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
    assert ("ecommerce-prod", "gateway-to-frontend-in") in names and ("ecommerce-prod", "monitoring-to-api-in") in names
    assert {ns for ns, _unused in names} == {"ecommerce-prod", "ecommerce-staging"}, "policies only in the app's namespaces"
    manifests = list(yaml.safe_load_all((out / "manifests.yaml").read_text()))
    secret = next(m for m in manifests if m["kind"] == "Secret")
    assert secret["type"] == "kubernetes.io/tls" and secret["stringData"] == {"tls.crt": "<redacted>", "tls.key": "<redacted>"}
    frontend = next(m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == "frontend")
    assert [p["port"] for p in frontend["spec"]["ports"]] == [80], "the LB publishes the public port only"
    assert {m["kind"] for m in manifests} >= {"Gateway", "HTTPRoute", "BackendTrafficPolicy"}
    assert not any(m["kind"] == "Ingress" for m in manifests)
    key_text = (tmp_path / "build" / "tls" / "shop.key").read_text()
    assert key_text.split("\n")[1] not in result.stdout, "the key never reaches the log"
    lines = (out / "report" / "connlist.txt").read_text().splitlines()
    assert "ecommerce-prod/frontend[Pod] => ecommerce-prod/api[Pod] : TCP 8080" in lines
    assert "envoy-gateway-system/gateway[Pod] => ecommerce-prod/frontend[Pod] : TCP 80" in lines
    assert "monitoring/monitoring[Pod] => ecommerce-prod/api[Pod] : TCP 9090" in lines
    assert "0.0.0.0-9.255.255.255 (internet) => ecommerce-prod/frontend[Pod] : TCP 80" in lines
    assert not any("ecommerce-prod" in l and "ecommerce-staging" in l for l in lines), "environments never meet"
    page = (out / "report" / "connlist.html").read_text()
    assert page.startswith("<!doctype html>")
    # The page says what it is about and which expectations it proved (issue 25, item 17).
    assert "<title>Network policy connectivity - ecommerce - us-east</title>" in page
    proved = re.search(r"<h2>Expectations \((\d+) of (\d+) held\)</h2>", page)
    assert proved and proved.group(1) == proved.group(2) and int(proved.group(1)) > 80, page[:2000]
    assert ("held: 0.0.0.1 reaches pods app=frontend in namespace ecommerce-prod TCP 80 (declared flow internet "
            "-&gt; frontend on 80)") in page
    held = re.search(r"(\d+) expectations hold over \d+ allowed connections \(plan stand-ins for ",
                     " ".join(result.stdout.split()))
    assert held and int(held.group(1)) > 80, result.stdout[-2000:]
    again = ecommerce(tmp_path)
    assert host_recap(again.stdout)["changed"] == 0


@pytest.mark.parametrize("extra,words", [
    ({"ecommerce_net_tiers": [{"name": "frontend", "port": 70000}]}, ["ecommerce_net_tiers[0].port: 70000"]),
    ({"ecommerce_net_peers": {**DEFAULTS["ecommerce_net_peers"], "internet": {"cidr": "10.0.0.0/33"}}},
     ["ecommerce_net_peers.internet.cidr: '10.0.0.0/33'"]),
    ({"ecommerce_net_flows": [{"from": "frontend", "to": "payments", "port": 443}]},
     ["ecommerce_net_flows[0].to: 'payments' is not a tier"]),
    # A change that would cut the platform's own traffic: refused, in words, before any write.
    ({"ecommerce_net_flows": [f for f in DEFAULTS["ecommerce_net_flows"] if f["from"] != "monitoring"]},
     ["Prometheus (ecommerce_net_peers.monitoring) scrapes frontend's metrics on 9090",
      "monitoring/monitoring[Pod] => ecommerce-prod/api[Pod] TCP 9090 should be allowed but is denied"]),
    ({"ecommerce_net_ingress": {"host": "shop.example.org"}}, ["missing required arguments: backend"]),
    ({"ecommerce_net_lb": {**DEFAULTS["ecommerce_net_lb"], "external_trafic_policy": "Local"}},
     ["external_trafic_policy"]),
])
def test_bad_variables_fail_naming_them(tmp_path, extra, words):
    result = ecommerce(tmp_path, extra=extra)
    assert result.returncode != 0
    for word in words:
        assert word in result.stdout, result.stdout[-2000:]
    assert not (tmp_path / "build").exists(), "nothing rendered, no key generated"


def test_tls_key_that_does_not_match_its_certificate(tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir()
    for name in ("a", "b"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(tls / f"{name}.key"), "-out", str(tls / f"{name}.crt"), "-days", "2",
                        "-subj", "/CN=shop.example.com"], check=True, capture_output=True)
    provided = {"mode": "provided", "cert_file": str(tls / "a.crt"), "min_days": 0}
    result = ecommerce(tmp_path, extra=tls_vars(tmp_path, **provided, key_file=str(tls / "b.key")))
    assert result.returncode != 0
    assert "does not match the certificate" in result.stdout
    ok = ecommerce(tmp_path, extra=tls_vars(tmp_path, **provided, key_file=str(tls / "a.key")))
    assert ok.returncode == 0, ok.stdout[-2000:]
    assert "expires in 1 days" in ok.stdout + ok.stderr or "expires in 2 days" in ok.stdout + ok.stderr
    assert "does not cover shop.example.com, staging.shop.example.com (SANs: none)" in ok.stdout + ok.stderr
    # Below min_days the warning becomes an error, before anything is rendered.
    later = tmp_path / "soon"
    later.mkdir()
    soon = ecommerce(later, extra=tls_vars(later, **{**provided, "min_days": 7}, key_file=str(tls / "a.key")))
    assert soon.returncode != 0
    assert re.search(r"expires in [12] days \(.*\), fewer than min_days 7: renew it before deploying", soon.stdout), soon.stdout[-2000:]
    assert not (tmp_path / "soon" / "build").exists()


@pytest.mark.testbed
def test_apply_on_the_testbed_and_prove_over_live_pods(testbed, dataplane, tmp_path):
    c = testbed.client(CLUSTER)
    remove_test_workloads(c)
    try:
        applied_and_proved(testbed, c, tmp_path, dataplane)
    finally:
        # A client of its own: one that met an unreachable apiserver stays marked gone, and the
        # workloads it would leave behind fail later modules' proofs.
        remove_test_workloads(testbed.client(CLUSTER))


def test_envoy_gateway_accepts_what_the_role_writes(testbed, dataplane, tmp_path):
    """Envoy Gateway's real control plane reads the Gateway, HTTPRoutes and
    BackendTrafficPolicy the role writes: it accepts them, resolves the routes' Services, makes
    the proxy Deployment and Service (kwok runs the pods) and reports the Gateway Programmed.
    A route to a Service that does not exist is reported by the controller. The platform's
    GatewayClass asks for a ClusterIP proxy Service (an EnvoyProxy), since no load balancer
    serves us-east. No Envoy runs: HTTP through the gateway is not tested."""
    c = testbed.client(CLUSTER)
    result = ecommerce(tmp_path, inventory="testbed")
    assert result.returncode == 0, result.stdout[-4000:]
    platform = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "envoy-gateway-system"}},
        {"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyProxy",
         "metadata": {"name": "cluster-ip", "namespace": "envoy-gateway-system"},
         "spec": {"provider": {"type": "Kubernetes", "kubernetes": {"envoyService": {"type": "ClusterIP"}}}}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "eg"},
         "spec": {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller", "parametersRef": {
             "group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": "cluster-ip",
             "namespace": "envoy-gateway-system"}}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": {"name": "to-nowhere", "namespace": "ecommerce-prod"},
         "spec": {"parentRefs": [{"name": "shop"}],
                  "rules": [{"backendRefs": [{"name": "no-such-service", "port": 80}]}]}}]
    from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import Engine
    try:
        Engine(c).converge(TEST_WORKLOADS, "default", platform, "overridden")
        dataplane.run_envoy_gateway(CLUSTER)
        base = "/apis/gateway.networking.k8s.io/v1"
        controlled(dataplane, lambda: condition(c, f"{base}/gatewayclasses/eg", "Accepted") == "True",
                   "GatewayClass eg Accepted")
        for env in ("ecommerce-prod", "ecommerce-staging"):  # each environment's own Gateway
            path = f"{base}/namespaces/{env}/gateways/shop"
            controlled(dataplane, lambda: condition(c, path, "Programmed") == "True", f"Gateway {env}/shop Programmed")
            gateway = c.request("GET", path)
            assert condition(c, path, "Accepted") == "True", gateway["status"]
            assert [listener["name"] for listener in gateway["status"]["listeners"]] == [
                listener["name"] for listener in gateway["spec"]["listeners"]]
            assert all(cond["status"] == "True" for listener in gateway["status"]["listeners"]
                       for cond in listener["conditions"] if cond["type"] in ("Accepted", "ResolvedRefs", "Programmed")), \
                gateway["status"]["listeners"]
        routes = [(ns, item["metadata"]["name"]) for ns in ("ecommerce-prod", "ecommerce-staging")
                  for item in c.request("GET", f"{base}/namespaces/{ns}/httproutes")["items"]]
        assert ("ecommerce-prod", "shop") in routes and ("ecommerce-staging", "shop") in routes, routes
        for ns, name in routes:
            path = f"{base}/namespaces/{ns}/httproutes/{name}"
            want = ("True", "False") if name == "to-nowhere" else ("True", "True")
            controlled(dataplane, lambda: (route_condition(c, path, "Accepted"), route_condition(c, path, "ResolvedRefs"))
                       == want, f"HTTPRoute {ns}/{name} Accepted/ResolvedRefs {want}")
        missing = next(cond for cond in c.request("GET", f"{base}/namespaces/ecommerce-prod/httproutes/to-nowhere")
                       ["status"]["parents"][0]["conditions"] if cond["type"] == "ResolvedRefs")
        assert missing["reason"] == "BackendNotFound" and "no-such-service" in missing["message"], missing
        controlled(dataplane, lambda: condition(
            c, "/apis/gateway.envoyproxy.io/v1alpha1/namespaces/ecommerce-prod/backendtrafficpolicies/shop-rate-limit",
            "Accepted", ancestors=True) == "True", "BackendTrafficPolicy shop-rate-limit Accepted")
        proxies = c.request("GET", "/apis/apps/v1/namespaces/envoy-gateway-system/deployments", query={
            "labelSelector": "gateway.envoyproxy.io/owning-gateway-name=shop"})["items"]
        # One proxy per environment's Gateway, made by the controller and run by kwok.
        assert sorted(d["metadata"]["labels"]["gateway.envoyproxy.io/owning-gateway-namespace"] for d in proxies
                      if d["status"].get("availableReplicas", 0) >= 1) == ["ecommerce-prod", "ecommerce-staging"], proxies
    finally:
        dataplane.stop_controller(f"apart:{CLUSTER}/envoy-gateway")
        Engine(testbed.client(CLUSTER)).converge(TEST_WORKLOADS, "default", [], "overridden")
        testbed.client(CLUSTER).request("DELETE", "/apis/apps/v1/namespaces/envoy-gateway-system/deployments", query={
            "labelSelector": "app.kubernetes.io/managed-by=envoy-gateway"})
        remove_test_workloads(testbed.client(CLUSTER))


def remove_test_workloads(c):
    """The Deployments this test runs as the application and the platform, gone with their pods."""
    from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import Engine
    Engine(c).converge(TEST_WORKLOADS, "default", [], "overridden")
    for namespace in ("ecommerce-prod", "ecommerce-staging", "envoy-gateway-system", "monitoring"):
        wait_for(lambda: not pods(c, namespace), f"no pods left in {namespace}", timeout=120)


def applied_and_proved(testbed, c, tmp_path, dataplane):
    result = ecommerce(tmp_path, inventory="testbed")
    assert result.returncode == 0, result.stdout[-4000:]
    ns = c.request("GET", "/api/v1/namespaces/ecommerce-prod")
    assert ns["metadata"]["labels"]["environment"] == "production"
    frontend = c.request("GET", "/api/v1/namespaces/ecommerce-prod/services/frontend")
    assert frontend["spec"]["type"] == "LoadBalancer" and frontend["spec"]["externalTrafficPolicy"] == "Local"
    assert [p["port"] for p in frontend["spec"]["ports"]] == [80], "metrics never on the LoadBalancer"
    assert frontend["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    assert c.request("GET", "/api/v1/namespaces/ecommerce-prod/services/frontend-metrics")["spec"]["type"] == "ClusterIP"
    assert c.request("GET", "/api/v1/namespaces/ecommerce-prod/services/userdb")["spec"]["clusterIP"] == "None"
    gateway = c.request("GET", "/apis/gateway.networking.k8s.io/v1/namespaces/ecommerce-prod/gateways/shop")
    assert gateway["spec"]["listeners"][1]["tls"]["certificateRefs"] == [{"group": "", "kind": "Secret", "name": "shop-tls"}]
    route = c.request("GET", "/apis/gateway.networking.k8s.io/v1/namespaces/ecommerce-staging/httproutes/shop")
    assert route["spec"]["hostnames"] == ["staging.shop.example.com"]
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "frontend"
    assert c.request("GET", "/apis/gateway.networking.k8s.io/v1/namespaces/ecommerce-prod/httproutes/shop-https-redirect")
    limit = c.request("GET", "/apis/gateway.envoyproxy.io/v1alpha1/namespaces/ecommerce-prod/backendtrafficpolicies/shop-rate-limit")
    assert limit["spec"]["rateLimit"]["local"]["rules"][0]["limit"] == {"requests": 20, "unit": "Second"}
    assert c.request("GET", "/api/v1/namespaces/ecommerce-staging/secrets/shop-tls")["type"] == "kubernetes.io/tls"
    rules = c.request("GET", "/apis/monitoring.coreos.com/v1/namespaces/ecommerce-prod/prometheusrules/network-alerts")
    assert [r["alert"] for r in rules["spec"]["groups"][0]["rules"]] == ["HighLatency", "HighErrorRate"]
    assert c.request("GET", "/apis/monitoring.coreos.com/v1/namespaces/ecommerce-prod/servicemonitors/ecommerce")
    policies = {i["metadata"]["name"] for i in c.request(
        "GET", "/apis/networking.k8s.io/v1/namespaces/ecommerce-prod/networkpolicies")["items"]}
    assert {"default-deny", "allow-dns", "api-to-database-in", "api-to-database-out", "gateway-to-frontend-in",
            "monitoring-to-frontend-in", "api-to-userdb-in"} <= policies
    assert "plan stand-ins for" in " ".join(result.stdout.split()), "no application runs yet: the plan's pods stand in"

    # The application and the platform run (the controllers and kwok make their pods); the proof
    # now reads them, under names the role never chose.
    from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import Engine
    running_objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "envoy-gateway-system"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}},
        deployment("envoy-gateway-system", "envoy-ecommerce-prod-shop-1a2b3c",
                   {"app.kubernetes.io/component": "proxy", "app.kubernetes.io/managed-by": "envoy-gateway",
                    "app.kubernetes.io/name": "envoy"}, [10080, 10443]),
        deployment("monitoring", "prometheus-k8s", {"app.kubernetes.io/name": "prometheus"}, [9090]),
    ] + [deployment(env, f"shop-{tier['name']}", {"app": tier["name"]}, [tier["port"]] + (
        [tier["metrics_port"]] if tier.get("metrics_port") else []))
        for env in ("ecommerce-prod", "ecommerce-staging") for tier in DEFAULTS["ecommerce_net_tiers"]]
    Engine(c).converge(TEST_WORKLOADS, "default", running_objects, "overridden")
    for namespace, selector, count in (("ecommerce-prod", "app", 4), ("ecommerce-staging", "app", 4),
                                       ("envoy-gateway-system", "app.kubernetes.io/component=proxy", 1),
                                       ("monitoring", "app.kubernetes.io/name=prometheus", 1),
                                       ("kube-system", "k8s-app=kube-dns", 1)):
        wait_for(lambda: running(c, namespace, selector, count), f"{count} pod(s) Running in {namespace}")

    mark = testbed.audit_mark(CLUSTER)
    live = ecommerce(tmp_path, inventory="testbed")
    assert live.returncode == 0 and host_recap(live.stdout)["changed"] == 1, "only the report changes"
    assert "live pods only" in " ".join(live.stdout.split()), live.stdout[-3000:]
    again = ecommerce(tmp_path, inventory="testbed")
    assert again.returncode == 0 and host_recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert testbed.writes(CLUSTER, since=mark) == []
    lines = (tmp_path / "build" / "ecommerce" / "report" / "connlist.txt").read_text().splitlines()
    assert ("envoy-gateway-system/envoy-ecommerce-prod-shop-1a2b3c[Deployment] => ecommerce-prod/shop-frontend[Deployment]"
            " : TCP 80") in lines
    assert "monitoring/prometheus-k8s[Deployment] => ecommerce-prod/shop-api[Deployment] : TCP 9090" in lines
    assert "ecommerce-prod/shop-api[Deployment] => ecommerce-prod/shop-userdb[Deployment] : TCP 5432" in lines
    into_app = [l for l in lines if "=> ecommerce-" in l]
    assert len(into_app) == 2 * (2 + 2 + 3 + 1), into_app  # per env: internet x2 ranges, gateway, 3 tier flows, monitoring x2 - and nothing else
    assert not [l for l in into_app if "coredns" in l.split(" => ")[0]]
    on_packets(testbed, dataplane, tmp_path / "build" / "ecommerce" / "report" / "connlist.txt")

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


def on_packets(testbed, dataplane, report):
    """The proof on real packets: kube-router enforces what the role wrote, and every probe
    between the proof's pods (and from the internet) equals the report the role wrote."""
    dataplane.add_outside("internet", "203.0.113.10")
    result = probes_against_report(dataplane, testbed, CLUSTER, PROOF_NAMESPACES, report, ["internet"])
    assert result["pods"] == 11 and not result["wrong"], result["wrong"]
    matrix = result["matrix"]
    prod = "us-east/ecommerce-prod/"
    frontend = next(d for (_s, d, _p) in matrix if d.startswith(prod + "shop-frontend"))
    api = next(d for (_s, d, _p) in matrix if d.startswith(prod + "shop-api"))
    userdb = next(d for (_s, d, _p) in matrix if d.startswith(prod + "shop-userdb"))
    staging_api = next(s for (s, _d, _p) in matrix if s.startswith("us-east/ecommerce-staging/shop-api"))
    gateway = next(s for (s, _d, _p) in matrix if s.startswith("us-east/envoy-gateway-system/"))
    prometheus = next(s for (s, _d, _p) in matrix if s.startswith("us-east/monitoring/"))
    # The internet reaches the published port only; the gateway the same; Prometheus the metrics.
    assert matrix[("outside:internet", frontend, "80/TCP")] == "open"
    assert matrix[("outside:internet", frontend, "9090/TCP")] == "refused"
    assert matrix[(gateway, frontend, "80/TCP")] == "open" and matrix[(gateway, api, "8080/TCP")] == "refused"
    assert matrix[(prometheus, frontend, "9090/TCP")] == "open" and matrix[(prometheus, frontend, "80/TCP")] == "refused"
    # Tiers on their ports only, and nothing across environments.
    assert matrix[(frontend, api, "8080/TCP")] == "open" and matrix[(frontend, userdb, "5432/TCP")] == "refused"
    assert matrix[(api, userdb, "5432/TCP")] == "open"
    assert matrix[(staging_api, userdb, "5432/TCP")] == "refused"
    # DNS: every tier may ask the cluster's DNS (a real CoreDNS answers on 53), not its metrics.
    coredns = next(d for (_s, d, _p) in matrix if d.startswith("us-east/kube-system/coredns"))
    assert matrix[(api, coredns, "53/TCP")] == "open" and matrix[(userdb, coredns, "53/UDP")] == "open"
    assert matrix[(api, coredns, "9153/TCP")] == "refused"
    by_name(testbed, dataplane, frontend, api, userdb, staging_api)
    assert not dataplane.enforcer_failures()


def by_name(testbed, dataplane, frontend, api, userdb, staging_api):
    """Tiers reach each other by Service name, through the cluster DNS the role's allow-dns
    policies admit and kube-proxy's ClusterIPs, on their ports only; the internet reaches the
    frontend's LoadBalancer Service on its node port (where a cloud load balancer or MetalLB
    delivers) with its own address kept, which the role's internet ipBlock admits."""
    names = {tier: dataplane.resolve(frontend, tier) for tier in ("api", "userdb", "frontend-metrics")}
    assert all(answer["rcode"] == "NOERROR" for answer in names.values()), names
    api_ip, metrics_ip = names["api"]["addresses"][0], names["frontend-metrics"]["addresses"][0]
    assert names["userdb"]["addresses"] == [dataplane.pods[userdb].address], "headless: the pod itself"
    assert dataplane.resolve(staging_api, "userdb")["addresses"] != names["userdb"]["addresses"], \
        "each environment's names are its own"
    seen = dataplane.probe_addresses([frontend, api], [(api_ip, 8080, "TCP"), (names["userdb"]["addresses"][0], 5432, "TCP"),
                                                       (metrics_ip, 9090, "TCP")])
    assert seen == {(frontend, f"{api_ip}:8080/TCP"): "open",
                    (frontend, f"{dataplane.pods[userdb].address}:5432/TCP"): "refused",
                    (frontend, f"{metrics_ip}:9090/TCP"): "refused",
                    (api, f"{api_ip}:8080/TCP"): "refused",
                    (api, f"{dataplane.pods[userdb].address}:5432/TCP"): "open",
                    (api, f"{metrics_ip}:9090/TCP"): "refused"}, seen
    shop = testbed.client(CLUSTER).request("GET", "/api/v1/namespaces/ecommerce-prod/services/frontend")
    node = dataplane.nodes[testbed.client(CLUSTER).request("GET", "/api/v1/namespaces/ecommerce-prod/pods", query={
        "labelSelector": "app=frontend"})["items"][0]["spec"]["nodeName"]].address
    node_port = shop["spec"]["ports"][0]["nodePort"]
    assert [p["port"] for p in shop["spec"]["ports"]] == [80]  # metrics are not published
    published = dataplane.probe_addresses(["outside:internet"], [(node, node_port, "TCP")], peers=True)
    assert published == {("outside:internet", f"{node}:{node_port}/TCP"): "open from 203.0.113.10"}, published


@pytest.mark.testbed
def test_a_generated_certificate_near_its_end_is_renewed_and_served(testbed, tmp_path):
    """A generated pair 10 days from its end (the role's own) is renewed on the next apply
    instead of refused, the Secrets in every environment serve the new pair, the diff shows no
    key material, and the run after that changes nothing."""
    c = testbed.client(CLUSTER)
    hosts = ["shop.example.com", "staging.shop.example.com"]
    tls_certificate.write_pair(str(tmp_path / "build" / "tls" / "shop.crt"), str(tmp_path / "build" / "tls" / "shop.key"),
                               *tls_certificate.generate(hosts, 10))

    def served() -> set[str]:  # the file lookup drops the PEM's last newline
        return {hashlib.sha256(base64.b64decode(
            c.request("GET", f"/api/v1/namespaces/{namespace}/secrets/shop-tls")["data"]["tls.crt"]).strip()).hexdigest()
            for namespace in ("ecommerce-prod", "ecommerce-staging")}

    short = ecommerce(tmp_path, inventory="testbed", extra=tls_vars(tmp_path, renew_days=0, min_days=0))
    assert short.returncode == 0, short.stdout[-4000:]
    short_pem = (tmp_path / "build" / "tls" / "shop.crt").read_bytes().strip()
    assert served() == {hashlib.sha256(short_pem).hexdigest()}

    renewed = ecommerce(tmp_path, "--diff", inventory="testbed", extra=tls_vars(tmp_path))
    assert renewed.returncode == 0, renewed.stdout[-4000:]
    assert re.search(r"was renewed: expires in \d days, fewer than renew_days 30", renewed.stdout + renewed.stderr)
    new_pem = (tmp_path / "build" / "tls" / "shop.crt").read_bytes().strip()
    assert new_pem != short_pem and served() == {hashlib.sha256(new_pem).hexdigest()}
    key_text = (tmp_path / "build" / "tls" / "shop.key").read_text()
    assert key_text.splitlines()[1] not in renewed.stdout + renewed.stderr, "key material in the output"

    again = ecommerce(tmp_path, inventory="testbed", extra=tls_vars(tmp_path))
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-4000:]


@pytest.mark.testbed
def test_cert_manager_issues_shop_tls_in_every_environment(testbed, tmp_path):
    """Mode cert-manager: a Certificate per environment for the shop's hosts into shop-tls,
    accepted by cert-manager's CRD; the pair a run generated before is pruned (the Secret is
    cert-manager's now); a second run writes nothing. No cert-manager runs: issuing is untested."""
    c = testbed.client(CLUSTER)
    generated = ecommerce(tmp_path, inventory="testbed", extra=tls_vars(tmp_path))
    assert generated.returncode == 0, generated.stdout[-4000:]
    assert c.request("GET", "/api/v1/namespaces/ecommerce-staging/secrets/shop-tls")
    managed = tls_vars(tmp_path, mode="cert-manager", issuer="ClusterIssuer/letsencrypt", days=90)
    result = ecommerce(tmp_path, inventory="testbed", extra=managed)
    assert result.returncode == 0, result.stdout[-4000:]
    for namespace in ("ecommerce-prod", "ecommerce-staging"):
        cert = c.request("GET", f"/apis/cert-manager.io/v1/namespaces/{namespace}/certificates/shop-tls")
        assert cert["spec"]["dnsNames"] == ["shop.example.com", "staging.shop.example.com"]
        assert (cert["spec"]["secretName"], cert["spec"]["renewBefore"]) == ("shop-tls", "720h")
        assert c.request("GET", f"/api/v1/namespaces/{namespace}/secrets/shop-tls", allow=(404,)) is None
    again = ecommerce(tmp_path, inventory="testbed", extra=managed)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-4000:]
    # Back to the default, as the other tests of this module expect.
    assert ecommerce(tmp_path, inventory="testbed", extra=tls_vars(tmp_path)).returncode == 0


def test_supplied_workloads_get_budgets_and_warnings(tmp_path):
    workloads = [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "ecommerce-prod"},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                           "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                               {"name": name, "image": "shop/" + name, **probe}]}}}}
                 for name, probe in (("api", {}), ("frontend", {"readinessProbe": {"httpGet": {"path": "/health", "port": 80}}}))]
    result = ecommerce(tmp_path, extra={"ecommerce_net_workloads": workloads})
    assert result.returncode == 0, result.stdout[-2000:]
    words = " ".join(result.stdout.split())  # the callback wraps long lines
    assert "WARNING: Deployment ecommerce-prod/api: a container has no readinessProbe" in words
    assert "Deployment ecommerce-prod/frontend: a container has no readinessProbe" not in words
    assert "WARNING: Deployment ecommerce-prod/frontend: 2 replicas with no topologySpreadConstraints" in words
    manifests = list(yaml.safe_load_all((tmp_path / "build" / "ecommerce" / "manifests.yaml").read_text()))
    assert sorted(m["metadata"]["name"] for m in manifests if m["kind"] == "PodDisruptionBudget") == ["api", "frontend"]
