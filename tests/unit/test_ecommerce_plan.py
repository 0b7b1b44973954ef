"""ecommerce_net's plan: platform flows, what the LoadBalancer publishes, Gateway API, and the
proof that fails in words when a variable change would cut the platform's traffic."""

from __future__ import annotations

import copy

import pytest
import yaml

from ansible_collections.k8snet.fabric.plugins.filter.ecommerce_net import ecommerce_net_plan
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import model, runner
from tests.helpers import REPO

DEFAULTS = yaml.safe_load((REPO / "roles" / "ecommerce_net" / "defaults" / "main.yml").read_text())
KEYS = ("environments", "tiers", "peers", "flows", "dns_egress", "lb", "ingress_api", "ingress", "monitoring",
        "workloads", "spread_topology_key")


def spec(**changes) -> dict:
    out = {key: copy.deepcopy(DEFAULTS[f"ecommerce_net_{key}"]) for key in KEYS}
    out.update(changes)
    return out


def prove(plan: dict, extra: list[dict] = ()) -> list[str]:
    objects = plan["stand_ins"] + list(extra) + model.build(plan["policy_config"])
    return runner.analyse(objects, [], plan["expect"])["violations"]


def kinds(plan, kind):
    return [o for o in plan["objects"] if o["kind"] == kind]


def test_the_defaults_plan_and_prove_the_platform_flows():
    plan = ecommerce_net_plan(spec())
    assert plan["problems"] == []
    assert prove(plan) == []
    whys = {e["why"] for e in plan["expect"]}
    assert "the gateway (ecommerce_net_peers.gateway) must reach frontend:80 to serve shop.example.com" in whys
    assert "Prometheus (ecommerce_net_peers.monitoring) scrapes api's metrics on 9090" in whys
    assert "only what the LoadBalancer publishes: not frontend's metrics" in whys
    assert "nothing declared from gateway to api" in whys and "nothing declared from monitoring to userdb" in whys
    assert plan["proof_namespaces"] == ["ecommerce-prod", "ecommerce-staging", "envoy-gateway-system", "kube-system",
                                        "monitoring"]


def test_the_load_balancer_publishes_only_the_public_port():
    plan = ecommerce_net_plan(spec())
    services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in kinds(plan, "Service")}
    frontend = services[("ecommerce-prod", "frontend")]
    assert frontend["spec"]["type"] == "LoadBalancer" and frontend["spec"]["externalTrafficPolicy"] == "Local"
    assert [p["port"] for p in frontend["spec"]["ports"]] == [80]
    metrics = services[("ecommerce-prod", "frontend-metrics")]
    assert metrics["spec"]["type"] == "ClusterIP" and [p["port"] for p in metrics["spec"]["ports"]] == [9090]
    assert ("ecommerce-prod", "userdb") in services and ("ecommerce-prod", "database-metrics") not in services
    monitor = kinds(plan, "ServiceMonitor")[0]
    assert monitor["spec"]["selector"] == {"matchLabels": metrics["metadata"]["labels"] and
                                           {"app.kubernetes.io/component": "metrics"}}
    tls = ecommerce_net_plan(spec(lb={**DEFAULTS["ecommerce_net_lb"], "tls_certificate_arn": "arn:aws:acm:eu-west-1:1:certificate/x"}))
    frontend = next(s for s in kinds(tls, "Service") if s["metadata"]["name"] == "frontend")
    assert [(p["port"], p["targetPort"]) for p in frontend["spec"]["ports"]] == [(80, 80), (443, 80)]
    assert frontend["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-ssl-ports"] == "443"


def test_gateway_api_entry_with_tls_redirect_and_rate_limit():
    plan = ecommerce_net_plan(spec())
    gateway = next(g for g in kinds(plan, "Gateway") if g["metadata"]["namespace"] == "ecommerce-staging")
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1" and gateway["spec"]["gatewayClassName"] == "eg"
    https = gateway["spec"]["listeners"][1]
    assert https["hostname"] == "staging.shop.example.com"
    assert https["tls"] == {"mode": "Terminate", "certificateRefs": [{"group": "", "kind": "Secret", "name": "shop-tls"}]}
    routes = {r["metadata"]["name"]: r for r in kinds(plan, "HTTPRoute") if r["metadata"]["namespace"] == "ecommerce-prod"}
    assert routes["shop"]["spec"]["rules"][0]["backendRefs"] == [{"name": "frontend", "port": 80}]
    assert routes["shop-https-redirect"]["spec"]["rules"][0]["filters"][0]["requestRedirect"] == {
        "scheme": "https", "statusCode": 301}
    limit = kinds(plan, "BackendTrafficPolicy")[0]
    assert limit["spec"]["rateLimit"]["local"]["rules"] == [{"limit": {"requests": 20, "unit": "Second"}}]
    assert not kinds(plan, "Ingress")
    nginx = {"namespace": "ingress-nginx", "pods": {"app.kubernetes.io/name": "ingress-nginx"}}
    ingress = ecommerce_net_plan(spec(ingress_api="ingress", peers={**DEFAULTS["ecommerce_net_peers"], "gateway": nginx}))
    assert kinds(ingress, "Ingress") and not kinds(ingress, "Gateway")
    # The proof is about the controller that serves the Ingress: its pods reach the backend.
    assert prove(ingress) == [] and any(e["src"] == nginx and e["allowed"] for e in ingress["expect"])


