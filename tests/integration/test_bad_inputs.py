"""The project's bad-input suite: realistic mistakes across the five roles, each run through its
real playbook. Every case must exit non-zero, say what is wrong naming the variable (or the
field), and write nothing: the build folder is compared before and after. Values are given as
JSON extra vars, or as `-e name=value` strings where that is how the mistake happens."""

from __future__ import annotations

import copy
import shutil

import pytest
import yaml

from tests.helpers import REPO, run_playbook


def defaults(role: str) -> dict:
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())


EC, MESH, HY, KF, EDGE = (defaults(r) for r in ("ecommerce_net", "istio_mesh", "hybrid_dns", "kubefed", "edge_k3s"))
# The embedded inventory's IP plan (fabric_clusters), which the cluster roles read.
PL = yaml.safe_load((REPO / "inventories" / "local" / "group_vars" / "all.yml").read_text())


def changed(role_defaults: dict, variable: str, path: tuple, value):
    """The variable's default with one nested place changed (a realistic typo or value)."""
    out = copy.deepcopy(role_defaults[variable])
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return {variable: out}


SVC = ("istio_mesh_services",)
CASES = [
    # -- ecommerce_net -------------------------------------------------------------------------
    ("ecommerce", changed(EC, "ecommerce_net_tiers", (0, "port"), 70000), "ecommerce_net_tiers[0].port: 70000"),
    ("ecommerce", changed(EC, "ecommerce_net_tiers", (1, "name"), "Api_Tier"), "ecommerce_net_tiers[1].name: 'Api_Tier'"),
    ("ecommerce", changed(EC, "ecommerce_net_tiers", (0, "service_type"), "External"), "service_type"),
    ("ecommerce", changed(EC, "ecommerce_net_tiers", (1, "metrics_port"), 8080), "ecommerce_net_tiers[1].metrics_port: 8080 is the tier's port"),
    ("ecommerce", {"ecommerce_net_tiers": []}, "ecommerce_net_tiers: at least one tier is needed"),
    ("ecommerce", {"ecommerce_net_tiers": [{"name": "web"}]}, "missing required arguments: port"),
    ("ecommerce", changed(EC, "ecommerce_net_flows", (2, "from"), "frontnd"), "ecommerce_net_flows[2].from: 'frontnd' is neither a tier"),
    ("ecommerce", changed(EC, "ecommerce_net_flows", (2, "to"), "payments"), "ecommerce_net_flows[2].to: 'payments' is not a tier"),
    ("ecommerce", changed(EC, "ecommerce_net_flows", (2, "port"), "80/TCPX"), "ecommerce_net_flows[2].port"),
    ("ecommerce", changed(EC, "ecommerce_net_flows", (2, "port"), 0), "ecommerce_net_flows[2].port"),
    ("ecommerce", changed(EC, "ecommerce_net_peers", ("internet", "cidr"), "10.0.0.0/33"), "ecommerce_net_peers.internet.cidr: '10.0.0.0/33'"),
    ("ecommerce", {"ecommerce_net_peers": {**EC["ecommerce_net_peers"], "gateway": {"pods": {"app": "gw"}}}},
     "ecommerce_net_peers.gateway: platform peers live in their own namespace"),
    ("ecommerce", {"ecommerce_net_ingress": {"host": "shop.example.org"}}, "missing required arguments"),
    # The Ingress API with the default peers would admit Envoy Gateway and lock the Ingress controller out.
    ("ecommerce", {"ecommerce_net_ingress_api": "ingress"},
     "ecommerce_net_ingress_api: 'ingress' is served by an Ingress controller (class 'nginx'), "
     "but ecommerce_net_peers.gateway still selects Envoy Gateway's proxies"),
    ("ecommerce", {"ecommerce_net_peers": {**EC["ecommerce_net_peers"],
                                           "gateway": {"namespace": "ingress-nginx", "pods": {"app.kubernetes.io/name": "ingress-nginx"}}}},
     "ecommerce_net_ingress.implementation: 'envoy-gateway' serves the Gateway, but ecommerce_net_peers.gateway does not select its proxies"),
    ("ecommerce", changed(EC, "ecommerce_net_ingress", ("host",), "shop_1.example.com"), "ecommerce_net_ingress.host: 'shop_1.example.com'"),
    ("ecommerce", changed(EC, "ecommerce_net_ingress", ("waf",), True), "ecommerce_net_ingress.waf: Gateway API and Envoy Gateway have no WAF"),
    ("ecommerce", changed(EC, "ecommerce_net_ingress", ("rate_limit_rps",), -5), "ecommerce_net_ingress.rate_limit_rps: -5"),
    ("ecommerce", changed(EC, "ecommerce_net_ingress", ("implementation",), "nginx-gateway"), "implementation"),
    ("ecommerce", changed(EC, "ecommerce_net_ingress", ("backend",), "shop"), "ecommerce_net_ingress.backend: 'shop' is not a tier"),
    ("ecommerce", changed(EC, "ecommerce_net_lb", ("external_traffic_policy",), "Global"), "external_traffic_policy"),
    # (the embedded plan gives the nodes' range; without it, the role asks for one)
    ("ecommerce", {**changed(EC, "ecommerce_net_lb", ("external_traffic_policy",), "Cluster"),
                   **changed(PL, "fabric_clusters", (0, "node_cidrs"), [])},
     "ecommerce_net_lb.node_cidrs: with external_traffic_policy Cluster"),
    ("ecommerce", {"ecommerce_net_lb": {**EC["ecommerce_net_lb"], "externl_traffic_policy": "Local"}},
     "ecommerce_net_lb.externl_traffic_policy is not a key of ecommerce_net_lb (did you mean external_traffic_policy?)"),
    ("ecommerce", changed(PL, "fabric_clusters", (1, "service_cidrs"), ["10.96.0.0/16", "fd00:10:97::/112"]),
     "fabric_clusters[0].service_cidrs[0] (us-east) (10.96.0.0/16) overlaps fabric_clusters[1].service_cidrs[0] (eu-west)"),
    ("ecommerce", {"ecommerce_net_tirs": EC["ecommerce_net_tiers"]},
     "ecommerce_net_tirs is not a variable of ecommerce_net (did you mean ecommerce_net_tiers?)"),
    ("ecommerce", changed(EC, "ecommerce_net_monitoring", ("latency_for",), 5), "ecommerce_net_monitoring.latency_for"),
    ("ecommerce", changed(EC, "ecommerce_net_environments", (1, "namespace"), "ecommerce-prod"), "two environments share a namespace"),
    ("ecommerce", {"ecommerce_net_ingress_api": "nginx"}, "ecommerce_net_ingress_api"),
    ("ecommerce", changed(EC, "ecommerce_net_tls", ("mode",), "self-signed"), "mode"),
    ("ecommerce", "ecommerce_net_dns_egress=maybe", "ecommerce_net_dns_egress"),
    ("ecommerce", "fabric_mode=rendr", "fabric_mode"),
    ("ecommerce", {"ecommerce_net_flows": [f for f in EC["ecommerce_net_flows"] if f["from"] != "gateway"]},
     "the gateway (ecommerce_net_peers.gateway) must reach frontend:80"),
    # -- istio_mesh ---------------------------------------------------------------------------
    ("mesh", {"istio_mesh_mtls": "strict"}, "istio_mesh_mtls"),
    ("mesh", {"istio_mesh_gateway": {**MESH["istio_mesh_gateway"], "hots": ["a.example.com"]}},
     "istio_mesh_gateway.hots is not a key of istio_mesh_gateway (did you mean hosts?)"),
    ("mesh", {"istio_mesh_service": MESH["istio_mesh_services"]}, "istio_mesh_service is not a variable of istio_mesh (did you mean istio_mesh_services?)"),
    # Typos inside list entries and durations Prometheus would refuse were accepted silently.
    ("hybrid", changed(HY, "hybrid_dns_locations", (0, "dns_server"), ["10.0.0.53"]),
     "hybrid_dns_locations[0].dns_server is not a key of hybrid_dns_locations[0] (did you mean dns_servers?)"),
    ("mesh", changed(MESH, "istio_mesh_services", (0, "retry"), {"attempts": 3}),
     "istio_mesh_services[0].retry is not a key of istio_mesh_services[0] (did you mean retries?)"),
    ("multicluster", changed(KF, "kubefed_services", (0, "data_regoin"), "eu"),
     "kubefed_services[0].data_regoin is not a key of kubefed_services[0] (did you mean data_region?)"),
    ("ecommerce", changed(EC, "ecommerce_net_peers", ("gateway", "pod"), {"app": "gw"}),
     "ecommerce_net_peers.gateway.pod is not a key of ecommerce_net_peers.gateway (did you mean pods?)"),
    ("ecommerce", changed(EC, "ecommerce_net_monitoring", ("latency_for",), "5 minutes"),
     "ecommerce_net_monitoring.latency_for: '5 minutes' is not a Prometheus duration"),
    # Another cluster of the plan inside a location it is not in (the embedded plan's eu-west used to be).
    ("hybrid", {"fabric_clusters": [PL["fabric_clusters"][0], {k: v for k, v in PL["fabric_clusters"][1].items() if k != "location"}]},
     "fabric_clusters[1].pod_cidrs[0] (eu-west): 10.44.0.0/16 lies in location 'on-prem' (10.44.0.0/16), but eu-west is in no location"),
    ("hybrid", {"hybrid_dns_coredns": {**HY["hybrid_dns_coredns"], "mdoe": "custom"}},
     "hybrid_dns_coredns.mdoe is not a key of hybrid_dns_coredns (did you mean mode?)"),
    ("hybrid", {"hybrid_dns_location": HY["hybrid_dns_locations"]}, "hybrid_dns_location is not a variable of hybrid_dns (did you mean hybrid_dns_locations?)"),
    ("edge", {"edge_k3s_procesor_replicas": 3}, "edge_k3s_procesor_replicas is not a variable of edge_k3s (did you mean edge_k3s_processor_replicas?)"),
    ("mesh", changed(MESH, *SVC, (0, "routes", 0, "split"), {"v2": 90, "v1": 20}), "weights add up to 110"),
    ("mesh", changed(MESH, *SVC, (0, "routes", 1, "split"), {"v3": 100}), "version 'v3' is not one of the service's versions"),
    ("mesh", changed(MESH, *SVC, (0, "routes", 0, "match"), {"headers": {"user-type": {"equals": "premium"}}}),
     "istio_mesh_services[0].routes[0].match.headers.user-type"),
    ("mesh", changed(MESH, *SVC, (0, "timeout"), "10 seconds"), "istio_mesh_services[0].timeout"),
    ("mesh", changed(MESH, *SVC, (0, "allow", 0, "paths"), ["api/v1/*"]), "istio_mesh_services[0].allow[0].paths: 'api/v1/*'"),
    ("mesh", changed(MESH, *SVC, (0, "allow", 0, "methods"), ["FETCH"]), "istio_mesh_services[0].allow[0].methods: 'FETCH'"),
    ("mesh", changed(MESH, *SVC, (0, "routes", 1, "fault"), {"abort": {"percent": 10, "status": 700}}),
     "istio_mesh_services[0].routes[1].fault.abort.status: 700"),
    ("mesh", changed(MESH, *SVC, (0, "routes", 1, "fault"), {"delay": {"percent": 150, "fixed": "2s"}}),
     "istio_mesh_services[0].routes[1].fault.delay.percent"),
    ("mesh", changed(MESH, "istio_mesh_namespaces", (0, "name"), "Shop"), "istio_mesh_namespaces[0].name: 'Shop'"),
    ("mesh", changed(MESH, "istio_mesh_alerts", ("error_ratio",), 2), "istio_mesh_alerts.error_ratio: 2"),
    ("mesh", changed(MESH, "istio_mesh_telemetry", ("tracing_sampling",), 150), "istio_mesh_telemetry.tracing_sampling"),
    ("mesh", changed(MESH, "istio_mesh_telemetry", ("tracing_collector",), "otel:4317"),
     "istio_mesh_telemetry.tracing_collector: 'otel' is not a fully qualified service name"),
    ("mesh", {"istio_mesh_istioctl_install": True}, "istio_mesh_istioctl_install: installs are pinned to a revision"),
    ("mesh", changed(MESH, *SVC, (0, "namespace"), "payments"), "istio_mesh_services[0].namespace: 'payments' is not in istio_mesh_namespaces"),
    ("mesh", changed(MESH, "istio_mesh_gateway", ("routes_to",), "checkout"), "istio_mesh_gateway.routes_to: 'checkout'"),
    ("mesh", changed(MESH, "istio_mesh_gateway", ("api",), "nginx"), "api"),
    ("mesh", changed(MESH, *SVC, (0, "port"), 0), "istio_mesh_services[0].port"),
    ("mesh", "istio_mesh_monitoring=maybe", "istio_mesh_monitoring"),
    ("mesh", changed(MESH, *SVC, (0, "retries", "per_try_timeout"), "2"), "istio_mesh_services[0].retries.per_try_timeout"),
    ("mesh", {"istio_mesh_gateway": {"hosts": ["shop.example.com"]}}, "missing required arguments: enabled"),
    ("mesh", {"istio_mesh_telemetry": {"tracing_sampling": 10}}, "missing required arguments: access_logging"),
    ("mesh", changed(MESH, *SVC, (0, "fault"), {"abort": {"percent": 10, "status": 503}}),
     "istio_mesh_services[0].fault: fault injection belongs to the route"),
    ("mesh", changed(MESH, *SVC, (0, "traffic_policy", "max_connections"), "many"), "istio_mesh_services[0].traffic_policy.max_connections"),
    ("mesh", {"istio_mesh_services": [MESH["istio_mesh_services"][0], MESH["istio_mesh_services"][0]]}, "is declared twice"),
    ("mesh", changed(MESH, "istio_mesh_gateway", ("service_account",), "no-slash"), "istio_mesh_gateway.service_account"),
    ("mesh", changed(PL, "fabric_clusters", (0, "service_cidrs"), ["10.96.0.0/16"]),
     "fabric_clusters[0]: us-east's pod ranges are IPv4/IPv6 but its service ranges IPv4"),
    ("mesh", changed(PL, "fabric_clusters", (0, "pod_cidr"), "10.42.0.0/16"), "pod_cidr"),
    # -- hybrid_dns ---------------------------------------------------------------------------
    ("hybrid", {"hybrid_dns_domain": "bad_domain.example.com"}, "hybrid_dns_domain"),
    ("hybrid", changed(HY, "hybrid_dns_locations", (1, "cidrs"), ["10.1.0.0/16"]), "overlap"),
    ("hybrid", changed(HY, "hybrid_dns_locations", (0, "dns_servers"), ["dns.example.com"]), "hybrid_dns_locations[0].dns_servers"),
    ("hybrid", {"hybrid_dns_records": "random"}, "hybrid_dns_records"),
    ("hybrid", {"hybrid_dns_record_ttl": -1}, "hybrid_dns_record_ttl"),
    ("hybrid", changed(HY, "hybrid_dns_cluster", ("location",), "gcp"), "hybrid_dns_cluster.location: 'gcp'"),
    ("hybrid", changed(HY, "hybrid_dns_apps", (0, "port"), 70000), "hybrid_dns_apps[0].port: port 70000"),
    ("hybrid", changed(HY, "hybrid_dns_coredns", ("mode",), "weird"), "mode"),
    ("hybrid", "hybrid_dns_record_ttl=abc", "hybrid_dns_record_ttl"),
    ("hybrid", {"hybrid_dns_locations": []}, "hybrid_dns_locations: at least one location is needed"),
    ("hybrid", changed(HY, "hybrid_dns_locations", (2, "name"), "aws"), "aws"),
    ("hybrid", changed(PL, "fabric_clusters", (0, "pod_cidrs"), ["172.16.0.0/20", "fd00:10:42::/56"]),
     "fabric_clusters[0].pod_cidrs[0]: 172.16.0.0/20 overlaps location 'aws'"),
    ("hybrid", changed(PL, "fabric_clusters", (0, "location"), "gcp"), "fabric_clusters[0].location: 'gcp' is not a location"),
    ("hybrid", changed(PL, "fabric_clusters", (0, "pod_cidrs"), ["10.0.0.0/16", "fd00:10:42::/56"]),
     "hybrid_dns_locations[0].dns_servers[0]: 10.0.0.53 lies inside fabric_clusters[0].pod_cidrs[0]"),
    ("hybrid", changed(HY, "hybrid_dns_coredns", ("port",), 0), "hybrid_dns_coredns.port"),
    ("hybrid", changed(HY, "hybrid_dns_locations", (0, "weight"), 300), "hybrid_dns_locations[0].weight"),
    ("hybrid", {"hybrid_dns_coredns": {"mode": "corefile"}}, "missing required arguments"),
    ("hybrid", changed(HY, "hybrid_dns_locations", (0, "endpoints"), ["not-an-ip"]), "hybrid_dns_locations[0].endpoints"),
    ("hybrid", changed(HY, "hybrid_dns_locations", (0, "cidrs"), ["10.0.0.0/8", "300.1.0.0/16"]), "hybrid_dns_locations[0].cidrs"),
    ("hybrid", changed(HY, "hybrid_dns_apps", (0, "name"), "Hybrid App"), "hybrid_dns_apps[0].name"),
    # -- kubefed ------------------------------------------------------------------------------
    ("multicluster", {"kubefed_global_dns": {**KF["kubefed_global_dns"], "mechanism": "k8gb", "records": "latency"}},
     "kubefed_global_dns.records: 'latency' is not a routing of mechanism k8gb"),
    ("multicluster", changed(PL, "fabric_clusters", (0, "vips"), ["10.42.0.1"]),
     "fabric_clusters[0].vips[0] (us-east): 10.42.0.1 overlaps fabric_clusters[0].pod_cidrs[0] (us-east)"),
    ("multicluster", {"kubefed_lb": {**KF["kubefed_lb"], "clients": ["10.0.0.0/33"]}}, "kubefed_lb.clients[0]: '10.0.0.0/33'"),
    ("multicluster", {"kubefed_lb": {"enabled": True, "port": 443}}, "missing required arguments: address_annotation, clients"),
    # us-east's IPv6 pod range is named us-east-1 in the policies: a cluster of that name would share them.
    ("multicluster", {"fabric_clusters": PL["fabric_clusters"] + [
        {"name": "us-east-1", "context": "us-east-1", "region": "us-east-2", "pod_cidrs": ["10.50.0.0/16"],
         "service_cidrs": ["10.98.0.0/16"], "vips": ["203.0.113.30"]}],
     "kubefed_clusters": KF["kubefed_clusters"] + [{"name": "us-east-1", "priority": 2}]},
     "kubefed_clusters[2].name: 'us-east-1' is also the name the policies give fabric_clusters[0].pod_cidrs[1]"),
    ("multicluster", {"kubefed_clustres": KF["kubefed_clusters"]}, "kubefed_clustres is not a variable of kubefed (did you mean kubefed_clusters?)"),
    ("multicluster", {"kubefed_probes": {**KF["kubefed_probes"], "timout": 2}}, "kubefed_probes.timout is not a key of kubefed_probes (did you mean timeout?)"),
    ("multicluster", {"kubefed_federated_types": ["services", "Deployments.apps"]}, "kubefed_federated_types[1]: 'Deployments.apps'"),
    ("multicluster", changed(KF, "kubefed_clusters", (1, "pod_cidr"), "10.2.0.0/16"),
     "kubefed_clusters[1].pod_cidr: '10.2.0.0/16' differs from fabric_clusters[1].pod_cidrs"),
    ("multicluster", changed(PL, "fabric_clusters", (1, "pod_cidrs"), ["10.42.128.0/17", "fd00:10:44::/56"]),
     "fabric_clusters[1].pod_cidrs[0] (eu-west) lies inside fabric_clusters[0].pod_cidrs[0] (us-east)"),
    ("multicluster", {"kubefed_host": "ap-south"}, "kubefed_host: 'ap-south' is not one of kubefed_clusters"),
    ("multicluster", changed(KF, "kubefed_services", (0, "port"), 0), "kubefed_services[0].port: 0"),
    ("multicluster", changed(KF, "kubefed_global_dns", ("domain",), "global_example.com"), "kubefed_global_dns.domain"),
    ("multicluster", changed(KF, "kubefed_global_dns", ("records",), "nearest"), "records"),
    ("multicluster", changed(KF, "kubefed_clusters", (0, "name"), "US_EAST"), "kubefed_clusters[0].name: 'US_EAST'"),
    ("multicluster", changed(PL, "fabric_clusters", (0, "vips"), ["203.0.113.300"]), "fabric_clusters[0].vips[0]: '203.0.113.300'"),
    ("multicluster", changed(KF, "kubefed_clusters", (0, "priority"), 300), "kubefed_clusters[0].priority: 300"),
    ("multicluster", {"kubefed_clusters": []}, "kubefed_clusters: at least one cluster is needed"),
    ("multicluster", changed(PL, "fabric_clusters", (1, "context"), ""), "kubefed_clusters[1].context"),
    ("multicluster", changed(KF, "kubefed_services", (0, "clusters"), ["ap-south"]), "kubefed_services[0].clusters: 'ap-south'"),
    ("multicluster", "kubefed_token_days=abc", "kubefed_token_days"),
    ("multicluster", {"kubefed_probes": {"enabled": True}}, "missing required arguments"),
    ("multicluster", changed(KF, "kubefed_services", (0, "namespace"), "Prod"), "kubefed_services[0].namespace: 'Prod'"),
    ("multicluster", changed(PL, "fabric_clusters", (0, "service_cidrs"), ["10.96.0.0/33", "fd00:10:96::/112"]),
     "fabric_clusters[0].service_cidrs[0]: '10.96.0.0/33'"),
    ("multicluster", changed(PL, "fabric_clusters", (0, "service_cidrs"), ["10.96.0.0/16", "10.98.0.0/16"]),
     "fabric_clusters[0].service_cidrs: us-east has 2 IPv4 service ranges"),
    # -- edge_k3s -----------------------------------------------------------------------------
    ("edge", "edge_k3s_processor_replicas=three", "edge_k3s_processor_replicas"),
    ("edge", {"edge_k3s_lan_cidr": "192.168.1.0/33"}, "edge_k3s_lan_cidr"),
    ("edge", {"edge_k3s_connected_sites": ["factry-2"]},
     "edge_k3s_connected_sites[0] 'factry-2' is not a site of the inventory (it has no other site)"),
    ("edge", {"edge_k3s_arch": "x86_64"}, "value of edge_k3s_arch must be one of: amd64, arm64, arm, got: x86_64"),
    ("edge", {"edge_k3s_metallb_pool": ["10.9.9.1-10.9.9.9"]}, "edge_k3s_metallb_pool"),
    ("edge", {"edge_k3s_cluster_cidr": "10.43.0.0/16"}, "overlap"),
    ("edge", {"edge_k3s_version": "latest"}, "edge_k3s_version"),
    ("edge", {"edge_k3s_node_taints": ["dedicated=sensors:Sometimes"]}, "edge_k3s_node_taints"),
    ("edge", {"edge_k3s_sync_schedule": "every 15 minutes"}, "edge_k3s_sync_schedule"),
    ("edge", {"edge_k3s_processor_requests": {"cpu": "half", "memory": "512Mi"}}, "edge_k3s_processor_requests.cpu"),
    ("edge", {"edge_k3s_storage": "nfs"}, "edge_k3s_storage"),
    ("edge", {"edge_k3s_processor_port": 70000}, "edge_k3s_processor_port"),
    ("edge", {"edge_k3s_node_labels": ["edge zone=line a"]}, "edge_k3s_node_labels"),
    ("edge", {"edge_k3s_flannel_backend": "weird"}, "edge_k3s_flannel_backend"),
    ("edge", {"edge_k3s_registry_mirrors": {"docker.io": ["registry.local:5000"]}}, "edge_k3s_registry_mirrors"),
    ("edge", {"edge_k3s_prometheus_retention": "1 day"}, "edge_k3s_prometheus_retention"),
    ("edge", {"edge_k3s_processor_storage": "10 Gigs"}, "edge_k3s_processor_storage"),
    ("edge", {"edge_k3s_arch": "x86"}, "edge_k3s_arch"),
    ("edge", {"edge_k3s_site": "Factory 1"}, "edge_k3s_site"),
    ("edge", {"edge_k3s_sync_endpoint": "ftp://sync.example.com"}, "edge_k3s_sync_endpoint"),
    ("edge", {"edge_k3s_processor_requests": {"cpu": "500m", "memroy": "512Mi"}}, "memroy"),
    ("edge", "edge_k3s_secrets_encryption=perhaps", "edge_k3s_secrets_encryption"),
]


