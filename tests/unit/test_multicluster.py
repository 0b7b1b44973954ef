"""kubefed's plan and the join's pure parts."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils import cluster_join
from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import kubefed

SPEC = {"host": "us-east",
        "clusters": [{"name": "us-east", "context": "us-east", "pod_cidr": "10.0.0.0/14", "service_cidr": "10.96.0.0/16",
                      "vips": ["203.0.113.10"], "priority": 1},
                     {"name": "eu-west", "context": "eu-west", "pod_cidr": "10.4.0.0/14", "service_cidr": "10.97.0.0/16",
                      "vips": ["203.0.113.20"], "priority": 2}],
        "services": [{"name": "financial-app", "namespace": "prod", "port": 80, "target_port": 8080}],
        "global_dns": {"domain": "global.example.com", "ttl": 180}, "probes": {"port": 443}}


def spec(**changes):
    out = copy.deepcopy(SPEC)
    out.update(changes)
    return out


def test_exports_policies_and_records():
    plan = kubefed.plan(spec())
    assert plan["problems"] == []
    for name in ("us-east", "eu-west"):
        kinds = [(o["apiVersion"], o["kind"]) for o in plan["objects"][name]]
        assert ("multicluster.x-k8s.io/v1alpha1", "ServiceExport") in kinds
    export = next(o for o in plan["objects"]["eu-west"] if o["kind"] == "ServiceExport")
    assert "spec" not in export, "ports come from the Service"
    [record] = [o for o in plan["objects"]["us-east"] if o["kind"] == "DNSEndpoint"]
    assert not any(o["kind"] == "DNSEndpoint" for o in plan["objects"]["eu-west"])
    assert record["spec"]["endpoints"][0] == {"dnsName": "financial-app.global.example.com", "recordType": "A",
                                              "recordTTL": 180, "targets": ["203.0.113.10"]}
    flows = plan["policy_config"][0]["flows"]
    assert flows[2] == {"name": "eu-west-to-financial-app", "from": {"cidr": "10.4.0.0/14"},
                        "to": {"pods": {"app": "financial-app"}}, "ports": [8080]}
    assert plan["probes"] == {"tcp": [{"host": "203.0.113.10", "port": 443}, {"host": "203.0.113.20", "port": 443}]}


def test_failover_to_the_next_priority_and_refusal_when_none_answers():
    down = {"tcp": [{"host": "203.0.113.10", "port": 443, "ok": False}, {"host": "203.0.113.20", "port": 443, "ok": True}]}
    assert kubefed.plan(spec(), down)["records"][0]["spec"]["endpoints"][0]["targets"] == ["203.0.113.20"]
    dead = {"tcp": [{**t, "ok": False} for t in down["tcp"]]}
    assert "no cluster's VIP answers" in kubefed.plan(spec(), dead)["problems"][0]


@pytest.mark.parametrize("change, message", [
    (lambda s: s["clusters"][1].update(pod_cidr="10.2.0.0/16"), "lies inside kubefed_clusters[0].pod_cidr (us-east)"),
    (lambda s: s["clusters"][1].update(service_cidr="10.96.0.0/12"), "overlaps"),
    (lambda s: s["clusters"][1].update(pod_cidr="10.4.0.0/33"), "kubefed_clusters[1].pod_cidr: '10.4.0.0/33'"),
    (lambda s: s.update(host="ap-south"), "kubefed_host: 'ap-south' is not one of kubefed_clusters"),
    (lambda s: s["services"][0].update(clusters=["ap-south"]), "kubefed_services[0].clusters: 'ap-south'"),
    (lambda s: s["services"][0].update(target_port=70000), "kubefed_services[0].target_port: 70000"),
    (lambda s: s["clusters"][0].update(context=""), "kubefed_clusters[0].context"),
    (lambda s: s["clusters"][1].update(name="us-east"), "kubefed_clusters[1].name: 'us-east' is used twice"),
    (lambda s: s["clusters"][1].update(vips=["203.0.113.300"]), "kubefed_clusters[1].vips[0]"),
])
def test_bad_values_are_named(change, message):
    bad = spec()
    change(bad)
    found = kubefed.plan(bad)["problems"]
    assert any(message in p for p in found), found


def test_join_objects_and_token_expiry():
    member = cluster_join.account_objects(
        cluster_join.kubefed_grant("eu-west", "us-east", "kube-federation-system", ["services", "deployments.apps"]))
    assert [o["kind"] for o in member] == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"]
    assert member[1]["rules"] == [
        {"apiGroups": [""], "resources": ["services"], "verbs": cluster_join.SYNC_VERBS},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": cluster_join.SYNC_VERBS},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
        {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]
    assert cluster_join.member_rules(["*"])[0] == {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]} not in cluster_join.member_rules(["namespaces"])
    assert member[2]["subjects"] == [{"kind": "ServiceAccount", "name": "eu-west-us-east",
                                      "namespace": "kube-federation-system"}]
    host = cluster_join.host_objects("eu-west", "kube-federation-system", "https://eu:6443", "PEM", "tok")
    assert [o["kind"] for o in host] == ["Secret", "KubeFedCluster"]
    assert host[1]["spec"] == {"apiEndpoint": "https://eu:6443", "secretRef": {"name": "eu-west-credentials"},
                               "caBundle": base64.b64encode(b"PEM").decode()}
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 1800000000}).encode()).decode().rstrip("=")
    assert cluster_join.token_expiry(f"h.{claims}.s") == 1800000000.0
    assert cluster_join.token_expiry("not-a-jwt") is None


def routed(mechanism, records, **cluster_keys):
    out = spec(global_dns={"domain": "global.example.com", "ttl": 60, "records": records, "mechanism": mechanism})
    for cluster, extra in zip(out["clusters"], ({"region": "us-east-1", "health_check_id": "hc-1"}, {"region": "eu-west-1"})):
        cluster.update(extra)
    for key, values in cluster_keys.items():
        for cluster, value in zip(out["clusters"], values):
            cluster[key] = value
    return out


def test_k8gb_objects_per_cluster_and_no_controller_records():
    planned = kubefed.plan(routed("k8gb", "failover"))
    for cluster in ("us-east", "eu-west"):
        kinds = [o["kind"] for o in planned["objects"][cluster]]
        assert kinds[-2:] == ["Ingress", "Gslb"]
        assert planned["objects"][cluster][-1]["spec"]["strategy"] == {"dnsTtlSeconds": 60, "type": "failover", "primaryGeoTag": "us-east-1"}
    assert planned["records"] == []
    weighted = kubefed.plan(routed("k8gb", "weighted", weight=[2, 5], region=["eu-west-1", "eu-west-1"]))
    assert weighted["objects"]["us-east"][-1]["spec"]["strategy"]["weight"] == {"eu-west-1": 7}


def test_route53_probes_do_not_filter_what_route53_checks_itself():
    down = {"tcp": [{"host": "203.0.113.10", "ok": False}, {"host": "203.0.113.20", "ok": False}]}
    planned = kubefed.plan(routed("route53", "weighted", weight=[3, 1]), down)
    assert planned["problems"] == []
    assert [(e["setIdentifier"], e["providerSpecific"][0]) for e in planned["records"][0]["spec"]["endpoints"]] == [
        ("us-east", {"name": "aws/weight", "value": "3"}), ("eu-west", {"name": "aws/weight", "value": "1"})]


@pytest.mark.parametrize("changes,words", [
    (dict(mechanism="k8gb", records="failover", region=[None, "eu-west-1"]), "kubefed_clusters[0].region: k8gb needs the cluster's geo tag"),
    (dict(mechanism="k8gb", records="failover", priority=[1, 1]), "k8gb fails over to one primary geo tag"),
    (dict(mechanism="k8gb", records="latency"), "kubefed_global_dns.records: 'latency' is not a routing of mechanism k8gb"),
    (dict(mechanism="route53", records="failover", priority=[1, 1]), "two clusters of different priority are needed"),
    (dict(mechanism="route53", records="failover", health_check_id=[None, None]),
     "kubefed_clusters[0].health_check_id: Route 53 fails over from the PRIMARY only"),
    (dict(mechanism="route53", records="latency", region=["us-east", "eu-west-1"]), "kubefed_clusters[0].region: 'us-east' is not an AWS region"),
    (dict(mechanism="route53", records="geolocation", geo=["Europe", "DE"]), "kubefed_clusters[0].geo: 'Europe' is not a continent code"),
    (dict(mechanism="route53", records="geolocation", geo=["DE", "DE"]), "two clusters have the same geo"),
    (dict(mechanism="route53", records="geolocation", geo=["NA", "DE"]),
     "kubefed_clusters: Route 53 geolocation answers only the locations listed (NA, DE); clients anywhere else get no "
     "answer - give one cluster geo: '*' (the default record)"),
    (dict(mechanism="anycast", records="failover"), "kubefed_global_dns.mechanism: 'anycast' is not one of probes, k8gb, route53"),
])
def test_routing_needs_are_named_per_cluster(changes, words):
    mechanism, records = changes.pop("mechanism"), changes.pop("records")
    found = kubefed.plan(routed(mechanism, records, **changes))["problems"]
    assert any(words in p for p in found), found


def test_a_vip_inside_a_pod_or_service_range_is_refused():
    """The chapter's 10.0.0.1 inside the 10.0.0.0/14 pod range would be routed to pods."""
    bad = spec()
    bad["clusters"][1]["vips"] = ["10.0.0.1", "10.96.0.5"]
    found = kubefed.plan(bad)["problems"]
    # The wording fabric_clusters uses for the same rule: one check over the merged ranges.
    assert found == ["kubefed_clusters[1].vips[0] (eu-west): 10.0.0.1 overlaps kubefed_clusters[0].pod_cidr (us-east), "
                     "10.0.0.0/14: a VIP must lie outside every cluster's pod and service ranges (traffic to it would "
                     "stay inside a cluster)",
                     "kubefed_clusters[1].vips[1] (eu-west): 10.96.0.5 overlaps kubefed_clusters[0].service_cidr (us-east), "
                     "10.96.0.0/16: a VIP must lie outside every cluster's pod and service ranges (traffic to it would "
                     "stay inside a cluster)"]


