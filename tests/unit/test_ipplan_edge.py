"""IP-plan filters and the edge builders: pure functions, no cluster."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import ipplan
from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import edge_k3s
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError


@pytest.mark.parametrize("value,fragment", [
    ("10.0.0.0/33", "longer than IPv4 allows"),
    ("10.0.0.1/8", "host bits are set (did you mean 10.0.0.0/8?)"),
    ("10.0.0.256", "not a valid"),
    ("192.168.1.250-192.168.1.240", "not a valid"),
    ("", "empty"),
])
def test_bad_ranges_name_the_range(value, fragment):
    with pytest.raises(ValidationError) as exc:
        ipplan.parse("edge_k3s_cluster_cidr", value)
    assert str(exc.value).startswith("edge_k3s_cluster_cidr:") and fragment in str(exc.value)


def test_conflicts_explain_themselves():
    plan = {"pods": "10.42.0.0/16", "svc": "10.42.128.0/17", "lan": "192.168.1.0/24",
            "pool": "192.168.1.240-192.168.1.250", "other": "10.41.255.0-10.42.0.5"}
    found = ipplan.conflicts(plan, allowed=[("lan", "pool")])
    assert "pods (10.42.0.0/16) overlaps svc (10.42.128.0/17): svc lies inside pods" in found
    assert any(c.startswith("other") and "they share 10.42.0.0" in c for c in found)
    assert not any("pool" in c for c in found)
    assert ipplan.conflicts({"a": "10.0.0.0/24", "b": "10.0.1.0/24"}) == []
    # The same findings as records, for callers that act on which ranges clash (not on the words).
    records = ipplan.overlaps(plan, allowed=[("lan", "pool")])
    assert [str(r) for r in records] == found
    assert ipplan.Overlap("pods", "10.42.0.0/16", "svc", "10.42.128.0/17", "svc lies inside pods") in records


def test_containment():
    assert ipplan.contains("lan", "192.168.1.0/24", "pool", "192.168.1.240-192.168.1.250") is None
    reason = ipplan.contains("lan", "192.168.1.0/24", "pool", "192.168.1.250-192.168.2.3")
    assert "192.168.2.0" in reason and "lies outside" in reason


def site(**overrides):
    base = {"name": "factory-1", "cluster_cidr": "10.42.0.0/16", "service_cidr": "10.43.0.0/16",
            "cluster_dns": "10.43.0.10", "lan_cidr": "192.168.1.0/24", "metallb_pool": ["192.168.1.240-192.168.1.250"],
            "disable": ["traefik", "servicelb", "metrics-server"], "tls_san": [], "api_endpoint": "",
            "registry_mirrors": {}, "connected_sites": [],
            "hosts": [{"name": "s1", "role": "server", "address": "192.168.1.10", "labels": [], "taints": []},
                      {"name": "a1", "role": "agent", "address": "192.168.1.21", "labels": ["zone=a"], "taints": []}],
            "processor": {"image": "p:v1", "replicas": 2, "port": 8080, "requests": {"cpu": "500m"},
                          "limits": {"cpu": "1"}, "storage": "10Gi"},
            "egress": [{"cidr": "10.0.0.0/8", "except": ["10.255.255.255/32"]}],
            "sync": {"endpoint": "https://x", "schedule": "*/15 * * * *", "image": "s:v1", "egress_cidrs": ["10.0.0.0/8"],
                     "max_delay_minutes": 30, "token": "t", "requests": {"cpu": "100m"}, "limits": {"cpu": "500m"}},
            "prometheus": {"retention": "24h", "storage": "40Gi", "memory": "400Mi", "memory_limit": "800Mi"},
            "storage": {"mode": "local-path", "volumes": []}, "sensor_cidrs": ["192.168.1.0/24"],
            "monitoring": {"receivers": [], "alertmanager_requests": {"cpu": "50m"}, "alertmanager_limits": {"cpu": "200m"},
                           "kube_state_metrics": {"image": "ksm:v2", "requests": {"cpu": "50m"}, "limits": {"cpu": "200m"}}}}
    base.update(overrides)
    return base


def test_agents_get_only_agent_keys():
    spec = site()
    agent = edge_k3s.k3s_config(spec, "a1")
    assert agent == {"node-label": ["edge-location=factory-1", "zone=a"], "node-name": "a1",
                     "server": "https://192.168.1.10:6443"}
    server = edge_k3s.k3s_config(spec, "s1")
    assert server["disable"] == ["traefik", "servicelb", "metrics-server"]
    assert server["cluster-cidr"] == "10.42.0.0/16" and "server" not in server and "cluster-init" not in server
    assert not set(edge_k3s.SERVER_ONLY_KEYS) & set(agent)


def test_ha_first_server_inits_the_others_join():
    spec = site(hosts=[{"name": f"s{i}", "role": "server", "address": f"192.168.1.1{i}"} for i in range(3)])
    configs = [edge_k3s.k3s_config(spec, f"s{i}") for i in range(3)]
    assert configs[0].get("cluster-init") is True and "server" not in configs[0]
    assert all(c["server"] == "https://192.168.1.10:6443" and "cluster-init" not in c for c in configs[1:])
    assert configs[0]["tls-san"] == ["192.168.1.10", "192.168.1.11", "192.168.1.12"]


def test_site_problems_name_host_and_variable():
    assert edge_k3s.site_problems(site()) == []
    bad = site(service_cidr="10.42.0.0/16", disable=["traefik", "bogus"], cluster_dns="10.99.0.10")
    bad["hosts"][1]["labels"] = ["no-equals"]
    bad["hosts"].append(copy.deepcopy(bad["hosts"][1]))
    problems = "\n".join(edge_k3s.site_problems(bad))
    assert "edge_k3s_cluster_cidr (10.42.0.0/16) overlaps edge_k3s_service_cidr" in problems
    assert "edge_k3s_disable item 'bogus'" in problems
    assert "edge_k3s_cluster_dns (10.99.0.10) is not inside edge_k3s_service_cidr" in problems
    assert "host a1: edge_k3s_node_labels item 'no-equals'" in problems
    assert "share the node name 'a1'" in problems


def test_connected_sites_must_not_share_ranges():
    one = site(connected_sites=["factory-2"])
    two = site(name="factory-2", lan_cidr="192.168.2.0/24", metallb_pool=[])
    problems = edge_k3s.site_problems(one, [one, two])
    assert any("connected to factory-2" in p and "cluster_cidr" in p for p in problems)
    assert edge_k3s.site_problems(site(), [site(), two]) == [], "unconnected sites may reuse ranges"


def test_the_plan_is_only_problems_until_the_site_is_sound():
    bad = edge_k3s.plan(site(service_cidr="10.42.0.0/16"))
    assert list(bad) == ["problems"] and "overlaps edge_k3s_service_cidr" in bad["problems"][0]
    good = edge_k3s.plan(site())
    assert good["problems"] == [] and good["objects"] == edge_k3s.site_objects(site())
    assert good["nodes"] == edge_k3s.node_objects(site()) and good["secrets"] == edge_k3s.secret_objects(site())
    assert good["expect"] == edge_k3s.expectations(site()) and good["range_names"] == edge_k3s.range_names(site())


def test_site_objects_use_current_apis():
    kinds = {(o["apiVersion"], o["kind"]) for o in edge_k3s.site_objects(site())}
    assert ("batch/v1", "CronJob") in kinds and ("metallb.io/v1beta1", "IPAddressPool") in kinds
    assert not any(k == "ConfigMap" and o.get("metadata", {}).get("namespace") == "metallb-system"
                   for o in edge_k3s.site_objects(site()) for k in [o["kind"]])
    assert not any(o["kind"] == "Namespace" and o["metadata"]["name"] == "metallb-system"
                   for o in edge_k3s.site_objects(site()))
    assert all(o["kind"] != "IPAddressPool" for o in edge_k3s.site_objects(site(metallb_pool=[])))
    assert edge_k3s.secret_objects(site())[0]["stringData"] == {"token": "t"}


def test_a_string_where_a_list_belongs_and_a_url_where_a_host_belongs_are_refused_alone():
    problems = edge_k3s.site_problems(site(tls_san="api.plant.example", api_endpoint="https://api.plant.example:6443",
                                           registry_mirrors={"docker.io": "https://m:5000"}))
    assert problems == [
        "site factory-1: edge_k3s_tls_san must be a list of strings, got 'api.plant.example' "
        "(write ['api.plant.example'] for one entry)",
        "site factory-1: edge_k3s_api_endpoint 'https://api.plant.example:6443' must be a host name or address "
        "without scheme or port (the role writes https://<endpoint>:6443)",
        "site factory-1: edge_k3s_registry_mirrors['docker.io'] must be a list of endpoint URLs, got "
        "'https://m:5000' (write ['https://m:5000'] for one mirror)"]
    assert edge_k3s.site_problems(site(api_endpoint="api.plant.example")) == []
    assert edge_k3s.site_problems(site(api_endpoint="2001:db8::10")) == [], "an IPv6 address is a host"


def test_servers_encrypt_secrets_and_take_the_flannel_backend():
    server = edge_k3s.k3s_config(site(flannel_backend="wireguard-native"), "s1")
    assert server["secrets-encryption"] is True and server["flannel-backend"] == "wireguard-native"
    assert "flannel-backend" not in edge_k3s.k3s_config(site(), "a1")


def test_storage_must_be_able_to_bind():
    assert edge_k3s.storage_problems(site(), "s") == []
    assert "switches off K3s' local-storage" in edge_k3s.storage_problems(site(disable=["local-storage"]), "s")[0]
    static = {"mode": "static", "volumes": [{"node": "a1", "path": "/data/p", "capacity": "5Gi", "claim": "processor"}]}
    assert edge_k3s.storage_problems(site(storage=static), "s") == [
        "s: the edge_k3s_static_volumes entry for claim processor is smaller than edge_k3s_processor_storage (10Gi): "
        "the claim would stay Pending",
        "s: no edge_k3s_static_volumes entry has claim: prometheus: its claim would stay Pending"]
    static["volumes"] = [{"node": "a1", "path": "/data/p", "capacity": "20Gi", "claim": "processor"},
                         {"node": "s1", "path": "/data/m", "capacity": "50Gi", "claim": "prometheus"}]
    assert edge_k3s.storage_problems(site(storage=static), "s") == []
    bad = {"mode": "static", "volumes": [{"node": "nope", "path": "data", "capacity": "lots", "claim": "db"}]}
    words = "\n".join(edge_k3s.storage_problems(site(storage=bad), "s"))
    assert "node 'nope' is not a node of the site (a1, s1)" in words and "must be an absolute path" in words
    assert "'lots' is not a storage quantity" in words and "claim 'db' is not one of processor, prometheus" in words
    objects = edge_k3s.site_objects(site(storage=static))
    volumes = [o for o in objects if o["kind"] == "PersistentVolume"]
    assert [v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
            for v in volumes] == [["a1"], ["s1"]]
    assert [v["spec"]["claimRef"]["name"] for v in volumes] == [
        "local-pvc", "prometheus-edge-prometheus-db-prometheus-edge-prometheus-0"]
    claim = next(o for o in objects if o["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == "edge-static-local"


def test_every_container_has_limits_and_the_sensors_reach_only_the_ingest_port():
    objects = edge_k3s.site_objects(site())
    for obj in objects:
        spec = obj.get("spec") or {}
        template = (spec.get("jobTemplate") or {}).get("spec", spec).get("template")
        for container in (template or {}).get("spec", {}).get("containers", []):
            assert container["resources"].get("limits"), f"{obj['kind']} {obj['metadata']['name']}"
    service = next(o for o in objects if o["metadata"]["name"] == "edge-processor-ingest")
    assert service["spec"]["type"] == "LoadBalancer" and service["spec"]["externalTrafficPolicy"] == "Local"
    assert service["metadata"]["annotations"] == {"metallb.io/address-pool": "factory-1-pool"}
    assert [p["port"] for p in service["spec"]["ports"]] == [8080]
    expect = edge_k3s.expectations(site())
    assert {"src": "192.168.1.254", "dst": "edge-processing/edge-processor", "port": 8080, "protocol": "TCP",
            "allowed": True} in expect


def test_alertmanager_routes_to_the_receivers():
    config = edge_k3s.alertmanager_config(site(monitoring={**site()["monitoring"], "receivers": [
        {"name": "ops", "webhook_url": "https://hooks.example/ops"}, {"name": "plant", "webhook_url": "https://p"}]}))
    # Which receivers an alert reaches is proven with Alertmanager's own routing (amtool, in
    # tests/integration/test_ecosystem_checkers.py); here only that every receiver is defined once.
    assert [r["name"] for r in config["receivers"]] == ["ops", "plant"]
    assert edge_k3s.alertmanager_config(site())["receivers"] == [{"name": "null"}]


def test_a_connected_site_that_does_not_exist_and_a_server_off_the_lan_are_refused():
    """A typo in edge_k3s_connected_sites checked nothing; a server outside the LAN is where the
    agents would try to join."""
    from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import edge_k3s

    site = {"name": "factory-1", "lan_cidr": "192.168.1.0/24", "cluster_cidr": "10.42.0.0/16",
            "service_cidr": "10.43.0.0/16", "connected_sites": ["factry-2"],
            "hosts": [{"name": "s1", "role": "server", "address": "10.9.9.9"}]}
    found = edge_k3s.site_problems(site, [], site_names=["factory-1", "factory-2"])
    assert "site factory-1: edge_k3s_connected_sites[0] 'factry-2' is not a site of the inventory (did you mean factory-2?)" in found
    site["connected_sites"], site["hosts"][0]["address"] = ["factory-2"], "192.168.1.10"
    assert edge_k3s.site_problems(site, [], site_names=["factory-1", "factory-2"]) == []
    assert edge_k3s.site_problems(site) == [], "without the inventory's sites nothing is guessed"


def test_one_node_name_rule_written_into_every_config():
    """Without edge_k3s_node_name K3s used the host's hostname while the plan waited for the
    inventory name; config.yaml now always names the node the plan expects."""
    from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import edge_k3s

    spec = site()
    spec["hosts"][1]["node_name"] = "line-a-1"
    assert edge_k3s.k3s_config(spec, "s1")["node-name"] == "s1"
    assert edge_k3s.k3s_config(spec, "a1")["node-name"] == "line-a-1"
    assert {n["metadata"]["name"] for n in edge_k3s.node_objects(spec)} == {"s1", "line-a-1"}
    spec["hosts"][0]["name"] = "Factory1_Server"
    assert any("node name 'Factory1_Server'" in p for p in edge_k3s.site_problems(spec))


def test_extra_k3s_flags_merge_and_owned_or_server_only_flags_are_refused():
    from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import edge_k3s
    site = {"name": "f", "api_port": 6444, "cluster_cidr": "10.42.0.0/16", "service_cidr": "10.43.0.0/16",
            "cluster_dns": "10.43.0.10", "hosts": [
                {"name": "s1", "role": "server", "address": "192.168.1.10", "extra_config": {"etcd-snapshot-retention": 10}},
                {"name": "a1", "role": "agent", "extra_config": {"kubelet-arg": ["max-pods=50"]}}]}
    server, agent = edge_k3s.k3s_config(site, "s1"), edge_k3s.k3s_config(site, "a1")
    assert server["https-listen-port"] == 6444 and server["etcd-snapshot-retention"] == 10
    assert agent == {"node-label": ["edge-location=f"], "node-name": "a1", "server": "https://192.168.1.10:6444",
                     "kubelet-arg": ["max-pods=50"]}
    site["hosts"][1]["extra_config"] = {"etcd-snapshot-retention": 5, "node-ip": "1.2.3.4"}
    site["api_port"] = True
    assert edge_k3s.shape_problems(site, "site f") == [
        "site f: edge_k3s_api_port True must be a port number (1-65535)",
        "host a1: edge_k3s_agent_config key 'etcd-snapshot-retention' is a server-only flag; `k3s agent` refuses "
        "to start with it",
        "host a1: edge_k3s_agent_config key 'node-ip' is written by the role; set edge_k3s_node_ip instead"]
    site["api_port"] = 6443
    site["hosts"][1]["extra_config"] = {"cluster-init": True}
    assert "cluster-init" in edge_k3s.shape_problems(site, "site f")[0]
    site["hosts"][1]["extra_config"] = {"kube-apiserver-arg": ["x=1"], "disable-network-policy": True}
    assert [p.split("key ")[1].split(" ")[0] for p in edge_k3s.shape_problems(site, "site f")] == [
        "'kube-apiserver-arg'", "'disable-network-policy'"]


REMOTE = {"url": "https://metrics.example.com/api/v1/write", "username": "factory-1", "password": "s3cret",
          "capacity": 10000, "max_shards": 10, "max_samples_per_send": 2000, "batch_send_deadline": "30s",
          "min_backoff": "1s", "max_backoff": "5m", "behind_seconds": 600}


def test_metrics_leave_the_site_with_its_label_a_sized_queue_and_credentials_in_a_secret():
    with_remote = site(prometheus={**site()["prometheus"], "remote_write": REMOTE})
    objects = edge_k3s.site_objects(with_remote)
    prometheus = next(o for o in objects if o["kind"] == "Prometheus")["spec"]
    assert prometheus["externalLabels"] == {"edge_location": "factory-1"}
    assert prometheus["remoteWrite"] == [{
        "name": "central", "url": "https://metrics.example.com/api/v1/write",
        "queueConfig": {"capacity": 10000, "maxShards": 10, "maxSamplesPerSend": 2000, "batchSendDeadline": "30s",
                        "minBackoff": "1s", "maxBackoff": "5m", "retryOnRateLimit": True},
        "basicAuth": {"username": {"name": "edge-remote-write", "key": "username"},
                      "password": {"name": "edge-remote-write", "key": "password"}}}]
    rules = next(o for o in objects if o["kind"] == "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert [r["alert"] for r in rules][-2:] == ["EdgeRemoteWriteBehind", "EdgeRemoteWriteFailing"]
    assert rules[-2]["expr"].endswith(") > 600")
    assert any(o["kind"] == "ServiceMonitor" and o["metadata"]["name"] == "edge-prometheus-self" for o in objects)
    # The password lives only in the Secret its own no_log task converges, never in site_objects.
    assert "s3cret" not in str(objects)
    secret = next(o for o in edge_k3s.secret_objects(with_remote) if o["metadata"]["name"] == "edge-remote-write")
    assert secret["stringData"] == {"username": "factory-1", "password": "s3cret"}

    staying = edge_k3s.site_objects(site(prometheus={**site()["prometheus"], "remote_write": {**REMOTE, "url": ""}}))
    prometheus = next(o for o in staying if o["kind"] == "Prometheus")["spec"]
    assert "remoteWrite" not in prometheus and "externalLabels" not in prometheus
    assert not any(o["metadata"]["name"] == "edge-remote-write" for o in edge_k3s.secret_objects(site()))


@pytest.mark.parametrize("change, message", [
    ({"url": "metrics.example.com"}, "edge_k3s_remote_write.url 'metrics.example.com' must be an http(s) URL"),
    ({"max_shards": 0}, "edge_k3s_remote_write.max_shards 0 must be 1-1000"),
    ({"capacity": "10000"}, "edge_k3s_remote_write.capacity '10000' must be a whole number"),
    ({"max_backoff": "5 minutes"}, "edge_k3s_remote_write.max_backoff"),
    ({"password": ""}, "edge_k3s_remote_write.username is set but edge_k3s_remote_write_password is empty"),
])
def test_bad_remote_write_values_are_named(change, message):
    bad = site(prometheus={**site()["prometheus"], "remote_write": {**REMOTE, **change}})
    found = edge_k3s.workload_problems(bad, "site factory-1")
    assert any(message in problem for problem in found), found


ARTIFACTS = {"dir": "/art", "binary": "k3s", "images": "img.tar.zst", "sha256": {"k3s": "b" * 64, "img.tar.zst": "i" * 64},
             "addons_dir": "/add", "addon_images": ["metallb.tar"], "addon_manifests": ["metallb.yaml"],
             "addon_sha256": {"metallb.tar": "m" * 64, "metallb.yaml": "y" * 64}, "install_script": False}


def test_a_hosts_files_are_defined_once_with_their_modes():
    mirrored = site(registry_mirrors={"docker.io": ["https://registry.factory-1.local:5000"]})
    server = edge_k3s.host_files(mirrored, "s1", "k3s", "UNIT\n", "K3S_TOKEN=t\n", ARTIFACTS)
    modes = {f["dest"]: f["mode"] for f in server["files"]}
    assert modes == {"/usr/local/bin/k3s": "0755", "/var/lib/rancher/k3s/agent/images/img.tar.zst": "0644",
                     "/var/lib/rancher/k3s/agent/images/metallb.tar": "0644",
                     "/var/lib/rancher/k3s/server/manifests/metallb.yaml": "0600",
                     "/etc/modules-load.d/k3s.conf": "0644", "/etc/sysctl.d/90-k3s.conf": "0644",
                     "/etc/rancher/k3s/config.yaml": "0600", "/etc/systemd/system/k3s.service": "0644",
                     "/etc/systemd/system/k3s.service.env": "0600", "/etc/rancher/k3s/registries.yaml": "0600"}
    env = next(f for f in server["files"] if f["dest"].endswith(".env"))
    assert env == {"dest": "/etc/systemd/system/k3s.service.env", "mode": "0600", "secret_content": "K3S_TOKEN=t\n"}
    registries = next(f for f in server["files"] if f["dest"].endswith("registries.yaml"))["content"]
    assert registries == "mirrors:\n  docker.io:\n    endpoint:\n    - https://registry.factory-1.local:5000\n"
    assert server["absent"] == ["/etc/systemd/system/k3s-agent.service", "/etc/systemd/system/k3s-agent.service.env"]
    assert {"path": "/var/lib/rancher/k3s/server/manifests", "mode": "0700"} in server["directories"]
    # Add-on images are loaded by the running K3s; the release's own images and its config are read at start.
    assert sorted(server["restart_paths"]) == [
        "/etc/rancher/k3s/config.yaml", "/etc/rancher/k3s/registries.yaml", "/etc/systemd/system/k3s.service",
        "/etc/systemd/system/k3s.service.env", "/usr/local/bin/k3s", "/var/lib/rancher/k3s/agent/images/img.tar.zst"]
    assert set(server["sysctl_paths"]) == {"/etc/modules-load.d/k3s.conf", "/etc/sysctl.d/90-k3s.conf"} <= set(modes)

    agent = edge_k3s.host_files(site(), "a1", "k3s-agent", "UNIT\n", "K3S_TOKEN=<redacted>\n")
    assert [f["dest"] for f in agent["files"]] == [
        "/etc/modules-load.d/k3s.conf", "/etc/sysctl.d/90-k3s.conf", "/etc/rancher/k3s/config.yaml",
        "/etc/systemd/system/k3s-agent.service", "/etc/systemd/system/k3s-agent.service.env"]
    assert agent["absent"][0] == "/etc/rancher/k3s/registries.yaml", "a mirror that went is removed"
    config = next(f for f in agent["files"] if f["dest"].endswith("config.yaml"))["content"]
    assert config.splitlines()[:2] == ["node-label:", "- edge-location=factory-1"]  # the plan's order, not sorted
    assert not any(d["path"].endswith("manifests") for d in agent["directories"])


def test_the_yaml_text_is_what_to_nice_yaml_writes():
    from ansible.plugins.filter.core import to_nice_yaml

    spec = site(registry_mirrors={"docker.io": ["https://r:5000"], "ghcr.io": ["https://r:5001"]}, tls_san=["api.ü.example"])
    for data, ordered in ((edge_k3s.k3s_config(spec, "s1"), False), (edge_k3s.registries(spec), True)):
        assert edge_k3s._yaml(data, ordered) == to_nice_yaml(data, indent=2, sort_keys=ordered)
