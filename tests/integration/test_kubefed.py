"""kubefed across two real apiservers of the testbed: us-east hosts the federation, eu-west joins.
The join is proven by using the host's copy of the member token against the member."""

from __future__ import annotations

import base64

import pytest

from tests.helpers import install_manifest, recap, run_testbed_playbook, running, wait_for
from tests.packets import controlled, probes_against_reports, until
from tests.netstubs import free_port, listening, stop
from tests.testbed.externaldns import PublishedZone

pytestmark = pytest.mark.testbed
HOST, MEMBER = "us-east", "eu-west"
DATAPLANE_SERVICES = True  # kube-proxy and the cluster DNS on the data plane (conftest.py)
REGION_VIPS = {HOST: "203.0.113.201", MEMBER: "203.0.113.202"}
NS = "kube-federation-system"
GLOBAL_NAME = "financial-app.global.example.com"


def federation(namespace, vip_port=None, **extra):
    out = {
        # The IP plan declares each cluster once (dual-stack); kubefed reads it and adds priorities.
        "fabric_clusters": [
            {"name": HOST, "context": HOST, "kubeconfig": "{{ fabric_testbed_kubeconfig }}",
             "pod_cidrs": ["10.0.0.0/14", "fd00:10::/56"], "service_cidrs": ["10.96.0.0/16", "fd00:96::/112"],
             "vips": ["127.5.0.10"]},
            {"name": MEMBER, "context": MEMBER, "kubeconfig": "{{ fabric_testbed_kubeconfig }}",
             "pod_cidrs": ["10.4.0.0/14", "fd00:14::/56"], "service_cidrs": ["10.97.0.0/16", "fd00:97::/112"],
             "vips": ["127.6.0.10"]}],
        "kubefed_clusters": [{"name": HOST, "priority": 1}, {"name": MEMBER, "priority": 1}],
        "kubefed_services": [{"name": "financial-app", "namespace": namespace, "port": 80, "target_port": 8080}],
        "kubefed_probes": {"enabled": vip_port is not None, "port": vip_port or 443, "timeout": 1},
        # Cross-cluster metrics have a test of their own (they need a monitoring namespace).
        "kubefed_metrics": {"enabled": False, "port": 9090, "interval": "30s", "namespace": "monitoring"}}
    out.update(extra)
    return out


def run(tmp_path, extra, *args):
    return run_testbed_playbook(tmp_path, "multicluster.yml", extra, *args)


def member_token(testbed) -> str:
    secret = testbed.client(HOST).request("GET", f"/api/v1/namespaces/{NS}/secrets/{MEMBER}-credentials")
    return base64.b64decode(secret["data"]["token"]).decode()


def whoami(client) -> str:
    review = client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return review["status"]["userInfo"]["username"]


def writes(testbed, marks):
    return [e for cluster, mark in marks.items() for e in testbed.writes(cluster, since=mark)]


