"""hybrid_dns against real things: the Corefiles it writes are run by a real CoreDNS (built by the
testbed) forwarding to real resolvers; health checks probe real resolvers and TCP listeners; the
role converges on the testbed's us-east apiserver."""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import time

import dns.message
import dns.query
import dns.rcode
import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import hybrid_dns
from tests.helpers import on_cluster, recap, run_playbook, run_testbed_playbook, wait_for
from tests.netstubs import free_port, listening, stop
from tests.packets import probes_against_report
from tests.testbed import build
from tests.testbed.externaldns import PublishedZone

pytestmark = pytest.mark.testbed
DATAPLANE_SERVICES = True  # kube-proxy and the cluster DNS on the data plane (conftest.py)
CLUSTER = "us-east"
LOCATIONS = ("on-prem", "aws", "azure")
GLOBAL_NAME = "hybrid-app.hybrid.example.com"


def ask(port: int, name: str, rtype: str = "A", timeout: float = 2.0):
    answer = dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=port, timeout=timeout)
    return dns.rcode.to_text(answer.rcode()), sorted(str(r) for rrset in answer.answer for r in rrset)


class CoreDNS:
    """A real CoreDNS process with a given Corefile; waits until it answers on ``port``."""

    def __init__(self, workdir, corefile: str, port: int | None, files: dict | None = None, tls_port: int | None = None):
        workdir.mkdir(parents=True, exist_ok=True)
        for name, text in (files or {}).items():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            (workdir / name).write_text(text)
        (workdir / "Corefile").write_text(corefile)
        self.log = workdir / "coredns.log"
        self.proc = subprocess.Popen([str(build.build_tool("coredns")), "-conf", "Corefile"], cwd=workdir,
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if tls_port:  # a DoT server: ready once it accepts connections
                    socket.create_connection(("127.0.0.1", tls_port), timeout=0.3).close()
                else:
                    ask(port, "ready.check.", timeout=0.3)
                return
            except (dns.exception.Timeout, OSError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"CoreDNS did not start:\n{self.log.read_text()}")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def resolvers(tmp_path_factory):
    """One real resolver per location (one CoreDNS, a server block each): every name they are
    asked for answers with the location's own address, so a reply says who answered."""
    ports = {name: free_port() for name in LOCATIONS}
    blocks = []
    for i, (name, port) in enumerate(ports.items(), 1):
        blocks.append(f""".:{port} {{
    bind 127.0.0.1
    template IN A . {{
        answer "{{{{ .Name }}}} 60 IN A 203.0.113.{i}"
    }}
    template IN SOA . {{
        answer "{{{{ .Name }}}} 60 IN SOA ns.{name}.test. admin.{name}.test. 1 60 60 60 60"
    }}
}}
""")
    server = CoreDNS(tmp_path_factory.mktemp("resolvers"), "".join(blocks), list(ports.values())[0])
    yield {name: (f"127.0.0.1:{port}", f"203.0.113.{i}") for i, (name, port) in enumerate(ports.items(), 1)}
    server.stop()


def spec_for(resolvers, **coredns) -> dict:
    return {"domain": "hybrid.example.com",
            "locations": [{"name": name, "cidrs": [f"127.{i}.0.0/16"], "dns_servers": [resolvers[name][0]],
                           "endpoints": [f"127.{i}.0.10"], "priority": 1 if i == 1 else 2}
                          for i, name in enumerate(LOCATIONS, 1)],
            "cluster": {"location": "on-prem"},  # its ranges: the testbed inventory's fabric_clusters
            "apps": [{"name": "hybrid-app", "namespace": "hybrid", "port": 443}],
            "coredns": coredns}


def test_custom_mode_blocks_send_each_zone_to_its_own_location(tmp_path, resolvers):
    """k3s/AKS style: the cluster's Corefile imports the role's coredns-custom key."""
    port = free_port()
    spec = spec_for(resolvers, mode="custom", port=port, bind=["127.0.0.1"])
    [(key, blocks)] = hybrid_dns.coredns_object(spec)["data"].items()
    corefile = f".:{port} {{\n    bind 127.0.0.1\n    whoami\n}}\nimport custom/*.server\n"
    server = CoreDNS(tmp_path, corefile, port, files={f"custom/{key}": blocks})
    try:
        for i, name in enumerate(LOCATIONS, 1):
            zone = hybrid_dns.zone_of({"name": name}, "hybrid.example.com")
            assert ask(port, f"app.{zone}") == ("NOERROR", [f"203.0.113.{i}"]), name
        # Outside the location zones CoreDNS answers itself (whoami), nothing is forwarded.
        assert ask(port, "app.hybrid.example.com") == ("NOERROR", [])
    finally:
        server.stop()


def test_corefile_mode_keeps_the_cluster_and_adds_the_zones(tmp_path, testbed, resolvers):
    """kubeadm style: the role's whole Corefile; its kubernetes block serves Services from the
    testbed apiserver while the location zones go to their resolvers."""
    port = free_port()
    spec = spec_for(resolvers, mode="corefile", port=port, bind=["127.0.0.1"], health=False, ready=False,
                    prometheus=False, upstream=resolvers["on-prem"][0],
                    kubernetes_options=[f"kubeconfig {testbed.kubeconfig} {CLUSTER}"])
    corefile = hybrid_dns.coredns_object(spec)["data"]["Corefile"]
    server = CoreDNS(tmp_path, corefile, port)
    try:
        deadline = time.monotonic() + 15  # the kubernetes plugin syncs with the apiserver first
        while ask(port, "kubernetes.default.svc.cluster.local")[1] != ["10.96.0.1"] and time.monotonic() < deadline:
            time.sleep(0.3)
        assert ask(port, "kubernetes.default.svc.cluster.local") == ("NOERROR", ["10.96.0.1"])
        assert ask(port, "app.aws.hybrid.example.com") == ("NOERROR", ["203.0.113.2"])
        assert ask(port, "app.azure.hybrid.example.com") == ("NOERROR", ["203.0.113.3"])
    finally:
        server.stop()


@pytest.fixture
def listeners():
    """TCP listeners on the locations' endpoint addresses (127.<i>.0.10), stoppable one by one."""
    port = free_port()
    socks = {name: listening(f"127.{i}.0.10", port) for i, name in enumerate(LOCATIONS, 1)}
    yield port, socks
    for sock in socks.values():
        stop(sock)


def role_vars(resolvers, port, namespace, **extra):
    spec = spec_for(resolvers)
    out = {"hybrid_dns_locations": spec["locations"], "hybrid_dns_cluster": spec["cluster"],
           "hybrid_dns_apps": [{"name": "hybrid-app", "namespace": namespace, "port": 443, "create_namespace": True}],
           "hybrid_dns_probes": {"resolvers": True, "endpoints": True, "port": port, "timeout": 1}}
    out.update(extra)
    return out


def run_role(tmp_path, extra_vars, *args):
    return run_testbed_playbook(tmp_path, "hybrid.yml", extra_vars, *args)


def record(testbed, namespace):
    return testbed.client(CLUSTER).request(
        "GET", f"/apis/externaldns.k8s.io/v1alpha1/namespaces/{namespace}/dnsendpoints/hybrid-app-global")


def test_records_follow_health_and_priority_on_the_cluster(testbed, tmp_path, resolvers, listeners, namespace_name):
    """The records follow the locations' health, and they are served for real: external-dns
    (the real controller, coredns provider) publishes the DNSEndpoint the role writes, and a
    cluster CoreDNS running the coredns-custom blocks the role wrote (K3s' import) answers the
    global name from the published zone and a location's names from that location's resolver."""
    port, socks = listeners
    dns_port = free_port()
    extra = role_vars(resolvers, port, namespace_name, hybrid_dns_coredns={
        "mode": "custom", "namespace": "kube-system", "port": dns_port, "cache_seconds": 30, "health_check": "5s",
        "cluster_domain": "cluster.local", "upstream": "/etc/resolv.conf"})
    zone = PublishedZone(testbed, CLUSTER, "hybrid.example.com", namespace_name).start()
    try:
        records_follow_health(testbed, tmp_path, extra, socks, namespace_name, zone, dns_port)
    finally:
        zone.stop()


def test_external_dns_the_role_installs_publishes_with_its_chart_rbac(
        testbed, tmp_path, resolvers, listeners, namespace_name, fresh_cluster, controller_bundle):
    """On a fresh cluster, the run without external-dns is refused naming it; with
    hybrid_dns_controllers it installs external-dns's chart (rendered for the coredns provider)
    from the bundle first, and the real external-dns, running as the chart's service account with
    the chart's RBAC, publishes the record the role wrote."""
    port, _unused = listeners
    extra = {**role_vars(resolvers, port, namespace_name), **on_cluster(testbed, fresh_cluster)}
    mark = testbed.audit_mark(fresh_cluster)
    refused = run_role(tmp_path, extra)
    assert refused.returncode != 0
    assert "external-dns: DNSEndpoint (externaldns.k8s.io/v1alpha1)" in refused.stdout, refused.stdout[-3000:]
    assert testbed.writes(fresh_cluster, since=mark) == []

    installed = run_role(tmp_path, {**extra, "hybrid_dns_controllers": ["external-dns"],
                                    "hybrid_dns_controllers_dir": str(controller_bundle)})
    assert installed.returncode == 0, installed.stdout[-4000:]
    zone = PublishedZone(testbed, fresh_cluster, "hybrid.example.com", namespace_name,
                         account=("external-dns", "external-dns")).start()
    try:
        zone.published(GLOBAL_NAME, ["127.1.0.10"])
    finally:
        zone.stop()


def records_follow_health(testbed, tmp_path, extra, socks, namespace_name, zone, dns_port):
    first = run_role(tmp_path, extra)
    assert first.returncode == 0, first.stdout[-4000:]
    # The plan is proven before the first write, and what was written is proven again.
    order = [first.stdout.index(f"TASK [k8snet.fabric.hybrid_dns : {name}") for name in (
        "Prove the plan before anything is written", "Application namespaces, global records and LoadBalancers",
        "Prove it again over what was written")]
    assert order == sorted(order), order
    assert record(testbed, namespace_name)["spec"]["endpoints"][0]["targets"] == ["127.1.0.10"]
    custom = testbed.client(CLUSTER).request("GET", "/api/v1/namespaces/kube-system/configmaps/coredns-custom")
    assert f"aws.hybrid.example.com:{dns_port} {{" in custom["data"]["hybrid.server"]
    zone.published(GLOBAL_NAME, ["127.1.0.10"])
    # The cluster's CoreDNS as K3s runs it: everything else to its upstream (here the zone
    # external-dns publishes), plus the role's blocks imported from coredns-custom.
    cluster_dns = CoreDNS(tmp_path / "cluster-dns", f".:{dns_port} {{\n    forward . 127.0.0.1:{zone.port}\n}}\n"
                          "import custom/*.server\n", dns_port,
                          files={"custom/hybrid.server": custom["data"]["hybrid.server"]})
    try:
        assert ask(dns_port, GLOBAL_NAME) == ("NOERROR", ["127.1.0.10"])
        assert ask(dns_port, "db.aws.hybrid.example.com") == ("NOERROR", ["203.0.113.2"])
    finally:
        cluster_dns.stop()

    mark = testbed.audit_mark(CLUSTER)
    again = run_role(tmp_path, extra)
    assert recap(again.stdout)["changed"] == 0 and testbed.writes(CLUSTER, since=mark) == []

    stop(socks["on-prem"])  # the primary location stops answering: fail over to the next tier
    failed_over = run_role(tmp_path, extra, "--diff")
    assert failed_over.returncode == 0, failed_over.stdout[-4000:]
    assert record(testbed, namespace_name)["spec"]["endpoints"][0]["targets"] == ["127.2.0.10", "127.3.0.10"]
    assert record(testbed, namespace_name)["metadata"]["annotations"]["fabric.k8snet.io/serving-sites"] == "aws,azure"
    zone.published(GLOBAL_NAME, ["127.2.0.10", "127.3.0.10"])

    weighted = run_role(tmp_path, {**extra, "hybrid_dns_records": "weighted"})
    assert weighted.returncode == 0, weighted.stdout[-4000:]
    endpoints = record(testbed, namespace_name)["spec"]["endpoints"]
    assert [(e["setIdentifier"], e["providerSpecific"]) for e in endpoints] == [
        ("aws", [{"name": "aws/weight", "value": "1"}]), ("azure", [{"name": "aws/weight", "value": "1"}])]


def refused_without_writes(testbed, tmp_path, extra_vars, message):
    """The run fails saying ``message`` and the cluster saw no write at all."""
    mark = testbed.audit_mark(CLUSTER)
    result = run_role(tmp_path, extra_vars)
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split())
    assert testbed.writes(CLUSTER, since=mark) == []
    return result


