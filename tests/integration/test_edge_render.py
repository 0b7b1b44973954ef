"""The main job on the embedded default: `ansible-playbook playbooks/edge.yml` in render mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.helpers import REPO

REMOTE_WRITE = {"url": "https://metrics.example.com/api/v1/write", "username": "", "capacity": 10000, "max_shards": 10,
                "max_samples_per_send": 2000, "batch_send_deadline": "30s", "min_backoff": "1s", "max_backoff": "5m",
                "behind_seconds": 600}


def run_edge(build_dir):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    return subprocess.run([str(os.path.join(os.path.dirname(sys.executable), "ansible-playbook")),
                           "playbooks/edge.yml", "-e", f"fabric_build_dir={build_dir}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_render_writes_every_host_file_and_manifest_and_is_idempotent(tmp_path):
    build = tmp_path / "build"
    first = run_edge(build)
    assert first.returncode == 0, first.stdout[-3000:]
    site = build / "edge" / "factory-1"
    hosts = {p.name for p in (site / "hosts").iterdir()}
    assert hosts == {"factory1-server-1", "factory1-agent-1", "factory1-agent-2"}
    server = yaml.safe_load((site / "hosts/factory1-server-1/etc/rancher/k3s/config.yaml").read_text())
    assert server["disable"] == ["traefik", "servicelb", "metrics-server"] and server["cluster-dns"] == "10.43.0.10"
    agent = yaml.safe_load((site / "hosts/factory1-agent-2/etc/rancher/k3s/config.yaml").read_text())
    assert set(agent) == {"node-label", "node-name", "node-taint", "server"} and agent["node-name"] == "factory1-agent-2"
    assert server["secrets-encryption"] is True and server["flannel-backend"] == "vxlan"
    assert (site / "hosts/factory1-agent-2/etc/systemd/system/k3s-agent.service").exists()
    assert not (site / "hosts/factory1-agent-2/etc/systemd/system/k3s.service").exists()
    env = (site / "hosts/factory1-server-1/etc/systemd/system/k3s.service.env").read_text()
    assert "K3S_TOKEN=<redacted>" in env
    # What apply installs besides, with the modes it installs them with.
    server_dir = site / "hosts/factory1-server-1"
    assert (server_dir / "etc/sysctl.d/90-k3s.conf").read_text().startswith("net.ipv4.ip_forward = 1\n")
    assert (server_dir / "etc/modules-load.d/k3s.conf").read_text() == "overlay\nbr_netfilter\n"
    assert (server_dir / "etc/rancher/k3s/registries.yaml").stat().st_mode & 0o777 == 0o600
    docs = list(yaml.safe_load_all((site / "manifests.yaml").read_text()))
    kinds = [d["kind"] for d in docs]
    assert kinds.count("NetworkPolicy") == 5 and "IPAddressPool" in kinds and "CronJob" in kinds
    assert {"Alertmanager", "ServiceMonitor", "ClusterRole"} <= set(kinds)
    assert next(d for d in docs if d["kind"] == "Secret")["stringData"] == {"token": "<redacted>"}
    text = " ".join(first.stdout.split())
    assert "1 sites and 4 hosts checked; 20 files" in text and "manifests schema-checked offline" in text, text[-2000:]
    # The closing line says where the output went and what the proof found (issue 25, item 15).
    assert f"output under {build}/edge/<site>/; proofs: 5 finding(s)" in text, text[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"], "nothing outside the build folder"

    second = run_edge(build)
    assert second.returncode == 0
    assert all("changed=0" in line for line in second.stdout.splitlines() if "ok=" in line)


def test_k3s_ansible_escape_hatches_extra_flags_api_port_and_k3s_only(tmp_path):
    """Extra server/agent flags merged into config.yaml, the API port followed by agents, and
    K3s only (edge_k3s_stack: false): host files and node labels, no site stack, no proof."""
    extra = {"edge_k3s_api_port": 6444, "edge_k3s_stack": False,
             "edge_k3s_server_config": {"kube-apiserver-arg": ["audit-log-maxage=30"], "etcd-snapshot-retention": 10},
             "edge_k3s_agent_config": {"kubelet-arg": ["max-pods=50"]}}
    result = run_local("edge.yml", tmp_path, "-e", json.dumps(extra))
    assert result.returncode == 0, result.stdout[-3000:]
    site = tmp_path / "edge" / "factory-1"
    server = yaml.safe_load((site / "hosts/factory1-server-1/etc/rancher/k3s/config.yaml").read_text())
    assert server["https-listen-port"] == 6444 and server["kube-apiserver-arg"] == ["audit-log-maxage=30"]
    assert server["etcd-snapshot-retention"] == 10 and "kubelet-arg" not in server
    agent = yaml.safe_load((site / "hosts/factory1-agent-1/etc/rancher/k3s/config.yaml").read_text())
    assert agent["server"].endswith(":6444") and agent["kubelet-arg"] == ["max-pods=50"]
    assert "https-listen-port" not in agent and "kube-apiserver-arg" not in agent
    kinds = {d["kind"] for d in yaml.safe_load_all((site / "manifests.yaml").read_text())}
    assert kinds == {"Node"}, kinds
    assert not (site / "report").exists()


def run_local(playbook, tmp_path, *extra):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                           f"playbooks/{playbook}", "-e", f"fabric_build_dir={tmp_path}", *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("extra, words", [
    ('{"edge_k3s_metallb_pool": ["192.168.9.1-192.168.9.9"]}',
     "edge_k3s_metallb_pool[0] (192.168.9.1-192.168.9.9) is not inside edge_k3s_lan_cidr"),
    # A string where a list belongs would be spread one entry per character.
    ('{"edge_k3s_tls_san": "api.plant.example"}',
     "edge_k3s_tls_san must be a list of strings, got 'api.plant.example' (write ['api.plant.example'] for one entry)"),
    ('{"edge_k3s_registry_mirrors": {"docker.io": "https://mirror.plant:5000"}}',
     "edge_k3s_registry_mirrors['docker.io'] must be a list of endpoint URLs"),
    # A URL where a host belongs would be doubled into https://https://...:6443:6443.
    ('{"edge_k3s_api_endpoint": "https://api.plant.example:6443"}',
     "edge_k3s_api_endpoint 'https://api.plant.example:6443' must be a host name or address without scheme or port"),
    ('{"edge_k3s_flannel_backend": "wireguard"}', "edge_k3s_flannel_backend"),
    # A node off the site LAN (issue 25, item 8): MetalLB and the sensors could not reach it.
    ('{"edge_k3s_lan_cidr": "192.168.5.0/24", "edge_k3s_metallb_pool": []}',
     "host factory1-server-1: ansible_host 192.168.1.10 is not inside edge_k3s_lan_cidr (192.168.5.0/24) (when "
     "Ansible reaches the host by another address, set edge_k3s_node_ip to its LAN address)"),
    # k3s-ansible's escape hatches: flags the role writes itself are refused naming the variable.
    ('{"edge_k3s_server_config": {"cluster-cidr": "10.50.0.0/16"}}',
     "edge_k3s_server_config key 'cluster-cidr' is written by the role; set edge_k3s_cluster_cidr instead"),
    ('{"edge_k3s_agent_config": {"tls-san": ["x"]}}',
     "edge_k3s_agent_config key 'tls-san' is written by the role; set edge_k3s_tls_san instead"),
    ('{"edge_k3s_agent_config": {"kube-apiserver-arg": ["x=1"], "--kubelet-arg": ["y"]}}',
     "edge_k3s_agent_config key '--kubelet-arg' is not a K3s flag name"),
    ('{"edge_k3s_api_port": 70000}', "edge_k3s_api_port"),
    # A user name for the central Prometheus without its password would be refused by it on every send.
    (json.dumps({"edge_k3s_remote_write": {**REMOTE_WRITE, "username": "factory-1"}}),
     "site factory-1: edge_k3s_remote_write.username is set but edge_k3s_remote_write_password is empty"),
    # Another LAN with the default pool: the message says the pool is a default to set too.
    ('{"edge_k3s_lan_cidr": "10.10.0.0/24"}',
     "the role's default pool is for its default LAN, so a site on another LAN sets edge_k3s_metallb_pool too"),
    # k3s-ansible's variable names do nothing here: each is named with the role's own.
    ('{"k3s_version": "v1.31.1+k3s1", "token": "x"}',
     "k3s_version is k3s-ansible's variable and does nothing here: set edge_k3s_version"),
])
def test_render_rejects_a_bad_plan_before_writing(tmp_path, extra, words):
    result = run_local("edge.yml", tmp_path, "-e", extra)
    assert result.returncode != 0
    assert words in result.stdout, result.stdout[-3000:]
    assert list(tmp_path.iterdir()) == []


def test_metrics_leave_the_site_by_remote_write_with_the_password_only_in_its_redacted_secret(tmp_path):
    """The site's Prometheus sends to the central one with the site as its label, the queue the
    variables size and basic auth from the edge-remote-write Secret; the password appears
    nowhere in the output or the build folder."""
    remote = {**REMOTE_WRITE, "username": "factory-1"}
    result = run_local("edge.yml", tmp_path, "-e", json.dumps({"edge_k3s_remote_write": remote,
                                                              "edge_k3s_remote_write_password": "pw-4f9c1e"}))
    assert result.returncode == 0, result.stdout[-3000:]
    docs = list(yaml.safe_load_all((tmp_path / "edge" / "factory-1" / "manifests.yaml").read_text()))
    prometheus = next(d for d in docs if d["kind"] == "Prometheus")["spec"]
    assert prometheus["externalLabels"] == {"edge_location": "factory-1"}
    assert prometheus["remoteWrite"][0]["url"] == REMOTE_WRITE["url"]
    assert prometheus["remoteWrite"][0]["queueConfig"]["maxBackoff"] == "5m"
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "edge-remote-write")
    assert secret["stringData"] == {"username": "<redacted>", "password": "<redacted>"}
    assert "pw-4f9c1e" not in result.stdout + result.stderr
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and b"pw-4f9c1e" in p.read_bytes()]


def test_reset_refuses_render_mode_and_changes_nothing(tmp_path):
    result = run_local("edge_reset.yml", tmp_path, "-e", "edge_k3s_reset_confirm=factory-1")
    assert result.returncode != 0
    assert "runs only with fabric_mode: apply (this inventory has fabric_mode: render); nothing was changed" in result.stdout
    assert "Uninstall K3s" not in result.stdout, "no host reached the reset tasks"
    assert list(tmp_path.iterdir()) == []


def test_reset_in_apply_mode_needs_the_site_named_and_refuses_the_local_machine(tmp_path):
    unconfirmed = run_local("edge_reset.yml", tmp_path, "-e", "fabric_mode=apply")
    assert unconfirmed.returncode != 0
    assert "confirm with -e edge_k3s_reset_confirm=factory-1" in unconfirmed.stdout
    local = run_local("edge_reset.yml", tmp_path, "-e", "fabric_mode=apply", "-e", "edge_k3s_reset_confirm=factory-1")
    assert local.returncode != 0
    assert "ansible_connection is local, so the reset would remove K3s from the machine that runs Ansible" in local.stdout
    assert "Uninstall K3s" not in local.stdout
    assert list(tmp_path.iterdir()) == []


def test_upgrade_on_the_render_inventory_writes_only_under_the_build_folder(tmp_path):
    build = tmp_path / "build"
    result = run_local("edge_upgrade.yml", build)
    assert result.returncode == 0, result.stdout[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"]
    assert (build / "edge/factory-1/hosts/factory1-server-1/etc/rancher/k3s/config.yaml").exists()
    assert not any(p.name == "k3s" and p.parent.name == "bin" for p in build.rglob("*")), "no binary installed"


def test_the_role_renders_through_the_fleet_and_its_apply_parts_refuse_render_mode(tmp_path):
    """Render has one path: the role's main entry point renders what playbooks/edge.yml renders,
    and host/cluster (apply-mode parts) refuse render mode before anything is written."""
    from tests.fleet import files_of
    from tests.helpers import run_playbook

    hosts = "edge_servers:edge_agents:edge_clusters"
    role = run_playbook(tmp_path, [{"hosts": hosts, "gather_facts": False, "roles": ["k8snet.fabric.edge_k3s"]}],
                        inventory=str(REPO / "inventories" / "local"), extra_vars={"fabric_build_dir": str(tmp_path / "role")})
    assert role.returncode == 0, role.stdout[-3000:]
    playbook = run_local("edge.yml", tmp_path / "playbook")
    assert playbook.returncode == 0, playbook.stdout[-3000:]
    ours, theirs = files_of(tmp_path / "role"), files_of(tmp_path / "playbook")
    assert len(ours) == 20 and ours == theirs
    for part in ("host", "cluster"):
        refused = run_playbook(tmp_path, [{"hosts": "factory1-server-1" if part == "host" else "edge-factory-1",
                                           "gather_facts": False, "tasks": [{"ansible.builtin.include_role": {
                                               "name": "k8snet.fabric.edge_k3s", "tasks_from": part}}]}],
                               inventory=str(REPO / "inventories" / "local"),
                               extra_vars={"fabric_build_dir": str(tmp_path / part)})
        assert refused.returncode != 0, part
        assert "render mode renders every edge site in one pass" in refused.stdout, refused.stdout[-2000:]
        assert not (tmp_path / part).exists()
