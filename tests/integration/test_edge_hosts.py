"""Scenario 4's host part over real SSH: two test hosts (sshd on 127.0.0.2/.3), each with its
own root prefix. K3s itself is not run (edge_k3s_manage_service: false)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, run_playbook
from tests.testbed.bundle import write_addons
from tests.testbed.sshhosts import SshHosts, known_hosts_line

pytestmark = pytest.mark.testbed
SERVER, AGENT = "factory1-server-1", "factory1-agent-1"
TOKEN = "K10-cluster-token-never-logged"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ssh_hosts(tmp_path_factory):
    hosts = SshHosts([SERVER, AGENT], run_dir=tmp_path_factory.mktemp("sshhosts"))
    facts = hosts.up()
    yield hosts, facts
    hosts.down()


@pytest.fixture
def artifacts(tmp_path):
    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "k3s").write_bytes(b"#!/bin/sh\necho 'k3s v1.37.2+k3s1 (test artifact)'\n")
    (folder / "k3s-airgap-images-amd64.tar.zst").write_bytes(os.urandom(4096))
    write_sums(folder)
    return folder


def write_sums(folder: Path) -> None:
    (folder / "sha256sum-amd64.txt").write_text("".join(
        f"{sha256(folder / name)}  {name}\n" for name in ("k3s", "k3s-airgap-images-amd64.tar.zst")))


def inventory(tmp_path, ssh_hosts, artifacts, **site_vars) -> str:
    hosts, facts = ssh_hosts
    host_vars = hosts.inventory_vars(facts, sys.executable)
    host_vars[SERVER]["edge_k3s_node_name"] = "factory1-server-1"
    host_vars[AGENT].update({"edge_k3s_node_name": "factory1-agent-1", "edge_k3s_node_labels": ["edge-zone=line-a"],
                             "edge_k3s_node_taints": ["dedicated=sensors:NoSchedule"]})
    site = {"edge_k3s_site": "factory-1", "edge_k3s_lan_cidr": "127.0.0.0/8", "edge_k3s_metallb_pool": [],
            "edge_k3s_token": TOKEN, "edge_k3s_artifacts_dir": str(artifacts), "edge_k3s_manage_service": False,
            "edge_k3s_addons_dir": str(write_addons(tmp_path / "addons")),
            "edge_k3s_min_free_gb": 0, "fabric_mode": "apply",
            "edge_k3s_kubeconfig": str(tmp_path / "controller" / "factory-1.yaml"),
            "edge_k3s_registry_mirrors": {"docker.io": ["https://registry.local:5000"]}, **site_vars}
    # The site's cluster entry is there (a site without one is refused); these tests run the host
    # part only, as `--limit edge_servers:edge_agents` does (playbook() below).
    doc = {"all": {"children": {
        "edge_factory_1": {"hosts": {**host_vars, "edge-factory-1": {"ansible_connection": "local"}}, "vars": site},
        "edge_servers": {"hosts": {SERVER: None}}, "edge_agents": {"hosts": {AGENT: None}},
        "edge_clusters": {"hosts": {"edge-factory-1": None}}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def playbook(tmp_path, name, inv, *args, extra_vars=None):
    plays = yaml.safe_load((REPO / "playbooks" / name).read_text())
    return run_playbook(tmp_path, plays, "--limit", "edge_servers:edge_agents", *args, inventory=inv, extra_vars=extra_vars,
                        env={"HOME": str(tmp_path / "home")})


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_install_places_verified_files_with_exact_configs(ssh_hosts, artifacts, tmp_path):
    hosts, facts = ssh_hosts
    server_root, agent_root = Path(facts[SERVER]["root"]), Path(facts[AGENT]["root"])
    # What K3s would write once running, so the kubeconfig fetch has something to fetch.
    (server_root / "etc/rancher/k3s").mkdir(parents=True, exist_ok=True)
    (server_root / "etc/rancher/k3s/k3s.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "default",
        "clusters": [{"name": "default", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": "Q0E="}}],
        "users": [{"name": "default", "user": {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}]}))
    inv = inventory(tmp_path, ssh_hosts, artifacts)
    result = playbook(tmp_path, "edge.yml", inv)
    assert result.returncode == 0, result.stdout[-5000:]
    assert TOKEN not in result.stdout + result.stderr

    for root in (server_root, agent_root):
        binary = root / "usr/local/bin/k3s"
        assert sha256(binary) == sha256(artifacts / "k3s") and binary.stat().st_mode & 0o777 == 0o755
        images = root / "var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst"
        assert sha256(images) == sha256(artifacts / "k3s-airgap-images-amd64.tar.zst")
        assert (root / "etc/rancher/k3s/config.yaml").stat().st_mode & 0o777 == 0o600
        assert yaml.safe_load((root / "etc/rancher/k3s/registries.yaml").read_text()) == {
            "mirrors": {"docker.io": {"endpoint": ["https://registry.local:5000"]}}}

    server_cfg = yaml.safe_load((server_root / "etc/rancher/k3s/config.yaml").read_text())
    assert server_cfg == {"node-label": ["edge-location=factory-1"], "node-name": "factory1-server-1",
                          "write-kubeconfig-mode": "0600", "cluster-cidr": "10.42.0.0/16",
                          "service-cidr": "10.43.0.0/16", "cluster-dns": "10.43.0.10",
                          "disable": ["traefik", "servicelb", "metrics-server"],
                          "secrets-encryption": True, "flannel-backend": "vxlan", "tls-san": ["127.0.0.2"]}
    agent_cfg = yaml.safe_load((agent_root / "etc/rancher/k3s/config.yaml").read_text())
    assert agent_cfg == {"node-label": ["edge-location=factory-1", "edge-zone=line-a"], "node-name": "factory1-agent-1",
                         "node-taint": ["dedicated=sensors:NoSchedule"], "server": "https://127.0.0.2:6443"}

    units = server_root / "etc/systemd/system"
    assert sorted(p.name for p in units.iterdir()) == ["k3s.service", "k3s.service.env"]
    assert "ExecStart=/usr/local/bin/k3s server" in (units / "k3s.service").read_text()
    assert sorted(p.name for p in (agent_root / "etc/systemd/system").iterdir()) == ["k3s-agent.service", "k3s-agent.service.env"]
    assert "ExecStart=/usr/local/bin/k3s agent" in (agent_root / "etc/systemd/system/k3s-agent.service").read_text()
    env = agent_root / "etc/systemd/system/k3s-agent.service.env"
    assert env.stat().st_mode & 0o777 == 0o600 and f"K3S_TOKEN={TOKEN}" in env.read_text()

    fetched = tmp_path / "controller" / "factory-1.yaml"
    assert fetched.stat().st_mode & 0o777 == 0o600
    kubeconfig = yaml.safe_load(fetched.read_text())
    assert kubeconfig["clusters"][0] == {"name": "factory-1", "cluster": {
        "server": "https://127.0.0.2:6443", "certificate-authority-data": "Q0E="}}
    assert kubeconfig["current-context"] == "factory-1"
    assert not (tmp_path / "home" / ".kube").exists(), "the user's ~/.kube/config is never written"

    again = playbook(tmp_path, "edge.yml", inv)
    assert again.returncode == 0, again.stdout[-3000:]
    for host in (SERVER, AGENT):
        line = next(l for l in again.stdout.splitlines() if l.startswith(host + " ") and "ok=" in l)
        assert "changed=0" in line, line

    # Render writes what apply installed, from the same definition: every text file, the same
    # text and mode (the token redacted), the sysctls and kernel modules included.
    build = tmp_path / "build"
    rendered = run_playbook(tmp_path, yaml.safe_load((REPO / "playbooks" / "edge.yml").read_text()), inventory=inv,
                            extra_vars={"fabric_mode": "render", "fabric_build_dir": str(build)},
                            env={"HOME": str(tmp_path / "home")})
    assert rendered.returncode == 0, rendered.stdout[-3000:]
    for host, root in ((SERVER, server_root), (AGENT, agent_root)):
        host_dir = build / "edge" / "factory-1" / "hosts" / host
        files = sorted(str(p.relative_to(host_dir)) for p in host_dir.rglob("*") if p.is_file())
        assert len(files) == 6 and "etc/sysctl.d/90-k3s.conf" in files and "etc/modules-load.d/k3s.conf" in files, files
        for name in files:
            installed = root / name
            assert (host_dir / name).read_text() == installed.read_text().replace(TOKEN, "<redacted>"), name
            assert (host_dir / name).stat().st_mode & 0o777 == installed.stat().st_mode & 0o777, name


@pytest.mark.parametrize("key", ["unknown", "changed"])
def test_a_host_whose_key_is_unknown_or_changed_gets_nothing(ssh_hosts, artifacts, tmp_path, key):
    """The shipped ansible.cfg leaves host key checking on: with the hosts' keys missing from
    known_hosts, or different there (a man in the middle), the real playbook stops at the SSH
    handshake, before the token or any file is sent."""
    hosts, facts = ssh_hosts
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    if key == "changed":
        other = tmp_path / "other_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        known_hosts.write_text("".join(known_hosts_line(h["address"], h["port"], Path(f"{other}.pub"))
                                       for h in facts.values()))
    doc = yaml.safe_load(Path(inventory(tmp_path, ssh_hosts, artifacts)).read_text())
    for name in (SERVER, AGENT):  # the user's own known_hosts file, no StrictHostKeyChecking of ours
        doc["all"]["children"]["edge_factory_1"]["hosts"][name]["ansible_ssh_common_args"] = \
            f"-o UserKnownHostsFile={known_hosts}"
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(doc))
    roots = {name: Path(facts[name]["root"]) for name in (SERVER, AGENT)}
    before = {name: tree(root) for name, root in roots.items()}
    logs = {name: hosts.run_dir / name / "sshd.log" for name in (SERVER, AGENT)}
    marks = {name: log.stat().st_size for name, log in logs.items()}

    result = playbook(tmp_path, "edge.yml", str(tmp_path / "inventory.yml"))

    assert result.returncode != 0
    assert "Host key verification failed" in result.stdout, result.stdout[-3000:]
    if key == "changed":
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stdout
    assert {name: tree(root) for name, root in roots.items()} == before, "nothing reached the hosts"
    for name, log in logs.items():
        with log.open("rb") as handle:
            handle.seek(marks[name])
            assert b"Accepted publickey" not in handle.read(), f"{name}: no login happened"


def test_a_host_that_changes_role_keeps_only_its_new_unit(ssh_hosts, artifacts, tmp_path):
    hosts, facts = ssh_hosts
    agent_root = Path(facts[AGENT]["root"])
    stale = agent_root / "etc/systemd/system/k3s.service"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("[Service]\nExecStart=/usr/local/bin/k3s server\n")
    result = playbook(tmp_path, "edge.yml", inventory(tmp_path, ssh_hosts, artifacts))
    assert result.returncode == 0, result.stdout[-3000:]
    assert not stale.exists()


@pytest.mark.parametrize("breakage,words", [
    ("checksum", ["artifact", "k3s has sha256", "expected"]),
    ("token", ["edge_k3s_token is empty"]),
    ("hostname", ["share the node name"]),
    ("label", ["edge_k3s_node_labels item 'zone'"]),
])
def test_bad_values_fail_before_any_host_changes(ssh_hosts, artifacts, tmp_path, breakage, words):
    hosts, facts = ssh_hosts
    extra, site_vars = {}, {}
    if breakage == "checksum":
        (artifacts / "k3s").write_bytes(b"tampered")
    elif breakage == "token":
        site_vars["edge_k3s_token"] = ""
    elif breakage == "label":
        extra["edge_k3s_node_labels"] = ["zone"]
    inv = inventory(tmp_path, ssh_hosts, artifacts, **site_vars)
    if breakage == "hostname":
        doc = yaml.safe_load(Path(inv).read_text())
        # One node name for two hosts: K3s would refuse the second node (the name is no longer the
        # host's own hostname, read at preflight; it is edge_k3s_node_name, else the inventory name).
        for host in doc["all"]["children"]["edge_factory_1"]["hosts"].values():
            if host.get("ansible_connection") != "local":
                host["edge_k3s_node_name"] = "line-1"
        Path(inv).write_text(yaml.safe_dump(doc))
    before = {name: tree(Path(f["root"])) for name, f in facts.items()}
    result = playbook(tmp_path, "edge.yml", inv, extra_vars=extra or None)
    assert result.returncode != 0
    for word in words:
        assert word in result.stdout, result.stdout[-4000:]
    assert {name: tree(Path(f["root"])) for name, f in facts.items()} == before, "nothing changed on any host"


def test_upgrade_goes_one_node_at_a_time_servers_first(ssh_hosts, artifacts, tmp_path):
    hosts, facts = ssh_hosts
    inv = inventory(tmp_path, ssh_hosts, artifacts)
    assert playbook(tmp_path, "edge.yml", inv).returncode == 0
    (artifacts / "k3s").write_bytes(b"#!/bin/sh\necho 'k3s v1.37.3+k3s1 (test artifact)'\n")
    write_sums(artifacts)
    result = playbook(tmp_path, "edge_upgrade.yml", inv)
    assert result.returncode == 0, result.stdout[-4000:]
    for f in facts.values():
        assert b"v1.37.3" in (Path(f["root"]) / "usr/local/bin/k3s").read_bytes()
    lines = result.stdout.splitlines()
    plays = [l.split("]")[0] + "]" for l in lines if l.startswith("PLAY [")]
    assert plays == ["PLAY [The inventory has the hosts this playbook runs on]",
                     "PLAY [Render the edge fleet]",  # apply mode: its one task is skipped
                     "PLAY [Validate every edge site and verify the new artifacts]",
                     "PLAY [Upgrade servers, one at a time]", "PLAY [Upgrade agents, one at a time]"]
    # serial: 1 -> the files task runs once per node, the server's batch before the agent's.
    batches = [lines[i + 1] for i, l in enumerate(lines)
               if l.startswith("TASK [k8snet.fabric.edge_k3s : Place and verify every file K3s needs")]
    assert [b.split("[")[1].split("]")[0] for b in batches] == [SERVER, AGENT]


def test_reset_removes_everything_it_installed(ssh_hosts, artifacts, tmp_path):
    hosts, facts = ssh_hosts
    inv = inventory(tmp_path, ssh_hosts, artifacts)
    assert playbook(tmp_path, "edge.yml", inv).returncode == 0
    refused = playbook(tmp_path, "edge_reset.yml", inv)
    assert refused.returncode != 0 and "confirm with -e edge_k3s_reset_confirm=factory-1" in refused.stdout
    assert all((Path(f["root"]) / "usr/local/bin/k3s").exists() for f in facts.values()), "nothing removed"
    result = playbook(tmp_path, "edge_reset.yml", inv, extra_vars={"edge_k3s_reset_confirm": "factory-1"})
    assert result.returncode == 0, result.stdout[-3000:]
    for f in facts.values():
        root = Path(f["root"])
        for path in ("usr/local/bin/k3s", "etc/rancher/k3s", "var/lib/rancher/k3s", "etc/systemd/system/k3s.service",
                     "etc/systemd/system/k3s-agent.service"):
            assert not (root / path).exists(), path


@pytest.fixture
def mirror(artifacts):
    """An internal artifact mirror: a real HTTP server on loopback serving the artifacts."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(artifacts))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_install_from_an_internal_mirror(ssh_hosts, artifacts, mirror, tmp_path):
    hosts, facts = ssh_hosts
    inv = inventory(tmp_path, ssh_hosts, tmp_path / "nowhere", edge_k3s_artifacts_url=mirror,
                    edge_k3s_artifacts_cache=str(tmp_path / "cache"))
    result = playbook(tmp_path, "edge.yml", inv)
    assert result.returncode == 0, result.stdout[-4000:]
    for f in facts.values():
        assert sha256(Path(f["root"]) / "usr/local/bin/k3s") == sha256(artifacts / "k3s")
    # A mirror serving a file that does not match its checksum stops the run before any host changes.
    (artifacts / "k3s").write_bytes(b"tampered on the mirror")
    before = {name: tree(Path(f["root"])) for name, f in facts.items()}
    (tmp_path / "cache" / "k3s").unlink()
    bad = playbook(tmp_path, "edge.yml", inv)
    assert bad.returncode != 0 and "checksum" in bad.stdout.lower(), bad.stdout[-3000:]
    assert {name: tree(Path(f["root"])) for name, f in facts.items()} == before