def regulated(**svc_keys):
    out = spec()
    out["clusters"][0]["region"], out["clusters"][1]["region"] = "us-east-1", "eu-west-1"
    out["services"].append({"name": "ledger", "namespace": "ledger", "port": 443, "target_port": 8443, "data_region": "eu", **svc_keys})
    return out


def test_regulated_data_stays_in_its_region():
    planned = kubefed.plan(regulated())
    assert not [o for o in planned["objects"]["us-east"] if o["kind"] in ("Service", "ServiceExport") and o["metadata"]["name"] == "ledger"]
    assert [o["kind"] for o in planned["objects"]["eu-west"] if o["metadata"]["name"] == "ledger"] == ["Namespace", "Service", "ServiceExport"]
    ledger = [f for c in planned["policy_config"] if c["namespace"] == "ledger" for f in c["flows"]]
    assert {f["name"]: f["from"].get("cidr") or f["to"].get("cidr") for f in ledger} == {
        "eu-west-to-ledger": "10.4.0.0/14", "ledger-to-eu-west": "10.4.0.0/14"}
    denied = [e for e in planned["expect"] if e.get("why") and not e["allowed"]]
    assert {(e["src"], e["dst"]) for e in denied} == {("10.0.0.0", "ledger/ledger"), ("ledger/ledger", "10.0.0.0")}
    assert denied[0]["why"] == "ledger holds eu data; us-east is in us-east-1"
    record = next(r for r in planned["records"] if r["metadata"]["name"] == "ledger-global")
    assert record["spec"]["endpoints"][0]["targets"] == ["203.0.113.20"], "published from its region only"


