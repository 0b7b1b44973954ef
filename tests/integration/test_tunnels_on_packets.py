"""Encrypted links between locations and between clusters, on packets: hybrid_dns (and kubefed) in
apply mode write the tunnel files onto gateway hosts over real SSH; namespaces playing those gateways run strongSwan and
wg-quick from exactly those files (tests/gateways.py); traffic between the locations' ranges
crosses the internet's bridge only encrypted, and stops when a tunnel is down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.gateways import Gateways
from tests.helpers import REPO, recap, run_playbook
from tests.testbed import build
from tests.testbed.sshhosts import SshHosts

from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import site_tunnels

pytestmark = pytest.mark.testbed
GATEWAY_HOSTS = {"on-prem": "gw-onprem", "aws": "gw-aws", "azure": "gw-azure"}
OUTSIDE = {"on-prem": "192.0.2.1", "aws": "192.0.2.2", "azure": "192.0.2.3"}
RANGES = {"on-prem": "10.10.0.0/16", "aws": "10.20.0.0/16", "azure": "10.30.0.0/16"}
INSIDE = {"on-prem": "10.10.0.1", "aws": "10.20.0.1", "azure": "10.30.0.1"}
PSK = "Tunnel_psk.never.logged.0123456789"
INTERFACE_FILE = "etc/wireguard/wg-hybrid.conf"
SWANCTL_FILE = "etc/swanctl/conf.d/k8snet-hybrid.conf"


def genkey() -> str:
    return subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def gateway_hosts(tmp_path_factory):
    hosts = SshHosts(list(GATEWAY_HOSTS.values()), run_dir=tmp_path_factory.mktemp("gateways"))
    facts = hosts.up()
    yield hosts, facts
    hosts.down()


@pytest.fixture(scope="module")
def keys():
    return {site: genkey() for site in GATEWAY_HOSTS}


def hybrid_vars(keys, **tunnels) -> dict:
    locations = [{"name": site, "cidrs": [cidr], "dns_servers": [cidr.replace("0.0/16", "0.53")],
                  "endpoints": [cidr.replace("0.0/16", "0.10")], "priority": 1 if site == "on-prem" else 2}
                 for site, cidr in RANGES.items()]
    gateways = [{"name": site, "address": OUTSIDE[site], "host": host, "wireguard_private_key": keys[site]}
                for site, host in GATEWAY_HOSTS.items()]
    links = [{"between": ["on-prem", "aws"], "type": "ipsec", "psk": PSK},
             {"between": ["on-prem", "azure"], "type": "wireguard"},
             {"between": ["aws", "azure"], "type": "wireguard"}]
    return {"hybrid_dns_locations": locations, "hybrid_dns_apps": [], "hybrid_dns_cluster": {"location": "on-prem"},
            "hybrid_dns_tunnels": {"gateways": gateways, "links": links, "activate": False, **tunnels}}


def run_hybrid(tmp_path, gateway_hosts, extra_vars, *args):
    return run_scenario(tmp_path, gateway_hosts, "hybrid.yml", "clusters", extra_vars, *args)


def run_scenario(tmp_path, gateway_hosts, playbook, group, extra_vars, *args):
    """A playbook against the testbed inventory plus the gateway hosts (its play on group only)."""
    hosts, facts = gateway_hosts
    host_vars = hosts.inventory_vars(facts, sys.executable)
    for name in host_vars:
        host_vars[name]["fabric_host_root"] = host_vars[name].pop("edge_k3s_root")
    gateways = tmp_path / "gateways.yml"
    gateways.write_text(yaml.safe_dump({"all": {"children": {"gateways": {"hosts": host_vars}}}}))
    plays = yaml.safe_load((REPO / "playbooks" / playbook).read_text())
    return run_playbook(tmp_path, plays, "-i", str(gateways), "--limit", group, *args, extra_vars=extra_vars,
                        inventory=str(REPO / "inventories" / "testbed"))


def test_tunnels_from_the_role_files_carry_only_encrypted_traffic_between_locations(
        testbed, gateway_hosts, keys, tmp_path):
    _hosts, facts = gateway_hosts
    roots = {site: Path(facts[host]["root"]) for site, host in GATEWAY_HOSTS.items()}
    result = run_hybrid(tmp_path, gateway_hosts, hybrid_vars(keys))
    assert result.returncode == 0, result.stdout[-5000:]
    output = result.stdout + result.stderr
    assert PSK not in output and not any(key in output for key in keys.values())
    for site, root in roots.items():
        assert oct((root / INTERFACE_FILE).stat().st_mode & 0o777) == "0o600"
    assert (roots["on-prem"] / SWANCTL_FILE).exists() and (roots["aws"] / SWANCTL_FILE).exists()
    assert not (roots["azure"] / SWANCTL_FILE).exists()

    again = run_hybrid(tmp_path, gateway_hosts, hybrid_vars(keys))
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]

    sites = {site: (OUTSIDE[site], INSIDE[site]) for site in GATEWAY_HOSTS}
    with Gateways(tmp_path / "run", sites, build.build_tool("wireguard-go")) as net:
        # aws waits (the responder), on-prem initiates: start the responder first.
        net.up_ipsec("aws", roots["aws"] / SWANCTL_FILE)
        net.up_ipsec("on-prem", roots["on-prem"] / SWANCTL_FILE)
        for site in GATEWAY_HOSTS:
            up = net.wg_quick(site, "up", roots[site] / INTERFACE_FILE)
            assert up.returncode == 0, up.stderr

        sniffer = net.sniff(12, "MARKER-crossing")
        answers = {(src, dst): net.exchange(src, dst, 8080, f"MARKER-crossing {src}->{dst}")
                   for src in GATEWAY_HOSTS for dst in GATEWAY_HOSTS if src != dst}
        frames = net.frames(sniffer)
        assert answers == {(src, dst): f"MARKER-crossing {src}->{dst}" for src, dst in answers}, answers

        # on-prem's WireGuard interface has exchanged data with azure's key, and only with it.
        transfer = [line.split("\t") for line in net.wg("on-prem", "show", "wg-hybrid", "transfer").splitlines()]
        assert [(peer, int(received) > 0) for peer, received, _sent in transfer] == [
            (site_tunnels.wireguard_public_key(keys["azure"]), True)], transfer
        sas = net.swanctl("on-prem", "--list-sas").stdout
        assert "ESTABLISHED, IKEv2" in sas and "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384" in sas, sas
        assert "local  10.10.0.0/16" in sas and "remote 10.20.0.0/16" in sas, sas
        # Only the gateways' outside addresses, only IKE/NAT-T or WireGuard, never the payload.
        assert frames and not [f for f in frames if f["marker"]]
        assert {(f["src"], f["dst"]) for f in frames} <= {(a, b) for a in OUTSIDE.values() for b in OUTSIDE.values()}
        carried = {(f["proto"], f["dport"]) for f in frames if f["proto"] in (6, 17)}
        assert carried <= {(17, 500), (17, 4500), (17, 51820)} and (17, 51820) in carried, carried
        assert (17, 4500) in carried or 50 in {f["proto"] for f in frames}, frames[:5]
        assert not [f for f in frames if f["proto"] == 6], "TCP crossed the internet in the clear"

        # A tunnel down: that link's traffic stops (nothing falls back to the clear), the others go on.
        down = net.wg_quick("azure", "down", roots["azure"] / INTERFACE_FILE)
        assert down.returncode == 0, down.stderr
        assert net.exchange("on-prem", "azure", 8081, "after", timeout=2).startswith("failed")
        assert net.exchange("aws", "azure", 8081, "after", timeout=2).startswith("failed")
        assert net.exchange("on-prem", "aws", 8082, "still") == "still"
        net.down_ipsec("aws")
        assert net.exchange("on-prem", "aws", 8083, "after", timeout=2).startswith("failed")


def test_bad_tunnel_variables_fail_before_anything_is_written(testbed, gateway_hosts, keys, tmp_path):
    _hosts, facts = gateway_hosts
    broken = hybrid_vars(keys)
    broken["hybrid_dns_tunnels"]["links"][0]["psk"] = "short"
    broken["hybrid_dns_tunnels"]["gateways"][2]["wireguard_private_key"] = "not-a-key"
    roots = [Path(facts[host]["root"]) for host in GATEWAY_HOSTS.values()]
    before = {root: sorted(p for p in root.rglob("*")) for root in roots}
    result = run_hybrid(tmp_path, gateway_hosts, broken)
    assert result.returncode != 0
    assert "hybrid_dns_tunnels.links[0].psk" in result.stdout
    assert "hybrid_dns_tunnels.gateways[2].wireguard_private_key" in result.stdout
    assert "short" not in result.stdout and "not-a-key" not in result.stdout
    assert {root: sorted(p for p in root.rglob("*")) for root in roots} == before


def test_a_new_psk_is_shown_redacted_in_check_mode_and_written_by_the_run(testbed, gateway_hosts, keys, tmp_path):
    _hosts, facts = gateway_hosts
    onprem = Path(facts[GATEWAY_HOSTS["on-prem"]]["root"]) / SWANCTL_FILE
    assert run_hybrid(tmp_path, gateway_hosts, hybrid_vars(keys)).returncode == 0
    before = (onprem.read_text(), onprem.stat().st_mtime_ns)
    rotated = hybrid_vars(keys)
    rotated["hybrid_dns_tunnels"]["links"][0]["psk"] = "Rotated_psk.also.never.logged"

    checked = run_hybrid(tmp_path, gateway_hosts, rotated, "--check", "--diff")
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert "<redacted>" in checked.stdout and "Rotated_psk" not in checked.stdout + checked.stderr
    assert (onprem.read_text(), onprem.stat().st_mtime_ns) == before

    applied = run_hybrid(tmp_path, gateway_hosts, rotated)
    assert applied.returncode == 0 and "Rotated_psk" not in applied.stdout + applied.stderr
    assert 'secret = "Rotated_psk.also.never.logged"' in onprem.read_text()
    assert 'secret = "Rotated_psk.also.never.logged"' in (
        Path(facts[GATEWAY_HOSTS["aws"]]["root"]) / SWANCTL_FILE).read_text()


def test_kubefed_links_the_clusters_pod_and_service_ranges_and_nothing_else(testbed, gateway_hosts, keys, tmp_path,
                                                                            namespace_name):
    """kubefed_tunnels through the same role: a WireGuard link between us-east's and eu-west's
    gateways carries both clusters' pod and service ranges (IPv4 and IPv6, from the IP plan)."""
    _hosts, facts = gateway_hosts
    plan = {"us-east": (["10.0.0.0/14", "fd00:10::/56"], ["10.96.0.0/16", "fd00:96::/112"], "127.5.0.10"),
            "eu-west": (["10.4.0.0/14", "fd00:14::/56"], ["10.97.0.0/16", "fd00:97::/112"], "127.6.0.10")}
    sites = {"us-east": "on-prem", "eu-west": "aws"}  # which gateway host (and key) each cluster uses
    extra = {
        "fabric_clusters": [{"name": name, "context": name, "kubeconfig": "{{ fabric_testbed_kubeconfig }}",
                             "pod_cidrs": pods, "service_cidrs": services, "vips": [vip]}
                            for name, (pods, services, vip) in plan.items()],
        "kubefed_clusters": [{"name": name, "priority": 1} for name in plan],
        "kubefed_services": [{"name": "tunnel-app", "namespace": namespace_name, "port": 80}],
        "kubefed_probes": {"enabled": False, "port": 443, "timeout": 1},
        "kubefed_metrics": {"enabled": False, "port": 9090, "interval": "30s", "namespace": "monitoring"},
        "kubefed_tunnels": {"activate": False, "links": [{"between": list(plan), "type": "wireguard"}],
                            "gateways": [{"name": name, "address": OUTSIDE[site], "host": GATEWAY_HOSTS[site],
                                          "wireguard_private_key": keys[site]} for name, site in sites.items()]}}
    result = run_scenario(tmp_path, gateway_hosts, "multicluster.yml", "federations", extra)
    assert result.returncode == 0, result.stdout[-5000:]
    assert not any(key in result.stdout + result.stderr for key in keys.values())
    roots = {name: Path(facts[GATEWAY_HOSTS[site]]["root"]) for name, site in sites.items()}
    conf = {name: root / "etc/wireguard/wg-kubefed.conf" for name, root in roots.items()}
    assert "AllowedIPs = 10.4.0.0/14, fd00:14::/56, 10.97.0.0/16, fd00:97::/112" in conf["us-east"].read_text()

    inside = {"us-east": "10.0.0.1", "eu-west": "10.4.0.1"}
    with Gateways(tmp_path / "run", {name: (OUTSIDE[site], inside[name]) for name, site in sites.items()},
                  build.build_tool("wireguard-go")) as net:
        for name in plan:
            up = net.wg_quick(name, "up", conf[name])
            assert up.returncode == 0, up.stderr
        sniffer = net.sniff(6, "MARKER-pods")
        assert net.exchange("us-east", "eu-west", 8080, "MARKER-pods") == "MARKER-pods"
        frames = net.frames(sniffer)
        assert frames and {(f["proto"], f["dport"] if f["src"] == OUTSIDE["on-prem"] else f["sport"]) for f in frames} == {
            (17, 51820)} and not [f for f in frames if f["marker"]], frames[:5]