def test_check_mode_changes_nothing_on_hosts(ssh_hosts, artifacts, tmp_path):
    hosts, facts = ssh_hosts
    playbook(tmp_path, "edge_reset.yml", inventory(tmp_path, ssh_hosts, artifacts))
    before = {name: tree(Path(f["root"])) for name, f in facts.items()}
    result = playbook(tmp_path, "edge.yml", inventory(tmp_path, ssh_hosts, artifacts), "--check")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "changed=" in result.stdout
    assert {name: tree(Path(f["root"])) for name, f in facts.items()} == before


def test_addons_are_verified_and_delivered_the_k3s_way(ssh_hosts, artifacts, tmp_path):
    """MetalLB's and the Prometheus Operator's real release manifests go to the server's K3s
    manifests folder (K3s applies them), their image archives to every node's images folder."""
    hosts, facts = ssh_hosts
    inv = inventory(tmp_path, ssh_hosts, artifacts, edge_k3s_metallb_pool=["127.0.0.240-127.0.0.250"])
    addons = tmp_path / "addons"
    result = playbook(tmp_path, "edge.yml", inv)
    assert result.returncode == 0, result.stdout[-4000:]
    server, agent = Path(facts[SERVER]["root"]), Path(facts[AGENT]["root"])
    manifests = server / "var/lib/rancher/k3s/server/manifests"
    assert sorted(p.name for p in manifests.iterdir()) == ["metallb-native.yaml", "prometheus-operator-bundle.yaml"]
    for name in ("metallb-native.yaml", "prometheus-operator-bundle.yaml"):
        assert sha256(manifests / name) == sha256(addons / name)
    assert "kind: DaemonSet" in (manifests / "metallb-native.yaml").read_text(), "the upstream release manifest"
    for root in (server, agent):
        images = {p.name for p in (root / "var/lib/rancher/k3s/agent/images").iterdir()}
        assert {"metallb-images-amd64.tar", "monitoring-images-amd64.tar"} <= images
    assert not (agent / "var/lib/rancher/k3s/server/manifests").exists(), "agents apply no manifests"
    # A manifest that does not match its checksum stops the run before any host changes.
    (addons / "metallb-native.yaml").write_text("tampered")
    before = {name: tree(Path(f["root"])) for name, f in facts.items()}
    bad = playbook(tmp_path, "edge.yml", inv)
    assert bad.returncode != 0
    assert f"artifact {addons}/metallb-native.yaml has sha256" in bad.stdout, bad.stdout[-3000:]
    assert {name: tree(Path(f["root"])) for name, f in facts.items()} == before


