"""Render mode for a fleet: the one-pass render (k8snet.fabric.edge_fleet) writes every host's files
and every site's manifests and proof (that a host's rendered files are what apply installs, text
and mode, is test_edge_hosts'), re-runs change nothing, check mode writes nothing, a bad site stops
every site before any write, and --limit slices (AWX sliced jobs) add up to the whole run."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import yaml

from tests.fleet import files_of, inventory, write_inventory
from tests.helpers import REPO, recap


def render(tmp_path, data: dict, *args: str, build_name: str = "build"):
    folder = write_inventory(tmp_path / "inventory", data)
    build = tmp_path / build_name
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(folder),
            str(REPO / "playbooks" / "edge.yml"), "-e", f"fabric_build_dir={build}", *args]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    return proc, build


def varied(sites: int = 3) -> dict:
    """Sites that differ: a host-level override of a site variable, taints, no registry mirrors."""
    data = inventory(sites)
    groups = data["all"]["children"]
    groups["edge_factory_2"]["vars"].pop("edge_k3s_registry_mirrors")
    groups["edge_factory_2"]["vars"]["edge_k3s_flannel_backend"] = "wireguard-native"
    groups["edge_factory_2"]["vars"]["edge_k3s_remote_write"] = {  # metrics leave this site
        "url": "https://metrics.example.com/api/v1/write", "username": "factory-2", "capacity": 5000, "max_shards": 4,
        "max_samples_per_send": 1000, "batch_send_deadline": "1m", "min_backoff": "5s", "max_backoff": "10m",
        "behind_seconds": 1800}
    groups["edge_factory_2"]["vars"]["edge_k3s_remote_write_password"] = "pw-factory-2"
    groups["edge_factory_3"]["hosts"]["f3-agent-2"]["edge_k3s_node_taints"] = ["dedicated=sensors:NoSchedule"]
    groups["edge_factory_3"]["hosts"]["f3-agent-1"]["edge_k3s_version"] = "v1.31.4+k3s1"  # a canary host
    return data


def test_the_fleet_render_writes_every_hosts_files_and_every_sites_manifests_once(tmp_path):
    fleet, fleet_build = render(tmp_path, varied())
    assert fleet.returncode == 0, fleet.stdout[-3000:]
    text = " ".join(fleet.stdout.split())
    assert "3 sites and 12 hosts checked; 57 files" in text, text[-2000:]
    assert text.count("skipping: no hosts matched") == 3, "the apply-mode plays run on no host"
    ours = files_of(fleet_build)
    # 9 hosts x 6 files (site 2's 3 without registries.yaml), 3 manifests, 3 reports
    assert len(ours) == 57 and len([p for p in ours if "/hosts/" in p]) == 51
    canary = (fleet_build / "edge/factory-3/hosts/f3-agent-1/etc/rancher/k3s/config.yaml").read_text()
    assert "wireguard" not in canary
    site_2 = yaml.safe_load((fleet_build / "edge/factory-2/hosts/f2-server-1/etc/rancher/k3s/config.yaml").read_text())
    assert site_2["flannel-backend"] == "wireguard-native", "a site variable reaches its hosts"
    assert not (fleet_build / "edge/factory-2/hosts/f2-server-1/etc/rancher/k3s/registries.yaml").exists()
    remote = (fleet_build / "edge/factory-2/manifests.yaml").read_text()
    assert "remoteWrite:" in remote and "maxBackoff: 10m" in remote and "pw-factory-2" not in remote
    assert "remoteWrite" not in (fleet_build / "edge/factory-1/manifests.yaml").read_text()
    assert "dedicated=sensors:NoSchedule" in (fleet_build / "edge/factory-3/hosts/f3-agent-2/etc/rancher/k3s/config.yaml").read_text()

    again, _build = render(tmp_path, varied())
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0


def test_check_mode_writes_nothing_and_diff_shows_the_change(tmp_path):
    checked, build = render(tmp_path, inventory(2), "--check")
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert not build.exists(), "check mode writes nothing, not even the build folder"
    first, build = render(tmp_path, inventory(2))
    assert first.returncode == 0
    before = files_of(build)
    changed = inventory(2)
    changed["all"]["children"]["edge_factory_2"]["vars"]["edge_k3s_flannel_backend"] = "host-gw"
    preview, build = render(tmp_path, changed, "--check", "--diff")
    assert preview.returncode == 0, preview.stdout[-3000:]
    assert "+flannel-backend: host-gw" in preview.stdout and "-flannel-backend: vxlan" in preview.stdout
    assert files_of(build) == before


def test_a_bad_site_stops_every_site_before_any_write(tmp_path):
    cases = [
        (("edge_factory_2", "vars", "edge_k3s_lan_cidr"), "172.16.2.0/33", "edge_k3s_lan_cidr"),
        (("edge_factory_3", "vars", "edge_k3s_processor_replicas"), "three", "edge_k3s_processor_replicas"),
        (("edge_factory_2", "vars", "edge_k3s_processor_replicas"), "{{ no_such_variable }}", "'no_such_variable' is undefined"),
        (("edge_factory_1", "vars", "edge_k3s_lan_cdir"), "172.16.1.0/24",
         "edge_k3s_lan_cdir is not a variable of edge_k3s (did you mean edge_k3s_lan_cidr?)"),
    ]
    for (group, key, name), value, words in cases:
        data = inventory(3)
        data["all"]["children"][group][key][name] = value
        result, build = render(tmp_path, data)
        text = " ".join((result.stdout + result.stderr).split())
        assert result.returncode != 0, text[-2000:]
        assert words in text, text[-2000:]
        assert "Traceback" not in text
        assert not build.exists(), f"{name}: wrote before failing"


def test_a_site_without_its_cluster_entry_is_refused(tmp_path):
    data = inventory(2)
    data["all"]["children"]["edge_factory_2"]["hosts"].pop("edge-factory-2")
    data["all"]["children"]["edge_clusters"]["hosts"].pop("edge-factory-2")
    result, build = render(tmp_path, data)
    assert result.returncode != 0
    assert "site factory-2 (f2-server-1) has no host in both edge_clusters and edge_factory_2" in " ".join(result.stdout.split())
    assert not build.exists()


def test_slices_by_site_add_up_to_the_whole_run(tmp_path):
    """AWX sliced job templates run the playbook once per slice with --limit; slices that keep a
    site's hosts and its cluster entry together render exactly what one run renders."""
    data = inventory(4)
    whole, whole_build = render(tmp_path, copy.deepcopy(data), build_name="whole")
    assert whole.returncode == 0, whole.stdout[-3000:]
    sliced = {}
    for index, limit in enumerate(("edge_factory_1:edge_factory_3", "edge_factory_2:edge_factory_4")):
        part, build = render(tmp_path, copy.deepcopy(data), "--limit", limit, build_name="sliced")
        assert part.returncode == 0, part.stdout[-3000:]
        assert "2 sites and 8 hosts checked" in " ".join(part.stdout.split()), f"slice {index}"
        sliced = files_of(build)
    assert sliced == files_of(whole_build)