def test_the_peer_admitted_to_the_backend_is_the_one_serving_the_chosen_api():
    """ingress_api: ingress with Envoy Gateway's proxies as the peer would lock the Ingress
    controller out while the proof (about the peer) passed: refused, naming both variables."""
    found = ecommerce_net_plan(spec(ingress_api="ingress"))["problems"]
    assert any(p.startswith("ecommerce_net_ingress_api: 'ingress' is served by an Ingress controller")
               and "ecommerce_net_peers.gateway still selects Envoy Gateway's proxies" in p for p in found), found
    nginx = {"namespace": "ingress-nginx", "pods": {"app.kubernetes.io/name": "ingress-nginx"}}
    found = ecommerce_net_plan(spec(peers={**DEFAULTS["ecommerce_net_peers"], "gateway": nginx}))["problems"]
    assert any("ecommerce_net_peers.gateway does not select its proxies" in p for p in found), found
    other = ecommerce_net_plan(spec(peers={**DEFAULTS["ecommerce_net_peers"], "gateway": nginx},
                                    ingress={**DEFAULTS["ecommerce_net_ingress"], "implementation": "none",
                                             "rate_limit_rps": 0}))
    assert other["problems"] == [], "another Gateway implementation names its own pods"


@pytest.mark.parametrize("removed,words", [
    ({"from": "monitoring", "to": "api", "port": 9090},
     "(Prometheus (ecommerce_net_peers.monitoring) scrapes api's metrics on 9090): monitoring/monitoring[Pod] => "
     "ecommerce-prod/api[Pod] TCP 9090 should be allowed but is denied"),
    ({"from": "gateway", "to": "frontend", "port": 80},
     "(the gateway (ecommerce_net_peers.gateway) must reach frontend:80 to serve shop.example.com)"),
    ({"from": "internet", "to": "frontend", "port": 80},
     "(the LoadBalancer Service publishes frontend:80, from client addresses)"),
])
def test_cutting_a_platform_flow_fails_the_proof_in_words(removed, words):
    flows = [f for f in DEFAULTS["ecommerce_net_flows"] if f != removed]
    plan = ecommerce_net_plan(spec(flows=flows))
    assert plan["problems"] == []
    violations = prove(plan)
    assert any(words in v for v in violations), violations


def test_an_extra_flow_is_caught_as_well():
    plan = ecommerce_net_plan(spec(flows=DEFAULTS["ecommerce_net_flows"] + [{"from": "gateway", "to": "api", "port": 8080}]))
    # declared, so "nothing else" no longer lists it; the metrics port stays closed to the gateway
    assert prove(plan) == []
    wide = model.build(plan["policy_config"])
    for policy in wide:
        if policy["metadata"]["name"] == "monitoring-to-frontend-in":
            policy["spec"]["ingress"][0].pop("ports")
    violations = runner.analyse(plan["stand_ins"] + wide, [], plan["expect"])["violations"]
    assert any("(monitoring -> frontend is declared on 9090 only)" in v for v in violations), violations


def test_cluster_traffic_policy_admits_the_nodes():
    lb = {**DEFAULTS["ecommerce_net_lb"], "external_traffic_policy": "Cluster", "node_cidrs": ["192.168.10.0/24"]}
    plan = ecommerce_net_plan(spec(lb=lb))
    assert plan["problems"] == [] and prove(plan) == []
    flows = plan["policy_config"][0]["flows"]
    assert next(f for f in flows if f["name"] == "internet-to-frontend")["from"] == {"cidr": "192.168.10.0/24"}
    assert any(e["src"] == "192.168.10.1" and e["allowed"] for e in plan["expect"])
    assert ecommerce_net_plan(spec(lb={**lb, "node_cidrs": []}))["problems"] == [
        "ecommerce_net_lb.node_cidrs: with external_traffic_policy Cluster the LoadBalancer delivers client traffic "
        "from node addresses; list the nodes' ranges"]


def test_live_pods_replace_stand_ins():
    plan = ecommerce_net_plan(spec())
    live = [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop-api", "namespace": "ecommerce-prod"},
             "spec": {"template": {"metadata": {"labels": {"app": "api", "version": "2"}}, "spec": {"containers": [{}]}}}}]
    objects, used = runner.with_stand_ins(live, plan["stand_ins"])
    assert "ecommerce-prod/api" not in used and "ecommerce-prod/frontend" in used
    result = runner.analyse(objects + model.build(plan["policy_config"]), [], plan["expect"])
    assert result["violations"] == []
    assert any(r["dst"] == "ecommerce-prod/shop-api[Deployment]" and r["conn"] == "TCP 8080" for r in result["connections"])