def _id(case) -> str:
    playbook, given, _words = case
    name = given if isinstance(given, str) else ",".join(given)
    return f"{playbook}:{name}"


@pytest.mark.parametrize("playbook,given,words", CASES, ids=[_id(c) for c in CASES])
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, playbook, given, words):
    build = tmp_path / "build"
    plays = yaml.safe_load((REPO / "playbooks" / f"{playbook}.yml").read_text())
    args, extra = (("-e", given), {}) if isinstance(given, str) else ((), given)
    result = run_playbook(tmp_path, plays, *args, extra_vars={"fabric_build_dir": str(build), **extra},
                          inventory=str(REPO / "inventories" / "local"))
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, f"accepted: {output[-1500:]}"
    assert " ".join(words.split()) in output, output[-2500:]
    assert "Traceback" not in output and "object has no attribute" not in output, output[-2500:]
    written = sorted(str(p.relative_to(build)) for p in build.rglob("*") if p.is_file()) if build.exists() else []
    assert written == [], f"wrote {written[:5]} before failing"


def test_the_suite_covers_every_role_with_at_least_a_hundred_cases():
    per_playbook = {}
    for playbook, _given, _words in CASES:
        per_playbook[playbook] = per_playbook.get(playbook, 0) + 1
    assert len(CASES) >= 100 and set(per_playbook) == {"ecommerce", "mesh", "hybrid", "multicluster", "edge"}, per_playbook