def test_a_named_exception_opens_exactly_that_cluster():
    planned = kubefed.plan(regulated(allow_from=["us-east", "192.0.2.0/24"]))
    ledger = {f["name"] for c in planned["policy_config"] if c["namespace"] == "ledger" for f in c["flows"]}
    assert ledger == {"us-east-to-ledger", "ledger-to-us-east", "eu-west-to-ledger", "ledger-to-eu-west",
                      "exception-1-to-ledger", "ledger-to-exception-1"}
    assert any(e["allowed"] and e.get("why", "").endswith("(a named exception)") for e in planned["expect"])


@pytest.mark.parametrize("svc_keys,words", [
    ({"clusters": ["us-east", "eu-west"]}, "kubefed_services[1].clusters: 'us-east' (region us-east-1) is outside data region eu: "
                                           "ledger's eu data would leave eu"),
    ({"allow_from": ["10.0.0.0/8"]}, "kubefed_services[1].allow_from[0]: 10.0.0.0/8 covers pods of us-east (region us-east-1), "
                                     "opening ledger's eu data to another region"),
    ({"data_region": "apac"}, "kubefed_services[1].data_region: no cluster is in region 'apac'"),
])
def test_what_would_open_regulated_data_is_refused_naming_service_and_region(svc_keys, words):
    found = kubefed.plan(regulated(**svc_keys))["problems"]
    assert any(words in p for p in found), found