def test_join_export_idempotence_renewal_and_unjoin(testbed, tmp_path, namespace_name):
    host, member = testbed.client(HOST), testbed.client(MEMBER)
    first = run(tmp_path, federation(namespace_name))
    assert first.returncode == 0, first.stdout[-4000:]
    cluster = host.request("GET", f"/apis/core.kubefed.io/v1beta1/namespaces/{NS}/kubefedclusters/{MEMBER}")
    assert cluster["spec"]["apiEndpoint"] == member.server
    assert base64.b64decode(cluster["spec"]["caBundle"]).decode() == member.ca_pem()
    # The host's credentials work against the member, as the member's account for the host.
    as_host = member.with_token(member_token(testbed))
    assert whoami(as_host) == f"system:serviceaccount:{NS}:{MEMBER}-{HOST}"
    assert as_host.request("GET", "/api/v1/namespaces")["items"], "kubefed needs to read everything"
    for client in (host, member):
        export = client.request("GET", f"/apis/multicluster.x-k8s.io/v1alpha1/namespaces/{namespace_name}"
                                       f"/serviceexports/financial-app")
        assert "spec" not in export or not export["spec"]
    record = host.request("GET", f"/apis/externaldns.k8s.io/v1alpha1/namespaces/{namespace_name}"
                                 f"/dnsendpoints/financial-app-global")
    assert record["spec"]["endpoints"][0]["targets"] == ["127.5.0.10", "127.6.0.10"]
    assert record["spec"]["endpoints"][0]["dnsName"] == "financial-app.global.example.com"

    marks = {HOST: testbed.audit_mark(HOST), MEMBER: testbed.audit_mark(MEMBER)}
    token = member_token(testbed)
    again = run(tmp_path, federation(namespace_name))
    assert recap(again.stdout)["changed"] == 0 and writes(testbed, marks) == []
    assert member_token(testbed) == token, "a token that still has time left is kept"

    # A token with less time left than renew_days is replaced, and the new one works.
    renewed = run(tmp_path, federation(namespace_name, kubefed_token_days=400, kubefed_renew_days=380))
    assert renewed.returncode == 0, renewed.stdout[-4000:]
    assert member_token(testbed) != token
    assert whoami(member.with_token(member_token(testbed))) == f"system:serviceaccount:{NS}:{MEMBER}-{HOST}"

    only_host = federation(namespace_name, kubefed_unjoin=[{"name": MEMBER, "context": MEMBER}])
    only_host["kubefed_clusters"] = only_host["kubefed_clusters"][:1]
    left = run(tmp_path, only_host)
    assert left.returncode == 0, left.stdout[-4000:]
    assert host.request("GET", f"/apis/core.kubefed.io/v1beta1/namespaces/{NS}/kubefedclusters/{MEMBER}",
                        allow=(404,)) is None
    assert member.request("GET", f"/api/v1/namespaces/{NS}/serviceaccounts/{MEMBER}-{HOST}", allow=(404,)) is None
    assert member.request("GET", f"/api/v1/namespaces/{NS}")["metadata"].get("deletionTimestamp") is None
    assert host.request("GET", f"/apis/core.kubefed.io/v1beta1/namespaces/{NS}/kubefedclusters/{HOST}")


def test_records_follow_the_clusters_health_on_real_dns(testbed, tmp_path, namespace_name):
    """Health-gated failover on real DNS: external-dns (the real controller, its coredns
    provider) publishes the DNSEndpoint the role writes, and the global name answers with the
    VIPs of the clusters that answered the role's probes; when one VIP stops answering, the next
    run changes the record and the answer follows."""
    port = free_port()
    host_vip, member_vip = listening("127.5.0.10", port), listening("127.6.0.10", port)
    zone = PublishedZone(testbed, HOST, "global.example.com", namespace_name).start()
    try:
        result = run(tmp_path, federation(namespace_name, vip_port=port))
        assert result.returncode == 0, result.stdout[-4000:]
        zone.published(GLOBAL_NAME, ["127.5.0.10", "127.6.0.10"])
        stop(member_vip)
        result = run(tmp_path, federation(namespace_name, vip_port=port))
        assert result.returncode == 0, result.stdout[-4000:]
        record = testbed.client(HOST).request(
            "GET", f"/apis/externaldns.k8s.io/v1alpha1/namespaces/{namespace_name}/dnsendpoints/financial-app-global")
        assert record["spec"]["endpoints"][0]["targets"] == ["127.5.0.10"]
        zone.published(GLOBAL_NAME, ["127.5.0.10"])
        stop(host_vip)
        marks = {HOST: testbed.audit_mark(HOST), MEMBER: testbed.audit_mark(MEMBER)}
        refused = run(tmp_path, federation(namespace_name, vip_port=port))
        assert refused.returncode != 0 and "no cluster's VIP answers" in refused.stdout
        assert writes(testbed, marks) == []
        assert zone.ask(GLOBAL_NAME) == ("NOERROR", ["127.5.0.10"]), "a refused run leaves the last answer"
    finally:
        zone.stop()
        stop(host_vip)
        stop(member_vip)