@pytest.mark.parametrize("playbook,group", [("ecommerce", "clusters"), ("hybrid", "clusters"), ("mesh", "clusters"),
                                            ("multicluster", "federations"), ("edge", "edge_clusters"),
                                            ("edge_upgrade", "edge_servers"), ("edge_reset", "edge_servers")])
def test_an_inventory_that_does_not_parse_fails_instead_of_running_no_host(tmp_path, playbook, group):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n\tclusters:\n      hosts:\n        us-east:\n")  # a tab
    plays = yaml.safe_load((REPO / "playbooks" / f"{playbook}.yml").read_text())
    result = run_playbook(tmp_path, plays, extra_vars={"fabric_build_dir": str(tmp_path / "build")}, inventory=str(inventory))
    output = " ".join(result.stdout.split())
    assert result.returncode != 0, output[-1500:]
    assert f"the inventory ({inventory}) has no hosts in group {group}" in output, output[-1500:]
    assert not (tmp_path / "build").exists()


@pytest.mark.parametrize("playbook, given", [("edge", {"fabric_mode": "rendr"}),
                                             ("ecommerce", {"ecommerce_net_lb": {"external_traffic_policy": "Local"}})])
def test_an_argument_spec_failure_is_one_line_per_problem_not_the_whole_spec(tmp_path, playbook, given):
    """Ansible's own role validation prints the whole argument spec with each failure (1,790
    lines for a mistyped mode on the four-host edge site); the roles' first dependency says it
    in one line per problem and host."""
    plays = yaml.safe_load((REPO / "playbooks" / f"{playbook}.yml").read_text())
    result = run_playbook(tmp_path, plays, extra_vars={"fabric_build_dir": str(tmp_path / "build"), **given},
                          inventory=str(REPO / "inventories" / "local"))
    assert result.returncode != 0
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) < 150, f"{len(lines)} lines:\n" + "\n".join(lines[:60])
    assert "argument_spec_data" not in result.stdout