def test_regional_load_balancers_on_the_vips_let_clients_in_but_not_other_regions_pods():
    planned = kubefed.plan({**regulated(), "lb": {"enabled": True, "port": 443, "clients": ["0.0.0.0/0"]}})
    assert planned["problems"] == []
    lb = next(o for o in planned["objects"]["eu-west"] if o["metadata"]["name"] == "ledger-lb")
    assert lb["metadata"]["annotations"] == {"metallb.io/loadBalancerIPs": "203.0.113.20"}
    assert lb["spec"]["type"] == "LoadBalancer" and lb["spec"]["externalTrafficPolicy"] == "Local"
    assert lb["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}]
    assert not any(o["metadata"]["name"] == "ledger-lb" for o in planned["objects"]["us-east"])
    clients = {f["name"]: f["from"] for c in planned["policy_config"] for f in c["flows"] if f["name"].startswith("lb-")}
    assert clients == {"lb-clients-0-to-financial-app": {"cidr": "0.0.0.0/0"},
                       "lb-clients-0-to-ledger": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/14"]}}


@pytest.mark.parametrize("lb,words", [
    ({"enabled": True, "port": 70000, "clients": ["0.0.0.0/0"]}, "kubefed_lb.port: 70000 is not a port"),
    ({"enabled": True, "port": 443, "clients": ["10.2.0.0/16"]}, "kubefed_lb.clients[0]: 10.2.0.0/16 covers part of us-east's pods"),
])
def test_load_balancer_mistakes_are_named(lb, words):
    found = kubefed.plan({**regulated(), "lb": lb})["problems"]
    assert any(words in p for p in found), found


SHARED_VIP = ("kubefed_lb: financial-app, ledger all ask MetalLB for eu-west's VIP 203.0.113.20; MetalLB shares an "
              "address only between Services that select the same pods (externalTrafficPolicy Local), so one of them "
              "gets it and the others get no address")


def test_two_services_on_one_clusters_vip_are_warned_about_under_metallb():
    """Found by running MetalLB on the testbed: eu-west's two LoadBalancers ask for its one VIP,
    and MetalLB gives it to one. Another provider's annotation is not MetalLB's rule."""
    lb = {"enabled": True, "port": 443, "clients": ["198.51.100.0/24"]}
    assert kubefed.plan({**regulated(), "lb": lb})["warnings"] == [SHARED_VIP]
    assert kubefed.plan({**regulated(), "lb": {**lb, "address_annotation": "kube-vip.io/loadbalancerIPs"}})[
        "warnings"] == []
    assert kubefed.plan({**spec(), "lb": lb})["warnings"] == [], "one service per cluster"


def test_load_balancer_clients_default_to_none_and_everyone_is_warned_about_but_still_proven():
    """No client range: no client rule and a warning. 0.0.0.0/0: a warning, and the proof keeps a
    negative expectation (the clients on another port) although no IPv4 address is outside them."""
    none = kubefed.plan({**regulated(), "lb": {"enabled": True, "port": 443, "clients": []}})
    assert none["problems"] == [] and "admit no client from outside the clusters" in none["warnings"][0]
    assert not [f for c in none["policy_config"] for f in c["flows"] if f["name"].startswith("lb-")]
    everyone = kubefed.plan({**regulated(), "lb": {"enabled": True, "port": 443, "clients": ["0.0.0.0/0"]}})
    assert everyone["warnings"][1:] == [
        "kubefed_lb.clients: 0.0.0.0/0 admits every IPv4 address to each shared service's target port in every "
        "cluster (only other regions' pods are kept from regulated data); name the ranges your clients come from"]
    denied = [e for e in everyone["expect"] if not e["allowed"] and e["dst"].endswith("/financial-app")
              and "." in e["src"] and not e["src"].startswith("10.")]
    assert denied and all(e["port"] != 8443 for e in denied), "the clients reach the target port only"
    some = kubefed.plan({**regulated(), "lb": {"enabled": True, "port": 443, "clients": ["198.51.100.0/24"]}})
    assert some["warnings"] == [SHARED_VIP]
    assert any(e["src"] == "198.51.100.0" and e["allowed"] for e in some["expect"])
    assert any(not e["allowed"] and e["port"] == 8443 and e["src"] != "198.51.100.0" and "." in e["src"]
               and not e["src"].startswith("10.") for e in some["expect"]), "an address outside the clients is denied"


METRICS = {"enabled": True, "port": 9090, "interval": "30s", "namespace": "monitoring"}


def test_cross_cluster_metrics_local_monitors_and_the_hosts_federation():
    federated = spec(metrics=METRICS)
    federated["clusters"][1]["prometheus"] = "https://prometheus.eu-west.example.com:443"
    planned = kubefed.plan(federated)
    assert planned["problems"] == []
    for cluster in ("us-east", "eu-west"):
        objects = {(o["kind"], o["metadata"]["name"]): o for o in planned["objects"][cluster]}
        assert objects[("Service", "financial-app")]["spec"]["ports"][-1] == {"name": "metrics", "port": 9090, "protocol": "TCP",
                                                                              "targetPort": 9090}
        assert objects[("ServiceMonitor", "financial-app")]["spec"]["endpoints"] == [{"port": "metrics", "interval": "30s"}]
    host = {(o["kind"], o["metadata"]["name"]): o for o in planned["objects"]["us-east"]}
    scrape = host[("ScrapeConfig", "federate-eu-west")]["spec"]
    assert scrape["metricsPath"] == "/federate" and scrape["honorLabels"] is True and scrape["scheme"] == "HTTPS"
    assert scrape["params"] == {"match[]": ['{namespace=~"prod"}']}
    assert scrape["staticConfigs"] == [{"targets": ["prometheus.eu-west.example.com:443"], "labels": {"cluster": "eu-west"}}]
    alerts = [r["alert"] for r in host[("PrometheusRule", "kubefed-federation")]["spec"]["groups"][0]["rules"]]
    assert alerts == ["FederatedClusterMetricsMissing", "SharedServiceDownInCluster"]
    assert not any(o["kind"] == "ScrapeConfig" for o in planned["objects"]["eu-west"]), "the host federates"
    flow = next(f for c in planned["policy_config"] for f in c["flows"] if f["name"] == "prometheus-to-financial-app")
    assert flow == {"name": "prometheus-to-financial-app", "from": {"namespace": "monitoring"},
                    "to": {"pods": {"app": "financial-app"}}, "ports": [9090]}


@pytest.mark.parametrize("change,words", [
    (lambda s: None, "kubefed_clusters[1].prometheus: the host federates eu-west's metrics"),
    (lambda s: s["clusters"][1].update(prometheus="prometheus.eu-west:9090"),
     "kubefed_clusters[1].prometheus: 'prometheus.eu-west:9090' is not scheme://host:port"),
    (lambda s: s["metrics"].update(port=8080), "kubefed_metrics.port: 8080 is financial-app's serving port"),
    (lambda s: s["metrics"].update(interval="30 seconds"), "kubefed_metrics.interval: '30 seconds' is not a Prometheus duration"),
])
def test_metrics_mistakes_are_named(change, words):
    bad = spec(metrics=dict(METRICS))
    change(bad)
    found = kubefed.plan(bad)["problems"]
    assert any(words in p for p in found), found


def test_a_cluster_named_like_another_clusters_second_range_is_refused_naming_both():
    """us-east's IPv6 range is named us-east-1 in the policies: a cluster called us-east-1 would
    share those names (the run failed late, naming no variable)."""
    clash = spec()
    clash["fabric_clusters"] = [{"name": "us-east", "pod_cidrs": ["10.0.0.0/14", "fd00:10::/56"],
                                 "service_cidrs": ["10.96.0.0/16", "fd00:96::/112"]}]
    del clash["clusters"][0]["pod_cidr"], clash["clusters"][0]["service_cidr"]
    clash["clusters"].append({"name": "us-east-1", "context": "us-east-1", "pod_cidr": "10.8.0.0/14",
                              "service_cidr": "10.98.0.0/16", "vips": ["203.0.113.30"], "priority": 3})
    found = kubefed.plan(clash)["problems"]
    assert ("kubefed_clusters[2].name: 'us-east-1' is also the name the policies give fabric_clusters[0].pod_cidrs[1] "
            "(us-east's range fd00:10::/56); rename the cluster") in found, found
    clash["clusters"][2]["name"] = clash["clusters"][2]["context"] = "exception-0"
    assert any("'exception-0' is the name the policies give an allow_from exception" in p
               for p in kubefed.plan(clash)["problems"])


def test_the_global_name_is_certified_by_cert_manager_in_every_cluster_it_runs_in():
    settings = {"mode": "cert-manager", "issuer": "ClusterIssuer/letsencrypt-dns01", "days": 90, "renew_days": 30}
    plan = kubefed.plan(spec(global_tls=settings))
    assert plan["problems"] == []
    for name in ("us-east", "eu-west"):
        [cert] = [o for o in plan["objects"][name] if o["kind"] == "Certificate"]
        assert cert["metadata"] == {"name": "financial-app-global-tls", "namespace": "prod"}
        assert cert["spec"]["dnsNames"] == ["financial-app.global.example.com"]
        assert cert["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "letsencrypt-dns01"}
        assert (cert["spec"]["duration"], cert["spec"]["renewBefore"]) == ("2160h", "720h")
    assert not any(o["kind"] == "Certificate" for objs in kubefed.plan(spec())["objects"].values() for o in objs)
    assert plan["ranges"] == {"us-east": ["10.0.0.0/14", "10.96.0.0/16"], "eu-west": ["10.4.0.0/14", "10.97.0.0/16"]}


@pytest.mark.parametrize("settings, words", [
    ({"mode": "acme"}, "kubefed_global_tls.mode: 'acme' is not one of none, cert-manager"),
    ({"mode": "cert-manager", "issuer": "letsencrypt", "days": 90, "renew_days": 30}, "kubefed_global_tls.issuer"),
    ({"mode": "cert-manager", "issuer": "Issuer/ca", "days": 30, "renew_days": 30}, "kubefed_global_tls.renew_days"),
    ({"mode": "cert-manager", "issuer": "Issuer/ca", "days": 90, "renew_days": 30, "days_left": 1},
     "kubefed_global_tls.days_left is not a key"),
])
def test_bad_global_tls_settings_are_named(settings, words):
    problems = kubefed.plan(spec(global_tls=settings))["problems"]
    assert any(words in p for p in problems), problems


def test_cert_manager_needs_a_domain_to_certify():
    problems = kubefed.plan(spec(global_tls={"mode": "cert-manager", "issuer": "Issuer/ca", "days": 90, "renew_days": 30},
                                 global_dns={"ttl": 180}))["problems"]
    assert any("kubefed_global_dns.domain is empty" in p for p in problems), problems
