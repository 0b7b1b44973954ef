"""hybrid_dns and istio_mesh on the embedded default inventory (render mode): no cluster, no
network; every file written under the build folder, offline-validated, proven, and a second
run changes nothing."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import REPO, recap, run_playbook


def render(tmp_path, playbook, extra=None):
    plays = yaml.safe_load((REPO / "playbooks" / playbook).read_text())
    extra = {"fabric_build_dir": str(tmp_path / "build"), **(extra or {})}
    return run_playbook(tmp_path, plays, extra_vars=extra, inventory=str(REPO / "inventories" / "local"),
                        env={"KUBECONFIG": "/nonexistent"})


def test_hybrid_dns_renders_zones_records_and_policies(tmp_path):
    result = render(tmp_path, "hybrid.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    out = tmp_path / "build" / "hybrid"
    blocks = (out / "hybrid.server").read_text()
    assert "onprem.hybrid.example.com:53 {" in blocks and "forward . 172.16.0.53:53 {" in blocks
    manifests = {(m["kind"], m["metadata"]["name"]): m for m in yaml.safe_load_all((out / "manifests.yaml").read_text())}
    assert manifests[("ConfigMap", "coredns-custom")]["data"]["hybrid.server"] == blocks
    # Render mode probes nothing, so every endpoint of the best tier is published.
    assert manifests[("DNSEndpoint", "hybrid-app-global")]["spec"]["endpoints"][0]["targets"] == ["10.0.100.10"]
    policies = [p["metadata"]["name"] for p in yaml.safe_load_all((out / "network-policies.yaml").read_text())]
    assert "azure-to-hybrid-app-in" in policies and "default-deny" in policies
    assert "12 expectations hold" in " ".join(result.stdout.split())
    assert (out / "report" / "connlist.html").exists()
    # The embedded default encrypts on-prem <-> AWS and Azure: our end's swanctl file (PSKs
    # redacted), and what the clouds' VPN gateways must be told.
    swanctl = (out / "gateways/gw-onprem-1/etc/swanctl/conf.d/k8snet-hybrid.conf").read_text()
    assert "remote_ts = 172.16.0.0/16" in swanctl and "remote_ts = 192.168.0.0/16" in swanctl
    assert 'secret = "<redacted>"' in swanctl and "placeholder" not in swanctl + result.stdout
    cloud = {entry["cloud"]: entry for entry in yaml.safe_load((out / "tunnels-cloud-side.yaml").read_text())}
    assert cloud["aws"]["aws"]["vpn_connection"]["Routes"] == ["10.0.0.0/8"]
    assert cloud["azure"]["azure"]["local_network_gateway"] == {"gatewayIpAddress": "198.51.100.10",
                                                                "addressPrefixes": ["10.0.0.0/8"]}
    assert recap(render(tmp_path, "hybrid.yml").stdout)["changed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "play.yml"], "nothing outside build/"


def test_hybrid_dns_corefile_mode_renders_the_whole_corefile(tmp_path):
    coredns = {"mode": "corefile", "namespace": "kube-system", "port": 53, "cache_seconds": 30,
               "health_check": "5s", "cluster_domain": "cluster.local", "upstream": "/etc/resolv.conf"}
    result = render(tmp_path, "hybrid.yml", {"hybrid_dns_coredns": coredns})
    assert result.returncode == 0, result.stdout[-3000:]
    corefile = (tmp_path / "build" / "hybrid" / "Corefile").read_text()
    assert corefile.startswith(".:53 {") and "kubernetes cluster.local in-addr.arpa ip6.arpa {" in corefile


def test_istio_mesh_renders_objects_and_the_install_file(tmp_path):
    result = render(tmp_path, "mesh.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    out = tmp_path / "build" / "mesh"
    operator = yaml.safe_load((out / "istio-operator.yaml").read_text())
    assert operator["kind"] == "IstioOperator" and "mtls" not in operator["spec"]["values"]["global"]
    kinds = sorted(m["kind"] for m in yaml.safe_load_all((out / "manifests.yaml").read_text()))
    assert kinds == ["AuthorizationPolicy", "AuthorizationPolicy", "ConfigMap", "DestinationRule", "Gateway", "Namespace",
                     "PeerAuthentication", "PodMonitor", "PrometheusRule", "ServiceMonitor", "Telemetry", "VirtualService"]
    # The gateway's generated certificate, served from its Secret, in a file of its own (redacted).
    secret = yaml.safe_load((out / "tls-secret.yaml").read_text())
    assert (secret["kind"], secret["metadata"]["name"], secret["stringData"]) == (
        "Secret", "microservice-tls", {"tls.crt": "<redacted>", "tls.key": "<redacted>"})
    assert "5 authorization expectations hold" in " ".join(result.stdout.split())
    assert recap(render(tmp_path, "mesh.yml").stdout)["changed"] == 0


def test_istio_mesh_proof_fails_on_an_expectation_that_does_not_hold(tmp_path):
    expect = [{"from": "shop/service-b", "to": "shop/microservice", "method": "GET", "allowed": True}]
    result = render(tmp_path, "mesh.yml", {"istio_mesh_expect": expect})
    assert result.returncode != 0
    assert ("shop/service-b -> shop/microservice GET /: expected allowed, denied (no ALLOW policy matches)"
            in " ".join(result.stdout.split()))


@pytest.mark.parametrize("playbook", ["edge.yml", "ecommerce.yml", "multicluster.yml", "mesh.yml", "hybrid.yml"])
def test_a_mistyped_fabric_mode_fails_naming_it_and_writes_nothing(tmp_path, playbook):
    result = render(tmp_path, playbook, {"fabric_mode": "rendr"})
    assert result.returncode != 0
    assert "value of fabric_mode must be one of: render, apply, got: rendr" in result.stdout + result.stderr
    assert not (tmp_path / "build").exists()


@pytest.mark.parametrize("playbook, manifest", [
    ("edge.yml", "edge/factory-1/manifests.yaml"), ("ecommerce.yml", "ecommerce/network-policies.yaml"),
    ("multicluster.yml", "multicluster/us-east/manifests.yaml"), ("mesh.yml", "mesh/manifests.yaml"),
    ("hybrid.yml", "hybrid/manifests.yaml")])
def test_check_mode_writes_nothing_and_diff_shows_the_rendered_files(tmp_path, playbook, manifest):
    plays = yaml.safe_load((REPO / "playbooks" / playbook).read_text())
    result = run_playbook(tmp_path, plays, "--check", "--diff", inventory=str(REPO / "inventories" / "local"),
                          extra_vars={"fabric_build_dir": str(tmp_path / "build")}, env={"KUBECONFIG": "/nonexistent"})
    assert result.returncode == 0, result.stdout[-3000:]
    assert not (tmp_path / "build").exists(), "check mode wrote into the build folder"
    # edge's render task is no_log (the site's Secrets travel with it): Ansible hides its diff.
    if playbook != "edge.yml":
        assert f"+++ after: {tmp_path / 'build' / manifest}" in result.stdout, result.stdout[-3000:]


def test_the_closing_line_names_the_findings_only_the_report_showed(tmp_path):
    """The default federation has a peer that matches nothing; the console said its expectations
    hold and only the HTML report showed the finding."""
    result = render(tmp_path, "multicluster.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    output = " ".join(result.stdout.split())
    assert "expectations hold across the clusters; 2 finding(s) (2 peer-matches-nothing): peer-matches-nothing:" in output
    assert f"reports in {tmp_path}/build/multicluster/report" in output
    # The embedded default encrypts the regions' link: both ends from one entry, PSK redacted.
    gateways = tmp_path / "build" / "multicluster" / "gateways"
    east = (gateways / "gw-us-east-1/etc/swanctl/conf.d/k8snet-kubefed.conf").read_text()
    west = (gateways / "gw-eu-west-1/etc/swanctl/conf.d/k8snet-kubefed.conf").read_text()
    assert "local_ts = 10.42.0.0/16, fd00:10:42::/56, 10.96.0.0/16, fd00:10:96::/112" in east
    assert "remote_ts = 10.42.0.0/16, fd00:10:42::/56, 10.96.0.0/16, fd00:10:96::/112" in west
    assert "start_action = start" in east and "start_action = none" in west
    assert 'secret = "<redacted>"' in east and "placeholder" not in east + result.stdout