@pytest.mark.parametrize("playbook", ["edge", "ecommerce", "multicluster", "mesh", "hybrid"])
def test_an_inventory_without_fabric_mode_is_refused_naming_it(tmp_path, playbook):
    folder = tmp_path / "inventory"
    shutil.copytree(REPO / "inventories" / "local", folder)
    group_vars = yaml.safe_load((folder / "group_vars" / "all.yml").read_text())
    del group_vars["fabric_mode"]
    (folder / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_vars))
    plays = yaml.safe_load((REPO / "playbooks" / f"{playbook}.yml").read_text())
    result = run_playbook(tmp_path, plays, extra_vars={"fabric_build_dir": str(tmp_path / "build")}, inventory=str(folder))
    output = " ".join(result.stdout.split())
    assert result.returncode != 0 and "missing required arguments: fabric_mode" in output, output[-1500:]
    assert "is undefined" not in output
    assert not [p for p in (tmp_path / "build").rglob("*") if p.is_file()]


@pytest.mark.parametrize("playbook", ["edge", "edge_upgrade"])
def test_apply_mode_never_installs_k3s_on_the_controller(tmp_path, playbook):
    """-e fabric_mode=apply on the render inventory (its hosts are ansible_connection: local)."""
    plays = yaml.safe_load((REPO / "playbooks" / f"{playbook}.yml").read_text())
    result = run_playbook(tmp_path, plays, extra_vars={"fabric_build_dir": str(tmp_path / "build"), "fabric_mode": "apply",
                                                       "edge_k3s_token": "t0ken-x", "edge_k3s_sync_token": "s1nc-y",
                                                       "edge_k3s_root": str(tmp_path / "root")},
                          inventory=str(REPO / "inventories" / "local"))
    output = " ".join(result.stdout.split())
    assert result.returncode != 0, output[-1500:]
    assert "ansible_connection is local, so apply mode would install K3s on the machine that runs Ansible" in output
    assert "host_preflight" not in output, "refused before preflight"
    assert not (tmp_path / "root").exists() and not (tmp_path / "build").exists()