def test_overlapping_pod_ranges_fail_before_any_write(testbed, tmp_path, namespace_name):
    bad = federation(namespace_name)
    bad["fabric_clusters"][1]["pod_cidrs"] = ["10.2.0.0/16", "fd00:10:0:80::/64"]  # inside us-east's ranges
    marks = {HOST: testbed.audit_mark(HOST), MEMBER: testbed.audit_mark(MEMBER)}
    result = run(tmp_path, bad)
    text = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert ("fabric_clusters[0].pod_cidrs[0] (us-east) (10.0.0.0/14) overlaps fabric_clusters[1].pod_cidrs[0] (eu-west) "
            "(10.2.0.0/16): fabric_clusters[1].pod_cidrs[0] (eu-west) lies inside fabric_clusters[0].pod_cidrs[0] (us-east)"
            in text), text[-3000:]
    assert ("fabric_clusters[0].pod_cidrs[1] (us-east) (fd00:10::/56) overlaps fabric_clusters[1].pod_cidrs[1] (eu-west) "
            "(fd00:10:0:80::/64)" in text), "IPv6 ranges are checked too"
    assert writes(testbed, marks) == []

    # A range both the plan and the role declare must be the same.
    twice = federation(namespace_name)
    twice["kubefed_clusters"][1]["pod_cidr"] = "10.8.0.0/14"
    result = run(tmp_path, twice)
    assert result.returncode != 0
    assert ("kubefed_clusters[1].pod_cidr: '10.8.0.0/14' differs from fabric_clusters[1].pod_cidrs "
            "['10.4.0.0/14', 'fd00:14::/56'] (eu-west); declare it once, in fabric_clusters" in " ".join(result.stdout.split()))
    assert writes(testbed, marks) == []


def test_check_mode_writes_nothing_anywhere(testbed, tmp_path, namespace_name):
    marks = {HOST: testbed.audit_mark(HOST), MEMBER: testbed.audit_mark(MEMBER)}
    result = run(tmp_path, federation(namespace_name), "--check", "--diff")
    assert result.returncode == 0, result.stdout[-4000:]
    assert writes(testbed, marks) == []


def with_regions(namespace, **dns):
    out = federation(namespace)
    out["kubefed_clusters"][0].update(region="us-east-1", priority=1, health_check_id="hc-us-east")
    out["kubefed_clusters"][1].update(region="eu-west-1", priority=2)
    out["kubefed_global_dns"] = {"domain": "global.example.com", "ttl": 60, **dns}
    return out


def gslb(client, namespace):
    return client.request("GET", f"/apis/k8gb.io/v1beta1/namespaces/{namespace}/gslbs/financial-app", allow=(404,))


def test_k8gb_gslbs_in_every_cluster_fail_over_without_ansible(testbed, tmp_path, namespace_name):
    """k8gb: the same Gslb and Ingress in both clusters; k8gb (not the playbook) checks health and
    answers. Failover names the primary's geo tag; weighted becomes round robin by region."""
    failover = with_regions(namespace_name, records="failover", mechanism="k8gb")
    first = run(tmp_path, failover)
    assert first.returncode == 0, first.stdout[-4000:]
    for cluster in (HOST, MEMBER):
        client = testbed.client(cluster)
        spec = gslb(client, namespace_name)["spec"]
        assert spec["strategy"] == {"type": "failover", "primaryGeoTag": "us-east-1", "dnsTtlSeconds": 60}
        assert spec["resourceRef"] == {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "financial-app"}
        ingress = client.request("GET", f"/apis/networking.k8s.io/v1/namespaces/{namespace_name}/ingresses/financial-app")
        assert ingress["spec"]["rules"][0]["host"] == "financial-app.global.example.com"
        assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {"name": "financial-app", "port": {"number": 80}}
    # No controller-published record: k8gb answers for the name.
    assert testbed.client(HOST).request("GET", f"/apis/externaldns.k8s.io/v1alpha1/namespaces/{namespace_name}"
                                               f"/dnsendpoints/financial-app-global", allow=(404,)) is None
    marks = {HOST: testbed.audit_mark(HOST), MEMBER: testbed.audit_mark(MEMBER)}
    again = run(tmp_path, failover)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0 and writes(testbed, marks) == []

    weighted = with_regions(namespace_name, records="weighted", mechanism="k8gb")
    weighted["kubefed_clusters"][0]["weight"], weighted["kubefed_clusters"][1]["weight"] = 3, 1
    assert run(tmp_path, weighted).returncode == 0
    assert gslb(testbed.client(MEMBER), namespace_name)["spec"]["strategy"] == {
        "type": "roundRobin", "weight": {"us-east-1": 3, "eu-west-1": 1}, "dnsTtlSeconds": 60}