def test_locations_are_probed_continuously_by_probes_the_crd_accepts(testbed, tmp_path, resolvers, listeners,
                                                                     namespace_name):
    """With a blackbox exporter named, the role writes a Probe per location and the latency
    alerts, accepted by the Prometheus Operator's CRDs and checked by promtool first; a second run
    writes nothing; without the prober they are pruned."""
    port, _socks = listeners
    client = testbed.client(CLUSTER)
    monitoring = f"{namespace_name}-mon"
    client.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": monitoring}})
    latency = {"prober": "blackbox-exporter.monitoring.svc:9115", "module": "tcp_connect", "namespace": monitoring,
               "interval": "30s", "latency_ms": 200, "loss_ratio": 0.05, "for": "5m", "labels": {"release": "prometheus"}}
    extra = role_vars(resolvers, port, namespace_name, hybrid_dns_latency=latency)
    extra["hybrid_dns_probes"]["endpoints"] = False  # other tests stop the listeners; health is theirs
    try:
        probed_continuously(testbed, tmp_path, client, extra, latency, monitoring, port)
    finally:
        client.request("DELETE", f"/api/v1/namespaces/{monitoring}", allow=(404,))


def probed_continuously(testbed, tmp_path, client, extra, latency, monitoring, port):
    first = run_role(tmp_path, extra)
    assert first.returncode == 0, first.stdout[-4000:]
    assert "Check the latency alerts with Prometheus's own promtool" in first.stdout
    probes = client.request("GET", f"/apis/monitoring.coreos.com/v1/namespaces/{monitoring}/probes")["items"]
    assert sorted(p["metadata"]["name"] for p in probes) == [f"hybrid-latency-{name}" for name in sorted(LOCATIONS)]
    aws = next(p for p in probes if p["metadata"]["name"] == "hybrid-latency-aws")
    assert aws["spec"]["targets"]["staticConfig"] == {"static": [f"127.2.0.10:{port}"], "labels": {"location": "aws"}}
    assert client.request("GET", f"/apis/monitoring.coreos.com/v1/namespaces/{monitoring}/prometheusrules/hybrid-latency")

    mark = testbed.audit_mark(CLUSTER)
    again = run_role(tmp_path, extra)
    assert recap(again.stdout)["changed"] == 0 and testbed.writes(CLUSTER, since=mark) == []

    off = run_role(tmp_path, {**extra, "hybrid_dns_latency": {**latency, "prober": ""}})
    assert off.returncode == 0, off.stdout[-4000:]
    assert client.request("GET", f"/apis/monitoring.coreos.com/v1/namespaces/{monitoring}/probes")["items"] == []


