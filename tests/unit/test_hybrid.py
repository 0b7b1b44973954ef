"""hybrid_dns's plan as pure data: validation messages, CoreDNS blocks, health-gated records."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import hybrid_dns
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.net_probe import server_address

SPEC = {
    "domain": "hybrid.example.com",
    "locations": [
        {"name": "on-prem", "zone": "onprem", "cidrs": ["10.0.0.0/8"], "dns_servers": ["10.0.0.53"],
         "endpoints": ["10.0.100.10"], "weight": 40, "priority": 1},
        {"name": "aws", "cidrs": ["172.16.0.0/16"], "dns_servers": ["172.16.0.53", "172.16.0.54:5353"],
         "endpoints": ["172.16.100.10"], "weight": 30, "priority": 2},
        {"name": "azure", "cidrs": ["192.168.0.0/16"], "dns_servers": ["192.168.0.53"],
         "endpoints": ["192.168.100.10"], "weight": 30, "priority": 2},
    ],
    "cluster": {"location": "on-prem", "pods": "10.42.0.0/16", "services": "10.43.0.0/16"},
    "apps": [{"name": "hybrid-app", "namespace": "hybrid", "port": 443}],
    "records": "failover", "record_ttl": 60, "coredns": {"mode": "custom"}, "probe_port": 443,
}


LATENCY = {"prober": "blackbox-exporter.monitoring.svc:9115", "module": "tcp_connect", "namespace": "monitoring",
           "interval": "30s", "latency_ms": 200, "loss_ratio": 0.05, "for": "5m", "labels": {"release": "prometheus"}}


def spec(**changes):
    out = copy.deepcopy(SPEC)
    out.update(changes)
    return out


def test_the_chapters_locations_plan_cleanly():
    plan = hybrid_dns.plan(spec())
    assert plan["problems"] == []
    assert plan["zones"] == {"on-prem": "onprem.hybrid.example.com", "aws": "aws.hybrid.example.com",
                             "azure": "azure.hybrid.example.com"}
    assert plan["serving"] == ["on-prem"]  # priority 1 wins while it is healthy


def test_each_zone_forwards_to_its_own_resolvers_only():
    blocks = hybrid_dns.server_blocks(spec())
    aws = blocks[blocks.index("aws.hybrid.example.com:53 {"):]
    aws = aws[:aws.index("\n}\n") + 3]
    assert aws == ("aws.hybrid.example.com:53 {\n    errors\n    cache 30\n"
                   "    forward . 172.16.0.53:53 172.16.0.54:5353 {\n        policy sequential\n"
                   "        health_check 5s\n    }\n}\n")
    assert blocks.count("forward .") == 3 and "10.0.0.53" not in aws


def test_custom_mode_writes_coredns_custom_and_corefile_mode_the_whole_corefile():
    custom = hybrid_dns.coredns_object(spec())
    assert (custom["metadata"]["name"], list(custom["data"])) == ("coredns-custom", ["hybrid.server"])
    whole = hybrid_dns.coredns_object(spec(coredns={"mode": "corefile", "cluster_domain": "cluster.example"}))
    corefile = whole["data"]["Corefile"]
    assert whole["metadata"]["name"] == "coredns"
    assert corefile.startswith(".:53 {\n    errors\n")
    assert "kubernetes cluster.example in-addr.arpa ip6.arpa {" in corefile
    assert "    health {\n        lameduck 5s\n    }\n    ready\n" in corefile  # kubeadm's probes
    assert "    prometheus :9153\n" in corefile
    assert corefile.index("forward . /etc/resolv.conf") < corefile.index("onprem.hybrid.example.com:53 {")


def test_failover_follows_priority_and_health():
    healthy = {"10.0.100.10": False, "172.16.100.10": True, "192.168.100.10": True}
    [record] = hybrid_dns.dns_endpoints(spec(), healthy)
    assert record["spec"]["endpoints"] == [{"dnsName": "hybrid-app.hybrid.example.com", "recordType": "A",
                                            "recordTTL": 60, "targets": ["172.16.100.10", "192.168.100.10"]}]
    assert record["metadata"]["annotations"]["fabric.k8snet.io/serving-sites"] == "aws,azure"
    healthy["172.16.100.10"] = False
    [record] = hybrid_dns.dns_endpoints(spec(), healthy)
    assert record["spec"]["endpoints"][0]["targets"] == ["192.168.100.10"]


def test_weighted_records_carry_route53_weights_and_set_identifiers():
    healthy = {"10.0.100.10": False, "172.16.100.10": True, "192.168.100.10": True}
    [record] = hybrid_dns.dns_endpoints(spec(records="weighted"), healthy)
    assert [(e["setIdentifier"], e["targets"], e["providerSpecific"]) for e in record["spec"]["endpoints"]] == [
        ("aws", ["172.16.100.10"], [{"name": "aws/weight", "value": "30"}]),
        ("azure", ["192.168.100.10"], [{"name": "aws/weight", "value": "30"}])]


def test_probe_results_gate_the_plan():
    plan = hybrid_dns.plan(spec())
    assert plan["probes"]["dns"][1] == {"server": "172.16.0.53", "name": "aws.hybrid.example.com", "type": "SOA"}
    assert plan["probes"]["tcp"][0] == {"host": "10.0.100.10", "port": 443}
    dns = [{**q, "ok": q["name"] != "aws.hybrid.example.com", "error": "no answer within 3s"}
           for q in plan["probes"]["dns"]]
    tcp = [{**t, "ok": True} for t in plan["probes"]["tcp"]]
    refused = hybrid_dns.plan(spec(), {"dns": dns, "tcp": tcp})
    assert refused["problems"] == [
        "hybrid_dns_locations 'aws': no resolver answers for aws.hybrid.example.com "
        "(172.16.0.53: no answer within 3s; 172.16.0.54:5353: no answer within 3s)"]
    dead = [{**t, "ok": False} for t in tcp]
    refused = hybrid_dns.plan(spec(), {"dns": [], "tcp": dead})
    assert "no endpoint of any location is healthy" in refused["problems"][0]


def test_policies_open_each_location_on_the_port_and_the_proof_checks_the_rest():
    [entry] = hybrid_dns.policy_config(spec())
    names = [f["name"] for f in entry["flows"]]
    assert names == ["on-prem-to-hybrid-app", "hybrid-app-to-on-prem", "aws-to-hybrid-app", "hybrid-app-to-aws",
                     "azure-to-hybrid-app", "hybrid-app-to-azure"]
    assert entry["flows"][0] == {"name": "on-prem-to-hybrid-app", "from": {"cidr": "10.0.0.0/8"},
                                 "to": {"pods": {"app": "hybrid-app"}}, "ports": [443]}
    assert "ports" not in entry["flows"][1], "the chapter's egress allows every port"
    expect = hybrid_dns.expectations(spec())
    assert {"src": "1.0.0.0", "dst": "hybrid/hybrid-app", "port": 443, "protocol": "TCP", "allowed": False} in expect


@pytest.mark.parametrize("change, message", [
    (lambda s: s["locations"][2].update(cidrs=["172.16.0.0/16"]),
     "hybrid_dns_locations[1].cidrs[0] (172.16.0.0/16) overlaps hybrid_dns_locations[2].cidrs[0] (172.16.0.0/16)"),
    (lambda s: s["locations"][1].update(dns_servers=["dns.aws.example"]),
     "hybrid_dns_locations[1].dns_servers[0]: 'dns.aws.example' is not an IP address"),
    (lambda s: s["locations"][1].update(dns_servers=["172.16.0.53:70000"]),
     "hybrid_dns_locations[1].dns_servers[0]: port 70000 of '172.16.0.53:70000' is not 1-65535"),
    (lambda s: s["locations"][0].update(endpoints=["172.16.0.9"]),
     "hybrid_dns_locations[0].endpoints[0]: 172.16.0.9 is not inside the location's cidrs (10.0.0.0/8)"),
    (lambda s: s["locations"][0].update(cidrs=["10.0.0.0/33"]),
     "hybrid_dns_locations[0].cidrs[0]: '10.0.0.0/33' is not a valid CIDR"),
    (lambda s: s["cluster"].update(pods="172.16.0.0/12"),
     "hybrid_dns_cluster.pods: 172.16.0.0/12 overlaps location 'aws'"),
    (lambda s: s["cluster"].update(location="gcp"), "hybrid_dns_cluster.location: 'gcp' is not a location"),
    (lambda s: s["cluster"].update(services="10.244.0.0/16", pods="10.244.0.0/16"),
     "hybrid_dns_cluster.pods (this cluster) (10.244.0.0/16) overlaps hybrid_dns_cluster.services (this cluster) (10.244.0.0/16): "
     "are the same range"),
    (lambda s: s["cluster"].update(pods="10.244.0.0/33"), "hybrid_dns_cluster.pods: '10.244.0.0/33' is not a valid CIDR"),
    (lambda s: s["locations"][2].update(name="aws"), "hybrid_dns_locations[2].name: 'aws' is used twice"),
    (lambda s: s["locations"][1].update(zone="onprem"),
     "hybrid_dns_locations[1].zone: onprem.hybrid.example.com is also the zone of hybrid_dns_locations[0]"),
    (lambda s: s["locations"][1].update(priority=-1), "hybrid_dns_locations[1].priority: -1 must be a whole number"),
    (lambda s: s["apps"][0].update(port=70000), "hybrid_dns_apps[0].port: port 70000"),
    (lambda s: s.update(domain="Hybrid_Example"), "hybrid_dns_domain (Hybrid_Example): 'Hybrid_Example' must be a DNS label"),
    (lambda s: s.update(records="geo"), "hybrid_dns_records: 'geo' is not one of failover, weighted"),
    (lambda s: s["coredns"].update(mode="helm"), "hybrid_dns_coredns.mode: 'helm' is not one of custom, corefile"),
    (lambda s: s.update(record_mechanism="route53"),
     "hybrid_dns_locations: Route 53 failover is one PRIMARY and one SECONDARY record: two locations of different "
     "priority are needed (have 3 in 2 priority tiers)"),
    (lambda s: s.update(record_mechanism="route53", locations=s["locations"][:2]),
     "hybrid_dns_locations[0].health_check_id: Route 53 fails over from the PRIMARY only when a health check is attached"),
    (lambda s: s.update(record_mechanism="consul"), "hybrid_dns_record_mechanism: 'consul' is not one of probes, route53"),
    (lambda s: s.update(latency={**LATENCY, "prober": "blackbox-exporter"}),
     "hybrid_dns_latency.prober: 'blackbox-exporter' is not <host>:<port> of a blackbox exporter"),
    (lambda s: s.update(latency={**LATENCY, "prober": "blackbox.monitoring.svc:99999"}),
     "hybrid_dns_latency.prober: 99999 is not a port"),
    (lambda s: s.update(latency={**LATENCY, "loss_ratio": 5}), "hybrid_dns_latency.loss_ratio: 5 must be above 0 and below 1"),
    (lambda s: s.update(latency={**LATENCY, "interval": "30 seconds"}), "hybrid_dns_latency.interval"),
    (lambda s: s.update(latency={**LATENCY, "module": "tcp connect"}),
     "hybrid_dns_latency.module: 'tcp connect' is not a blackbox exporter module name"),
])
def test_bad_values_are_named(change, message):
    bad = spec()
    change(bad)
    found = hybrid_dns.plan(bad)["problems"]
    assert any(message in p for p in found), found


@pytest.mark.parametrize("text, parsed", [
    ("10.0.0.53", ("10.0.0.53", 53)), ("10.0.0.53:5353", ("10.0.0.53", 5353)),
    ("fd00::53", ("fd00::53", 53)), ("[fd00::53]:5353", ("fd00::53", 5353)),
])
def test_resolver_addresses(text, parsed):
    assert server_address(text, "x") == parsed


@pytest.mark.parametrize("text", ["10.0.0.53:", "[fd00::53]x", "10.0.0.300", "ns1.example.com"])
def test_resolver_addresses_refused(text):
    with pytest.raises(ValidationError, match="^x: "):
        server_address(text, "x")


def test_a_dns_over_tls_location_forwards_to_port_853_with_its_server_name():
    dot = spec()
    dot["locations"][2].update(dns_servers=["192.168.0.53", "192.168.0.54:8853"], tls_server_name="dns.azure.example.com")
    planned = hybrid_dns.plan(dot)
    assert planned["problems"] == []
    blocks = hybrid_dns.server_blocks(dot)
    azure = blocks[blocks.index("azure.hybrid.example.com:53 {"):]
    assert azure.startswith("azure.hybrid.example.com:53 {\n    errors\n    cache 30\n"
                            "    forward . tls://192.168.0.53:853 tls://192.168.0.54:8853 {\n"
                            "        tls_servername dns.azure.example.com\n        policy sequential\n")
    assert "tls://" not in blocks[:blocks.index("azure.hybrid.example.com:53 {")], "other zones stay plain DNS"
    assert [c.get("tls_server_name") for c in hybrid_dns.probes(dot)["dns"]][-2:] == ["dns.azure.example.com"] * 2
    bad = spec()
    bad["locations"][2]["tls_server_name"] = "dns azure"
    assert any(p.startswith("hybrid_dns_locations[2].tls_server_name") for p in hybrid_dns.plan(bad)["problems"])


def test_the_global_load_balancer_sends_443_to_8443_and_the_policies_admit_8443():
    """The chapter's global-app LoadBalancer (443 -> 8443) beside a policy on 443 dropped every
    request; here the policies admit the pods' port, and the proof refuses the mismatch."""
    from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import model, runner

    lb = spec(apps=[{"name": "hybrid-app", "namespace": "hybrid", "port": 443, "target_port": 8443, "load_balancer": True}])
    planned = hybrid_dns.plan(lb)
    [service] = planned["services"]
    assert service["metadata"]["name"] == "hybrid-app-global" and service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}]
    assert {p for f in planned["policy_config"][0]["flows"] if f["name"].endswith("-to-hybrid-app") for p in f["ports"]} == {8443}
    assert {"src": "10.0.0.0", "dst": "hybrid/hybrid-app", "port": 8443, "protocol": "TCP", "allowed": True} in planned["expect"]
    policies = model.build(planned["policy_config"])
    found = runner.analyse(planned["workloads"] + planned["services"] + policies, [], planned["expect"])
    assert found["violations"] == [] and not [f for f in found["findings"] if f["kind"] == "service-port-blocked"]
    on_443 = model.build(hybrid_dns.policy_config(spec(apps=[{"name": "hybrid-app", "namespace": "hybrid", "port": 443}])))
    chapter = runner.analyse(planned["workloads"] + planned["services"] + on_443, [], [])["findings"]
    assert [f["kind"] for f in chapter if f["kind"] == "service-port-blocked"] == ["service-port-blocked"]