@pytest.mark.parametrize("changes,message", [
    ({"tiers": []}, "ecommerce_net_tiers: at least one tier is needed"),
    ({"tiers": [{"name": "web", "port": 80, "metrics_port": 80}]}, "ecommerce_net_tiers[0].metrics_port: 80 is the tier's port"),
    ({"peers": {"gateway": {"pods": {"app": "gw"}}}}, "ecommerce_net_peers.gateway: platform peers live in their own namespace"),
    ({"peers": {**DEFAULTS["ecommerce_net_peers"], "internet": {"cidr": "10.0.0.0/33"}}}, "ecommerce_net_peers.internet.cidr: '10.0.0.0/33'"),
    ({"flows": [{"from": "prometheus", "to": "api", "port": 9090}]},
     "ecommerce_net_flows[0].from: 'prometheus' is neither a tier"),
    ({"ingress": {**DEFAULTS["ecommerce_net_ingress"], "host": "shop_1.example.com"}},
     "ecommerce_net_ingress.host: 'shop_1.example.com' is not a DNS name"),
    ({"ingress": {**DEFAULTS["ecommerce_net_ingress"], "waf": True}}, "ecommerce_net_ingress.waf: Gateway API and Envoy Gateway have no WAF object"),
    ({"ingress": {**DEFAULTS["ecommerce_net_ingress"], "implementation": "none"}},
     "ecommerce_net_ingress.rate_limit_rps: 20 needs an implementation's policy object"),
    ({"ingress": {**DEFAULTS["ecommerce_net_ingress"], "backend": "shop"}}, "ecommerce_net_ingress.backend: 'shop' is not a tier"),
    ({"peers": {"internet": DEFAULTS["ecommerce_net_peers"]["internet"]}},
     "declare where its pods run as ecommerce_net_peers.gateway"),
])
def test_bad_variables_are_named(changes, message):
    problems = ecommerce_net_plan(spec(**changes))["problems"]
    assert any(message in p for p in problems), problems


def test_supplied_workloads_get_budgets_and_warnings():
    def deployment(name, replicas, **pod):
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "ecommerce-prod"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", **pod}], **(
                             {"topologySpreadConstraints": [{"topologyKey": "topology.kubernetes.io/zone"}]} if pod else {})}}}}
    probe = {"readinessProbe": {"httpGet": {"path": "/", "port": 80}}}
    plan = ecommerce_net_plan(spec(workloads=[deployment("frontend", 3, **probe), deployment("api", 2), deployment("userdb", 1)]))
    budgets = kinds(plan, "PodDisruptionBudget")
    assert [(b["metadata"]["name"], b["spec"]) for b in budgets] == [
        ("frontend", {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "frontend"}}}),
        ("api", {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "api"}}})]
    assert plan["warnings"] == [
        "Deployment ecommerce-prod/api: a container has no readinessProbe; its Service will send traffic to pods that are not ready",
        "Deployment ecommerce-prod/api: 2 replicas with no topologySpreadConstraints over topology.kubernetes.io/zone; "
        "they may all land in one zone",
        "Deployment ecommerce-prod/userdb: a container has no readinessProbe; its Service will send traffic to pods that "
        "are not ready"]


def test_cert_manager_issues_shop_tls_per_environment_or_names_the_bad_setting():
    tls = {**DEFAULTS["ecommerce_net_tls"], "mode": "cert-manager", "issuer": "Issuer/shop-ca", "days": 90}
    plan = ecommerce_net_plan(spec(tls=tls))
    assert plan["problems"] == []
    certs = [o for o in plan["objects"] if o["kind"] == "Certificate"]
    assert [c["metadata"]["namespace"] for c in certs] == ["ecommerce-prod", "ecommerce-staging"]
    assert certs[0]["spec"]["dnsNames"] == ["shop.example.com", "staging.shop.example.com"]
    # The generated pair (tls_certificate) covers the same names, from the same definition.
    assert plan["tls_hosts"] == certs[0]["spec"]["dnsNames"]
    assert certs[0]["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "Issuer", "name": "shop-ca"}
    assert not any(o["kind"] == "Certificate" for o in ecommerce_net_plan(spec(tls=DEFAULTS["ecommerce_net_tls"]))["objects"])
    bad = ecommerce_net_plan(spec(tls={**tls, "issuer": "", "renew_days": 90}))["problems"]
    assert "ecommerce_net_tls.issuer: '' is not Issuer/<name> or ClusterIssuer/<name> of cert-manager " \
           "(e.g. ClusterIssuer/letsencrypt)" in bad
    assert "ecommerce_net_tls.renew_days: 90 must be above 0 and fewer than days (90): " \
           "every run would renew what it just made" in bad