def test_route53_records_the_crd_accepts_and_no_probe_gates(testbed, tmp_path, resolvers, listeners, namespace_name):
    """hybrid_dns_record_mechanism route53: every location's record carries its weight and Route
    53 health check (kubefed's code), accepted by external-dns's CRD, and a location whose
    endpoint stopped answering the role's probe stays in: Route 53 decides, between runs."""
    port, _socks = listeners
    extra = role_vars(resolvers, port, namespace_name, hybrid_dns_record_mechanism="route53",
                      hybrid_dns_records="weighted")
    for i, location in enumerate(extra["hybrid_dns_locations"]):
        location["health_check_id"] = f"hc-{i}"
        location["endpoints"] = [f"127.{i + 1}.0.99"]  # nothing listens there: every probe fails
    result = run_role(tmp_path, extra)
    assert result.returncode == 0, result.stdout[-4000:]
    endpoints = record(testbed, namespace_name)["spec"]["endpoints"]
    assert [(e["setIdentifier"], e["targets"], e["providerSpecific"]) for e in endpoints] == [
        (name, [f"127.{i + 1}.0.99"], [{"name": "aws/weight", "value": "1"}, {"name": "aws/health-check-id", "value": f"hc-{i}"}])
        for i, name in enumerate(LOCATIONS)]