def test_round_robin_slices_add_up_and_each_checks_its_sites_routes(tmp_path):
    """AWX slices a job's hosts round robin, splitting sites across slices: in render mode every
    host's files and every site's manifests come out the same, and a slice still checks its sites
    against the connected sites other slices render."""
    data = inventory(3)
    whole, whole_build = render(tmp_path, copy.deepcopy(data), build_name="whole")
    assert whole.returncode == 0, whole.stdout[-3000:]
    hosts = [h for group in ("edge_servers", "edge_agents", "edge_clusters") for h in data["all"]["children"][group]["hosts"]]
    for index in range(2):
        part, build = render(tmp_path, copy.deepcopy(data), "--limit", ",".join(hosts[index::2]), build_name="sliced")
        assert part.returncode == 0, part.stdout[-3000:]
    assert files_of(build) == files_of(whole_build)

    connected = copy.deepcopy(data)
    connected["all"]["children"]["edge_factory_1"]["vars"]["edge_k3s_connected_sites"] = ["factory-3"]
    refused, build = render(tmp_path, connected, "--limit", "edge_factory_1", build_name="refused")
    text = " ".join(refused.stdout.split())
    assert refused.returncode != 0 and "connected to factory-3, but" in text, text[-2000:]
    assert not build.exists()