def test_route53_routing_records_carry_external_dns_aws_properties(testbed, tmp_path, namespace_name):
    """route53: one DNSEndpoint with every cluster's record; Route 53 routes and checks health."""
    path = f"/apis/externaldns.k8s.io/v1alpha1/namespaces/{namespace_name}/dnsendpoints/financial-app-global"
    result = run(tmp_path, with_regions(namespace_name, records="failover", mechanism="route53"))
    assert result.returncode == 0, result.stdout[-4000:]
    endpoints = testbed.client(HOST).request("GET", path)["spec"]["endpoints"]
    assert [(e["setIdentifier"], e["targets"], e["providerSpecific"]) for e in endpoints] == [
        ("us-east", ["127.5.0.10"], [{"name": "aws/failover", "value": "PRIMARY"}, {"name": "aws/health-check-id", "value": "hc-us-east"}]),
        ("eu-west", ["127.6.0.10"], [{"name": "aws/failover", "value": "SECONDARY"}])]
    assert gslb(testbed.client(HOST), namespace_name) is None, "no Gslb unless k8gb answers"

    latency = run(tmp_path, with_regions(namespace_name, records="latency", mechanism="route53"))
    assert latency.returncode == 0, latency.stdout[-3000:]
    endpoints = testbed.client(HOST).request("GET", path)["spec"]["endpoints"]
    assert [p for e in endpoints for p in e["providerSpecific"] if p["name"] == "aws/region"] == [
        {"name": "aws/region", "value": "us-east-1"}, {"name": "aws/region", "value": "eu-west-1"}]

    geo = with_regions(namespace_name, records="geolocation", mechanism="route53")
    geo["kubefed_clusters"][0]["geo"], geo["kubefed_clusters"][1]["geo"] = "NA", "DE"
    mark = testbed.audit_mark(HOST)
    refused = run(tmp_path, geo)
    assert refused.returncode != 0 and "give one cluster geo: '*' (the default record)" in " ".join(refused.stdout.split())
    assert testbed.writes(HOST, since=mark) == []
    geo["kubefed_clusters"][0]["geo"] = "*"
    assert run(tmp_path, geo).returncode == 0
    endpoints = testbed.client(HOST).request("GET", path)["spec"]["endpoints"]
    assert [e["providerSpecific"][0] for e in endpoints] == [{"name": "aws/geolocation-country-code", "value": "*"},
                                                             {"name": "aws/geolocation-country-code", "value": "DE"}]