def test_nothing_is_written_when_no_endpoint_answers(testbed, tmp_path, resolvers, listeners, namespace_name):
    port, socks = listeners
    for sock in socks.values():
        stop(sock)
    refused_without_writes(testbed, tmp_path, role_vars(resolvers, port, namespace_name),
                           "no endpoint of any location is healthy")


def test_nothing_is_written_when_a_zone_has_no_resolver(testbed, tmp_path, resolvers, listeners, namespace_name):
    port, _unused = listeners
    dead = dict(resolvers)
    dead["aws"] = (f"127.0.0.1:{free_port()}", None)  # nothing listens there
    refused_without_writes(testbed, tmp_path, role_vars(dead, port, namespace_name),
                           "no resolver answers for aws.hybrid.example.com")


def test_bad_plan_fails_before_probes_and_writes(testbed, tmp_path, resolvers, listeners, namespace_name):
    port, _unused = listeners
    extra = role_vars(resolvers, port, namespace_name)
    extra["hybrid_dns_locations"] = copy.deepcopy(extra["hybrid_dns_locations"])
    extra["hybrid_dns_locations"][2]["cidrs"] = ["127.2.0.0/15"]  # swallows aws's range
    result = refused_without_writes(
        testbed, tmp_path, extra,
        "hybrid_dns_locations[1].cidrs[0] (127.2.0.0/16) overlaps hybrid_dns_locations[2].cidrs[0] (127.2.0.0/15)")
    assert "net_probe" not in result.stdout, "validation comes before any probe"