def test_an_edge_site_group_without_the_edge_prefix_is_explained(tmp_path):
    """A site group named berlin (not edge_berlin) left the site without hosts, and the run said
    'no host of the site is in edge_servers', which was false."""
    inventory = yaml.safe_load((REPO / "inventories" / "local" / "hosts.yml").read_text())
    groups = inventory["all"]["children"]
    groups["berlin"] = groups.pop("edge_factory_1")
    folder = tmp_path / "inventory"
    shutil.copytree(REPO / "inventories" / "local", folder)
    (folder / "hosts.yml").write_text(yaml.safe_dump(inventory))
    plays = yaml.safe_load((REPO / "playbooks" / "edge.yml").read_text())
    result = run_playbook(tmp_path, plays, extra_vars={"fabric_build_dir": str(tmp_path / "build")}, inventory=str(folder))
    output = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "the site's hosts are the edge_servers and edge_agents members of the group edge_factory_1" in output, output[-2000:]
    assert "no host of the site is in edge_servers" not in output
    assert not (tmp_path / "build").exists()


def test_an_edge_site_without_its_cluster_entry_is_refused(tmp_path):
    """A second site whose hosts are listed but whose cluster entry was forgotten would have its
    cluster objects silently skipped."""
    inventory = yaml.safe_load((REPO / "inventories" / "local" / "hosts.yml").read_text())
    groups = inventory["all"]["children"]
    groups["edge_factory_2"] = {"vars": {**groups["edge_factory_1"]["vars"], "edge_k3s_site": "factory-2",
                                         "edge_k3s_lan_cidr": "192.168.2.0/24",
                                         "edge_k3s_metallb_pool": ["192.168.2.240-192.168.2.250"]},
                                "hosts": {"factory2-server-1": {"ansible_host": "192.168.2.10"}}}
    groups["edge_servers"]["hosts"]["factory2-server-1"] = None
    folder = tmp_path / "inventory"
    folder.mkdir()
    (folder / "hosts.yml").write_text(yaml.safe_dump(inventory))
    for extra in ("group_vars", "host_vars"):
        if (REPO / "inventories" / "local" / extra).exists():
            (folder / extra).symlink_to(REPO / "inventories" / "local" / extra)
    build = tmp_path / "build"
    plays = yaml.safe_load((REPO / "playbooks" / "edge.yml").read_text())
    result = run_playbook(tmp_path, plays, extra_vars={"fabric_build_dir": str(build)}, inventory=str(folder))
    output = " ".join(result.stdout.split())
    assert result.returncode != 0, output[-1500:]
    assert "site factory-2 (factory2-server-1) has no host in both edge_clusters and edge_factory_2" in output, output[-2000:]
    assert "inventories/examples/factories/hosts.yml shows two sites with theirs" in output, output[-2000:]
    assert not build.exists()