def test_eu_data_is_reachable_from_eu_only_and_a_change_that_would_open_it_writes_nothing(testbed, tmp_path, namespace_name):
    ledger = f"{namespace_name}-eu"
    extra = with_regions(namespace_name, records="failover", mechanism="probes")
    for entry in extra["fabric_clusters"]:  # VIPs on each region's LAN, inside the LB clients' range
        entry["vips"] = [REGION_VIPS[entry["name"]]]
    extra["kubefed_services"].append({"name": "ledger", "namespace": ledger, "port": 443, "target_port": 8443, "data_region": "eu"})
    extra["fabric_build_dir"] = str(tmp_path / "build")
    # Clients from everywhere (not the default): warned about, and other regions' pods still kept out.
    extra["kubefed_lb"] = {"enabled": True, "port": 443, "clients": ["0.0.0.0/0"],
                           "address_annotation": "metallb.io/loadBalancerIPs"}
    result = run(tmp_path, extra)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "WARNING: kubefed_lb.clients: 0.0.0.0/0 admits every IPv4 address" in " ".join(result.stdout.split())
    host, member = testbed.client(HOST), testbed.client(MEMBER)
    assert member.request("GET", f"/api/v1/namespaces/{ledger}/services/ledger")
    assert host.request("GET", f"/api/v1/namespaces/{ledger}/services/ledger", allow=(404,)) is None, "EU data never runs in us-east"
    policies = host.request("GET", f"/apis/networking.k8s.io/v1/namespaces/{ledger}/networkpolicies")["items"]
    sources = sorted((b["ipBlock"]["cidr"], tuple(b["ipBlock"].get("except", ()))) for p in policies
                     for rule in p["spec"].get("ingress") or [] for b in rule.get("from") or [] if "ipBlock" in b)
    # eu-west's pods (both families), and the regional LoadBalancer's clients - never us-east's pods.
    assert sources == [("0.0.0.0/0", ("10.0.0.0/14",)), ("10.4.0.0/14", ()), ("fd00:14::/56", ())], sources
    # Each cluster's live policies are proven where the data runs: eu-west's report lets eu-west's
    # pods in, and none of us-east's (IPv4 or IPv6).
    report = (tmp_path / "build" / "multicluster" / "report" / MEMBER / "connlist.txt").read_text()
    into_ledger = [line for line in report.splitlines() if f"=> {ledger}/ledger" in line]
    assert any(line.startswith("10.4.") for line in into_ledger) and any(line.startswith("fd00:14:") for line in into_ledger), into_ledger
    assert not any(line.startswith(("10.0.", "10.1.", "10.2.", "10.3.", "fd00:10:")) for line in into_ledger), into_ledger
    host_report = (tmp_path / "build" / "multicluster" / "report" / HOST / "connlist.txt").read_text()
    assert f"=> {ledger}/ledger" not in host_report, "ledger does not run in us-east"

    marks = {HOST: testbed.audit_mark(HOST), MEMBER: testbed.audit_mark(MEMBER)}
    extra["kubefed_services"][-1]["clusters"] = ["us-east", "eu-west"]
    refused = run(tmp_path, extra)
    text = " ".join(refused.stdout.split())
    assert refused.returncode != 0
    assert "kubefed_services[1].clusters: 'us-east' (region us-east-1) is outside data region eu: ledger's eu data would leave eu" in text
    assert writes(testbed, marks) == []


def test_cross_cluster_metrics_monitors_in_every_cluster_and_the_hosts_federation(testbed, tmp_path, namespace_name):
    for cluster in (HOST, MEMBER):
        testbed.client(cluster).request("POST", "/api/v1/namespaces", allow=(409,), body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}})
    extra = federation(namespace_name, kubefed_metrics={"enabled": True, "port": 9090, "interval": "30s", "namespace": "monitoring"})
    extra["kubefed_clusters"][1]["prometheus"] = "https://prometheus.eu-west.example.com:443"
    result = run(tmp_path, extra)
    assert result.returncode == 0, result.stdout[-4000:]
    for cluster in (HOST, MEMBER):
        monitor = testbed.client(cluster).request(
            "GET", f"/apis/monitoring.coreos.com/v1/namespaces/{namespace_name}/servicemonitors/financial-app")
        assert monitor["spec"]["endpoints"] == [{"port": "metrics", "interval": "30s"}]
    scrape = testbed.client(HOST).request("GET", "/apis/monitoring.coreos.com/v1alpha1/namespaces/monitoring/scrapeconfigs/federate-eu-west")
    assert scrape["spec"]["staticConfigs"] == [{"targets": ["prometheus.eu-west.example.com:443"], "labels": {"cluster": "eu-west"}}]
    assert scrape["spec"]["params"] == {"match[]": [f'{{namespace=~"{namespace_name}"}}']}
    rules = testbed.client(HOST).request("GET", "/apis/monitoring.coreos.com/v1/namespaces/monitoring/prometheusrules/kubefed-federation")
    assert [r["alert"] for r in rules["spec"]["groups"][0]["rules"]] == ["FederatedClusterMetricsMissing", "SharedServiceDownInCluster"]
    marks = {HOST: testbed.audit_mark(HOST), MEMBER: testbed.audit_mark(MEMBER)}
    again = run(tmp_path, extra)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0 and writes(testbed, marks) == []