def ssh_round_trips(output: str, address: str) -> dict:
    """SSH and SFTP processes Ansible started for one host, per task (from -vvv's "SSH: EXEC")."""
    trips, task = {}, None
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line[6:line.index("]")]
        elif line.startswith(f"<{address}> SSH: EXEC"):
            trips[task] = trips.get(task, 0) + 1
    return trips


def test_a_host_files_are_placed_in_one_transfer_and_an_unchanged_host_costs_one_round_trip(ssh_hosts, artifacts, tmp_path):
    hosts, facts = ssh_hosts
    inv = inventory(tmp_path, ssh_hosts, artifacts)
    playbook(tmp_path, "edge_reset.yml", inv, extra_vars={"edge_k3s_reset_confirm": "factory-1"})
    files_task = "k8snet.fabric.edge_k3s : Place and verify every file K3s needs, in one pass (one round trip when nothing changed)"
    first = playbook(tmp_path, "edge.yml", inv, "-vvv")
    assert first.returncode == 0, first.stdout[-4000:]
    again = playbook(tmp_path, "edge.yml", inv, "-vvv")
    assert again.returncode == 0, again.stdout[-4000:]
    for host in (SERVER, AGENT):
        address = facts[host]["address"]
        # module run (which makes the archive's folder), one transfer of every large file, module run
        assert ssh_round_trips(first.stdout, address)[files_task] == 3
        assert ssh_round_trips(again.stdout, address)[files_task] == 1
        assert first.stdout.count(f"<{address}> PUT ") == 1, "one transfer for all of the host's large files"
        preflight = "k8snet.fabric.edge_k3s : Check the host can take K3s (OS and architecture, kernel, default route, disk, ports), in one pass"
        assert ssh_round_trips(first.stdout, address)[preflight] == ssh_round_trips(again.stdout, address)[preflight] == 1
        kubeconfig = {"k8snet.fabric.edge_k3s : Look for the kubeconfig K3s wrote": 1} if host == SERVER else {}
        assert ssh_round_trips(again.stdout, address) == {preflight: 1, files_task: 1, **kubeconfig}, "nothing else reaches the host"
    assert TOKEN not in first.stdout + again.stdout