def test_check_mode_writes_nothing(testbed, tmp_path, resolvers, listeners, namespace_name):
    port, _unused = listeners
    mark = testbed.audit_mark(CLUSTER)
    result = run_role(tmp_path, role_vars(resolvers, port, namespace_name), "--check", "--diff")
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap(result.stdout)["changed"] > 0
    assert testbed.writes(CLUSTER, since=mark) == []


def test_net_probe_tells_answers_from_silence_and_open_from_closed(tmp_path, resolvers, listeners):
    port, _unused = listeners
    on_prem = resolvers["on-prem"][0]
    silent = f"127.0.0.1:{free_port()}"
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "probe", "register": "probed", "k8snet.fabric.net_probe": {
            "dns": [{"server": on_prem, "name": "onprem.hybrid.example.com"},
                    {"server": on_prem, "name": "www.onprem.hybrid.example.com", "type": "A"},
                    {"server": silent, "name": "onprem.hybrid.example.com"}],
            "tcp": [{"host": "127.1.0.10", "port": port}, {"host": "127.1.0.10", "port": free_port()}],
            "timeout": 0.5}},
        {"ansible.builtin.copy": {"content": "{{ probed | to_json }}", "dest": str(tmp_path / "probed.json"),
                                  "mode": "0644"}}]}]
    result = run_playbook(tmp_path, plays)
    assert result.returncode == 0, result.stdout[-3000:]
    probed = json.loads((tmp_path / "probed.json").read_text())
    assert [(r["ok"], r.get("rcode"), r.get("error")) for r in probed["dns"]] == [
        (True, "NOERROR", None), (True, "NOERROR", None), (False, None, "no answer within 0.5s")]
    assert probed["dns"][1]["answers"] == ["203.0.113.1"]
    assert [(r["ok"], r.get("error")) for r in probed["tcp"]] == [(True, None), (False, "Connection refused")]
    assert probed["failed_probes"] == 2 and probed["changed"] is False

    plays[0]["tasks"][0]["k8snet.fabric.net_probe"]["require_all"] = True
    failed = run_playbook(tmp_path, plays)
    assert failed.returncode != 0 and "2 probes failed" in failed.stdout