def test_cross_cluster_flows_on_packets(testbed, dataplane, tmp_path, namespace_name):
    """Both clusters' proofs on real packets (one flat pod network, as Submariner gives): each
    cluster's financial-app reaches the other's, only eu-west's pods reach the EU-only ledger (a
    client pod in each cluster, in a namespace no policy selects, tries), and of the outside only
    the LoadBalancer's clients' range gets in."""
    ledger = f"{namespace_name}-eu"
    extra = with_regions(namespace_name, records="failover", mechanism="probes")
    for entry in extra["fabric_clusters"]:  # VIPs on each region's LAN, inside the LB clients' range
        entry["vips"] = [REGION_VIPS[entry["name"]]]
    extra["kubefed_services"].append({"name": "ledger", "namespace": ledger, "port": 443, "target_port": 8443,
                                      "data_region": "eu"})
    extra["fabric_build_dir"] = str(tmp_path / "build")
    extra["kubefed_lb"] = {"enabled": True, "port": 443, "clients": ["203.0.113.0/24"],
                           "address_annotation": "metallb.io/loadBalancerIPs"}
    result = run(tmp_path, extra)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "financial-app, ledger all ask MetalLB for eu-west" in " ".join(result.stdout.split())
    # The pods the services select, named as the proof's stand-ins (the reports name them so).
    clients = f"{namespace_name}-clients"
    placed = {HOST: [(namespace_name, "financial-app", 8080), (clients, "client", 9999)],
              MEMBER: [(namespace_name, "financial-app", 8080), (ledger, "ledger", 8443), (clients, "client", 9999)]}
    for cluster, pods in placed.items():
        client = testbed.client(cluster)
        client.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                           "metadata": {"name": clients}})
        for ns, name, port in pods:
            client.request("POST", f"/api/v1/namespaces/{ns}/pods", body={
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "registry.invalid/app:1",
                                         "ports": [{"containerPort": port}]}]}})
        wait_for(lambda: all((client.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}").get("status") or {})
                             .get("podIP") for ns, name, _port in pods), f"pods running in {cluster}")
    dataplane.add_outside("lb-clients", "203.0.113.10")
    dataplane.add_outside("elsewhere", "198.51.100.7")
    report = tmp_path / "build" / "multicluster" / "report"
    result = probes_against_reports(dataplane, testbed, {
        HOST: ([namespace_name, ledger], report / HOST / "connlist.txt"),
        MEMBER: ([namespace_name, ledger], report / MEMBER / "connlist.txt")}, ["lb-clients", "elsewhere"],
        clients=((HOST, clients), (MEMBER, clients)))
    assert result["pods"] == 3 and not result["wrong"], result["wrong"]
    matrix = result["matrix"]
    us_app, eu_app = f"{HOST}/{namespace_name}/financial-app", f"{MEMBER}/{namespace_name}/financial-app"
    eu_ledger = f"{MEMBER}/{ledger}/ledger"
    assert matrix[(us_app, eu_app, "8080/TCP")] == "open" and matrix[(eu_app, us_app, "8080/TCP")] == "open"
    assert matrix[(f"{MEMBER}/{clients}/client", eu_ledger, "8443/TCP")] == "open"
    assert matrix[(f"{HOST}/{clients}/client", eu_ledger, "8443/TCP")] == "refused", "EU data stays in the EU"
    assert matrix[(us_app, eu_ledger, "8443/TCP")] == "refused" and matrix[(eu_app, eu_ledger, "8443/TCP")] == "refused"
    assert matrix[("outside:lb-clients", eu_ledger, "8443/TCP")] == "open"
    assert matrix[("outside:elsewhere", eu_ledger, "8443/TCP")] == "refused"
    assert not dataplane.enforcer_failures()
    for cluster in placed:
        testbed.client(cluster).request("DELETE", f"/api/v1/namespaces/{clients}", allow=(404,))
    lb_on_metallb(testbed, dataplane, tmp_path, {HOST: [namespace_name], MEMBER: [namespace_name, ledger]})