def test_every_location_is_probed_continuously_and_alerted_on():
    """One Probe per location (its endpoints on the probe port, labelled with the location) for
    the blackbox exporter, and the latency and loss alerts; nothing while no prober is named."""
    objects = hybrid_dns.plan(spec(latency=LATENCY))["monitoring"]
    probes = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Probe"}
    assert sorted(probes) == ["hybrid-latency-aws", "hybrid-latency-azure", "hybrid-latency-on-prem"]
    aws = probes["hybrid-latency-aws"]
    assert aws["metadata"] == {"name": "hybrid-latency-aws", "namespace": "monitoring", "labels": {"release": "prometheus"}}
    assert aws["spec"] == {"jobName": "hybrid-latency", "interval": "30s", "module": "tcp_connect",
                           "prober": {"url": "blackbox-exporter.monitoring.svc:9115", "scheme": "http", "path": "/probe"},
                           "targets": {"staticConfig": {"static": ["172.16.100.10:443"], "labels": {"location": "aws"}}}}
    rules = next(o for o in objects if o["kind"] == "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == ["HybridLocationSlow", "HybridLocationLoss"]
    assert rules[0]["expr"].endswith("* 1000 > 200") and rules[1]["expr"].endswith("> 0.05")
    assert hybrid_dns.plan(spec())["monitoring"] == []


def test_route53_fails_over_by_itself_with_the_records_kubefed_writes():
    """With route53, every location's record carries its routing and health check (the code
    kubefed uses), and the role's own health checks no longer gate the records."""
    locations = copy.deepcopy(SPEC["locations"][:2])
    locations[0]["health_check_id"] = "hc-onprem"
    routed = spec(record_mechanism="route53", locations=locations)
    down = {"tcp": [{"host": "10.0.100.10", "ok": False}, {"host": "172.16.100.10", "ok": True}]}
    record = hybrid_dns.plan(routed, down)["records"][0]
    assert "annotations" not in record["metadata"]
    assert [(e["setIdentifier"], e["targets"], e["providerSpecific"]) for e in record["spec"]["endpoints"]] == [
        ("on-prem", ["10.0.100.10"],
         [{"name": "aws/failover", "value": "PRIMARY"}, {"name": "aws/health-check-id", "value": "hc-onprem"}]),
        ("aws", ["172.16.100.10"], [{"name": "aws/failover", "value": "SECONDARY"}])]
    weighted = hybrid_dns.plan(spec(record_mechanism="route53", records="weighted"))["records"][0]["spec"]["endpoints"]
    assert [e["providerSpecific"] for e in weighted] == [[{"name": "aws/weight", "value": w}] for w in ("40", "30", "30")]
    # probes (the default): the on-prem endpoint that failed its check is left out.
    assert hybrid_dns.plan(spec(locations=locations), down)["records"][0]["spec"]["endpoints"][0]["targets"] == ["172.16.100.10"]