def ca_and_server_cert(folder, name: str):
    """A CA and a certificate it signs for ``name`` (and 127.0.0.1): what a DoT resolver serves."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test resolvers CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "cert.pem").write_bytes(cert.public_bytes(pem))
    (folder / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return folder / "ca.pem"


def test_a_location_resolver_over_dns_over_tls(tmp_path, resolvers, monkeypatch):
    """azure's resolver speaks DNS over TLS only (a real CoreDNS with a certificate for
    dns.azure.test). The role's zone block forwards to tls://...:port with tls_servername, and the
    real CoreDNS running it gets the answer; a wrong server name is refused (verification works);
    net_probe's DoT check agrees."""
    from ansible_collections.k8snet.fabric.plugins.module_utils import net_probe

    stub_dir = tmp_path / "dot"
    stub_dir.mkdir()
    ca = ca_and_server_cert(stub_dir, "dns.azure.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the CA the resolvers' certificates chain to
    dot_port = free_port()
    stub = CoreDNS(stub_dir, f"""tls://.:{dot_port} {{
    bind 127.0.0.1
    tls cert.pem key.pem
    template IN A . {{
        answer "{{{{ .Name }}}} 60 IN A 203.0.113.99"
    }}
    template IN SOA . {{
        answer "{{{{ .Name }}}} 60 IN SOA ns.azure.test. admin.azure.test. 1 60 60 60 60"
    }}
}}
""", port=None, tls_port=dot_port)
    try:
        for server_name, expected in (("dns.azure.test", ("NOERROR", ["203.0.113.99"])), ("dns.elsewhere.test", "SERVFAIL")):
            spec = spec_for(resolvers, mode="custom", port=free_port(), bind=["127.0.0.1"])
            azure = spec["locations"][2]
            azure.update(dns_servers=[f"127.0.0.1:{dot_port}"], tls_server_name=server_name)
            port = spec["coredns"]["port"]
            [(key, blocks)] = hybrid_dns.coredns_object(spec)["data"].items()
            assert f"forward . tls://127.0.0.1:{dot_port} {{" in blocks and f"tls_servername {server_name}" in blocks
            work = tmp_path / server_name
            (work / "custom").mkdir(parents=True)
            server = CoreDNS(work, f".:{port} {{\n    bind 127.0.0.1\n    whoami\n}}\nimport custom/*.server\n", port,
                             files={f"custom/{key}": blocks})
            try:
                answer = ask(port, "app.azure.hybrid.example.com", timeout=5)
                assert (answer if expected != "SERVFAIL" else answer[0]) == expected, (server_name, answer)
                assert ask(port, "app.aws.hybrid.example.com") == ("NOERROR", ["203.0.113.2"]), "plain DNS zones unchanged"
            finally:
                server.stop()
            checked = net_probe.dns_probe({**hybrid_dns.probes(spec)["dns"][2], "address": "127.0.0.1", "port": dot_port}, 3)
            assert checked["ok"] is (expected != "SERVFAIL"), checked
    finally:
        stub.stop()


def test_each_location_reaches_its_applications_on_packets(testbed, dataplane, tmp_path, resolvers, namespace_name):
    """hybrid_dns's proof on real packets: each location (an outside namespace in its range)
    reaches the application on its pod port and on no other, an address of no location reaches
    nothing, and the application reaches each location and nothing outside them."""
    extra = role_vars(resolvers, free_port(), namespace_name)
    for i, location in enumerate(extra["hybrid_dns_locations"]):
        location["cidrs"], location["endpoints"] = [f"172.{16 + i}.0.0/16"], [f"172.{16 + i}.0.20"]
    extra["hybrid_dns_probes"]["endpoints"] = False  # the endpoints live in the data plane, not on loopback
    extra["hybrid_dns_apps"] = [{"name": "hybrid-app", "namespace": namespace_name, "port": 443, "target_port": 8443,
                                 "create_namespace": True}]
    extra["fabric_build_dir"] = str(tmp_path / "build")
    result = run_role(tmp_path, extra)
    assert result.returncode == 0, result.stdout[-4000:]
    client = testbed.client(CLUSTER)
    client.request("POST", f"/api/v1/namespaces/{namespace_name}/pods", body={
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "hybrid-app", "namespace": namespace_name, "labels": {"app": "hybrid-app"}},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1",
                                 "ports": [{"containerPort": 8443}, {"containerPort": 9443}]}]}})
    wait_for(lambda: (client.request("GET", f"/api/v1/namespaces/{namespace_name}/pods/hybrid-app")
                      .get("status") or {}).get("podIP"), "hybrid-app running")
    for i, location in enumerate(LOCATIONS):
        dataplane.add_outside(location, f"172.{16 + i}.0.10", ports=((443, "TCP"),))
    dataplane.add_outside("elsewhere", "198.51.100.7", ports=((443, "TCP"),))
    report = next((tmp_path / "build").rglob("report/connlist.txt"))
    packets = probes_against_report(dataplane, testbed, CLUSTER, [namespace_name], report, [*LOCATIONS, "elsewhere"])
    assert packets["pods"] == 1 and not packets["wrong"], packets["wrong"]
    matrix, app = packets["matrix"], f"{CLUSTER}/{namespace_name}/hybrid-app"
    for location in LOCATIONS:
        assert matrix[(f"outside:{location}", app, "8443/TCP")] == "open"
        assert matrix[(f"outside:{location}", app, "9443/TCP")] == "refused"
        assert matrix[(app, f"outside:{location}", "443/TCP")] == "open"
    assert matrix[("outside:elsewhere", app, "8443/TCP")] == "refused"
    assert matrix[(app, "outside:elsewhere", "443/TCP")] == "refused"
    assert not dataplane.enforcer_failures()