def test_drift_on_a_host_is_repaired_and_shown_with_the_token_redacted(ssh_hosts, artifacts, tmp_path):
    hosts, facts = ssh_hosts
    inv = inventory(tmp_path, ssh_hosts, artifacts)
    assert playbook(tmp_path, "edge.yml", inv).returncode == 0
    agent = Path(facts[AGENT]["root"])
    (agent / "usr/local/bin/k3s").write_bytes(b"replaced by hand")
    (agent / "etc/systemd/system/k3s-agent.service.env").write_text("K3S_TOKEN=stale-token\n")
    (agent / "etc/rancher/k3s/config.yaml").chmod(0o644)
    checked = playbook(tmp_path, "edge.yml", inv, "--check", "--diff")
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert (agent / "usr/local/bin/k3s").read_bytes() == b"replaced by hand", "check mode writes nothing"
    assert f"+sha256 {sha256(artifacts / 'k3s')} (k3s)" in checked.stdout
    assert "<redacted>" in checked.stdout and "stale-token" not in checked.stdout and TOKEN not in checked.stdout
    repaired = playbook(tmp_path, "edge.yml", inv, "--diff")
    assert repaired.returncode == 0, repaired.stdout[-4000:]
    assert sha256(agent / "usr/local/bin/k3s") == sha256(artifacts / "k3s")
    assert f"K3S_TOKEN={TOKEN}" in (agent / "etc/systemd/system/k3s-agent.service.env").read_text()
    assert (agent / "etc/rancher/k3s/config.yaml").stat().st_mode & 0o777 == 0o600
    assert TOKEN not in repaired.stdout + repaired.stderr and "stale-token" not in repaired.stdout
    line = next(l for l in repaired.stdout.splitlines() if l.startswith(SERVER + " ") and "ok=" in l)
    assert "changed=0" in line, "the server had no drift: " + line