def lb_on_metallb(testbed, dataplane, tmp_path, namespaces):
    """The per-region LoadBalancers answer on their VIPs, for real: MetalLB (its upstream
    manifest, and a pool holding the region's VIP, as the platform team sets up bare metal)
    assigns the VIP the role's annotation asks for and announces it on the region's LAN, where
    a client of the LoadBalancer's range reaches the service with its own address kept. In
    eu-west two services ask for the one VIP and one gets it, as the run's warning says."""
    from tests.testbed.bundle import write_addons

    manifest = write_addons(tmp_path / "addons") / "metallb-native.yaml"
    try:
        for cluster, vip in REGION_VIPS.items():
            client = testbed.client(cluster)
            install_manifest(client, manifest)
            # autoAssign off: the VIP goes only to a Service that asks for it (the role's
            # annotation), not to another LoadBalancer Service of the cluster (another test's).
            for kind, spec in (("IPAddressPool", {"addresses": [f"{vip}/32"], "autoAssign": False}),
                               ("L2Advertisement", {"ipAddressPools": ["region"]})):
                client.request("POST", f"/apis/metallb.io/v1beta1/namespaces/metallb-system/{kind.lower()}s", body={
                    "apiVersion": "metallb.io/v1beta1", "kind": kind,
                    "metadata": {"name": "region", "namespace": "metallb-system"}, "spec": spec})
            wait_for(lambda: running(client, "metallb-system", "component=speaker", 3)
                     and running(client, "metallb-system", "component=controller", 1), f"MetalLB's pods in {cluster}")
        dataplane.sync()
        for index, (cluster, vip) in enumerate(REGION_VIPS.items()):
            dataplane.run_metallb(cluster)
            dataplane.add_lan(cluster, cluster, "203.0.113.0/24")
            dataplane.add_lan_client(cluster, f"lb-client-{cluster}", f"203.0.113.{11 + index}")
            controlled(dataplane, lambda: [assigned(testbed, cluster, ns) for ns in namespaces[cluster]].count([vip]) == 1,
                       f"MetalLB assigns {vip} in {cluster}")
        dataplane.settle()
        for index, (cluster, vip) in enumerate(REGION_VIPS.items()):
            source, key = f"outside:lb-client-{cluster}", f"{vip}:443/TCP"
            until(lambda: dataplane.probe_addresses([source], [(vip, 443, "TCP")])[(source, key)] == "open", timeout=30)
            seen = dataplane.probe_addresses([source], [(vip, 443, "TCP")], peers=True)
            assert seen == {(source, key): f"open from 203.0.113.{11 + index}"}, seen
    finally:
        for cluster in REGION_VIPS:  # MetalLB leaves; its CRDs stay for the suite
            install_manifest(testbed.client(cluster), manifest, keep=("CustomResourceDefinition",))


def assigned(testbed, cluster, namespace) -> list[str]:
    """The addresses MetalLB gave the LoadBalancer of the service in ``namespace``."""
    svc = next(s for s in testbed.client(cluster).request("GET", f"/api/v1/namespaces/{namespace}/services")["items"]
               if s["metadata"]["name"].endswith("-lb"))
    return [i.get("ip") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def test_the_global_name_gets_a_certificate_cert_managers_crd_accepts_in_every_cluster(testbed, tmp_path, namespace_name):
    """kubefed_global_tls mode cert-manager: a Certificate for <service>.<domain> in each cluster
    the service runs in, accepted by cert-manager's own CRD (v1.21.2) on both apiservers; a
    second run changes nothing."""
    settings = {"mode": "cert-manager", "issuer": "ClusterIssuer/global-ca", "days": 90, "renew_days": 30}
    extra = federation(namespace_name, kubefed_global_tls=settings)
    result = run(tmp_path, extra)
    assert result.returncode == 0, result.stdout[-5000:]
    for cluster in (HOST, MEMBER):
        cert = testbed.client(cluster).request(
            "GET", f"/apis/cert-manager.io/v1/namespaces/{namespace_name}/certificates/financial-app-global-tls")
        assert cert["spec"]["dnsNames"] == [GLOBAL_NAME] and cert["spec"]["secretName"] == "financial-app-global-tls"
        assert cert["spec"]["issuerRef"]["kind"] == "ClusterIssuer" and cert["spec"]["renewBefore"] == "720h"
    again = run(tmp_path, extra)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