def location_resolver(address: str) -> str:
    """A location's own resolver: every A question answers with ``address`` (who answered)."""
    return (".:53 {\n    errors\n    template IN A . {\n"
            f"        answer \"{{{{ .Name }}}} 60 IN A {address}\"\n    }}\n}}\n")


def test_locations_resolve_through_the_cluster_dns_forwarding_zones_on_packets(
        testbed, dataplane, tmp_path, resolvers, namespace_name):
    """Each location's resolver runs in the location's own namespace; the cluster's CoreDNS (the
    data plane's DNS pods, K3s's Corefile) imports the coredns-custom blocks the role wrote and
    takes everything else upstream to the zone external-dns publishes from the role's record.
    From every location's namespace the cluster DNS answers the global name as published and each
    location's names from that location's resolver across the fabric; the application's pod,
    behind the role's policies, resolves them through the kube-dns Service; a name of no location
    goes upstream; a location whose resolver stops gets SERVFAIL, never another location's answer."""
    extra = role_vars(resolvers, free_port(), namespace_name, hybrid_dns_coredns={
        "mode": "custom", "namespace": "kube-system", "port": 53, "cache_seconds": 30, "health_check": "5s",
        "cluster_domain": "cluster.local", "upstream": "/etc/resolv.conf"})
    for i, location in enumerate(extra["hybrid_dns_locations"]):
        location["cidrs"], location["endpoints"] = [f"172.{16 + i}.0.0/16"], [f"172.{16 + i}.0.20"]
        location["dns_servers"] = [f"172.{16 + i}.0.10"]
    # The resolvers and endpoints live in the data plane, which the controller host cannot reach.
    extra["hybrid_dns_probes"].update(resolvers=False, endpoints=False)
    answers = {location: f"203.0.113.{i}" for i, location in enumerate(LOCATIONS, 1)}
    zone = PublishedZone(testbed, CLUSTER, "hybrid.example.com", namespace_name).start()
    try:
        for i, location in enumerate(LOCATIONS):
            dataplane.add_outside(location, f"172.{16 + i}.0.10", ports=((443, "TCP"),))
            dataplane.run_dns_server(f"resolver:{location}", f"outside:{location}", location_resolver(answers[location]))
        result = run_role(tmp_path, extra)
        assert result.returncode == 0, result.stdout[-4000:]
        zone.published(GLOBAL_NAME, ["172.16.0.20"])  # the primary location's endpoint
        servers = dataplane.restart_dns(CLUSTER, upstream=zone.port)
        assert servers
        for location in LOCATIONS:
            for server in servers:
                asked = dataplane.ask_dns(f"outside:{location}", server, GLOBAL_NAME)
                assert (asked["rcode"], asked["addresses"]) == ("NOERROR", ["172.16.0.20"]), (location, asked)
                for other, address in answers.items():
                    asked = dataplane.ask_dns(f"outside:{location}", server, f"db.{other}.hybrid.example.com")
                    assert (asked["rcode"], asked["addresses"]) == ("NOERROR", [address]), (location, other, asked)
        # A zone of no location is not forwarded to any of them: upstream has no such name.
        outside = dataplane.ask_dns("outside:aws", servers[0], "db.gcp.hybrid.example.com")
        assert (outside["rcode"], outside["addresses"]) == ("NXDOMAIN", []), outside

        client = testbed.client(CLUSTER)
        client.request("POST", f"/api/v1/namespaces/{namespace_name}/pods", body={
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "hybrid-app", "namespace": namespace_name, "labels": {"app": "hybrid-app"}},
            "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1",
                                     "ports": [{"containerPort": 443}]}]}})
        wait_for(lambda: (client.request("GET", f"/api/v1/namespaces/{namespace_name}/pods/hybrid-app")
                          .get("status") or {}).get("podIP"), "hybrid-app running")
        dataplane.sync()
        dataplane.settle()
        app = f"{CLUSTER}/{namespace_name}/hybrid-app"
        for other, address in answers.items():
            asked = dataplane.resolve(app, f"app.{other}.hybrid.example.com")
            assert (asked["rcode"], asked["addresses"]) == ("NOERROR", [address]), (other, asked)
        asked = dataplane.resolve(app, GLOBAL_NAME)
        assert (asked["rcode"], asked["addresses"]) == ("NOERROR", ["172.16.0.20"]), asked

        dataplane.stop_controller("resolver:azure")
        # A name not asked before (the zone block caches answers for 30 s).
        failed = dataplane.ask_dns("outside:aws", servers[0], "api.azure.hybrid.example.com", timeout=6)
        assert (failed["rcode"], failed["addresses"]) == ("SERVFAIL", []), failed
        assert not dataplane.enforcer_failures()
    finally:
        zone.stop()
        for location in LOCATIONS:
            dataplane.stop_controller(f"resolver:{location}")
