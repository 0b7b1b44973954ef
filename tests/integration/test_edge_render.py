"""The main job on the embedded default: `ansible-playbook playbooks/edge.yml` in render mode."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from tests.helpers import REPO


def run_edge(build_dir):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    return subprocess.run([str(os.path.join(os.path.dirname(sys.executable), "ansible-playbook")),
                           "playbooks/edge.yml", "-e", f"fabric_build_dir={build_dir}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


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
    assert set(agent) == {"node-label", "node-taint", "server"}
    assert (site / "hosts/factory1-agent-2/etc/systemd/system/k3s-agent.service").exists()
    assert not (site / "hosts/factory1-agent-2/etc/systemd/system/k3s.service").exists()
    env = (site / "hosts/factory1-server-1/etc/systemd/system/k3s.service.env").read_text()
    assert "K3S_TOKEN=<redacted>" in env
    docs = list(yaml.safe_load_all((site / "manifests.yaml").read_text()))
    kinds = [d["kind"] for d in docs]
    assert kinds.count("NetworkPolicy") == 4 and "IPAddressPool" in kinds and "CronJob" in kinds
    assert next(d for d in docs if d["kind"] == "Secret")["stringData"] == {"token": "<redacted>"}
    assert "schema-checked offline" in first.stdout and "run k3s server" in first.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"], "nothing outside the build folder"

    second = run_edge(build)
    assert second.returncode == 0
    assert all("changed=0" in line for line in second.stdout.splitlines() if "ok=" in line)


def test_render_rejects_a_bad_plan_before_writing(tmp_path):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                             "playbooks/edge.yml", "-e", f"fabric_build_dir={tmp_path}",
                             "-e", '{"edge_k3s_metallb_pool": ["192.168.9.1-192.168.9.9"]}'],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "edge_k3s_metallb_pool[0] (192.168.9.1-192.168.9.9) is not inside edge_k3s_lan_cidr" in result.stdout
    assert list(tmp_path.iterdir()) == []
