"""Scenario 4's cluster part: playbooks/edge.yml on inventories/testbed against edge-factory-1."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import REPO, install_manifest, phase_is, run_playbook, running, wait_for
from tests.packets import controlled, probes_against_report, until

pytestmark = pytest.mark.testbed
CLUSTER = "edge-factory-1"
DATAPLANE_SERVICES = True  # kube-proxy and the cluster DNS on the data plane (conftest.py)
NODES = ("factory1-server-1", "factory1-agent-1")


def edge(tmp_path, *args, extra_vars=None):
    """playbooks/edge.yml on the testbed inventory; output and reports under tmp_path/build."""
    plays = yaml.safe_load((REPO / "playbooks" / "edge.yml").read_text())
    return run_playbook(tmp_path, plays, *args, extra_vars={"fabric_build_dir": str(tmp_path / "build"), **(extra_vars or {})},
                        inventory=str(REPO / "inventories" / "testbed"))


@pytest.fixture(scope="module")
def edge_cluster(testbed, tmp_path_factory):
    """What K3s does with the add-on manifests the host part places in its manifests folder:
    apply them. The real upstream files (MetalLB's metallb-native.yaml, the Prometheus
    Operator's bundle.yaml) go through the engine; MetalLB's validating webhook is left out
    because no request reaches a pod here (kwok runs pods, nothing serves)."""
    from tests.testbed.bundle import write_addons

    addons = write_addons(tmp_path_factory.mktemp("addons"))
    for name in ("metallb-native.yaml", "prometheus-operator-bundle.yaml"):
        install_manifest(testbed.client(CLUSTER), addons / name)
    return testbed.client(CLUSTER)


def get(client, path):
    return client.request("GET", path, allow=(404,))


def test_site_objects_land_on_the_cluster_and_stay_converged(testbed, edge_cluster, dataplane, tmp_path):
    result = edge(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    c = edge_cluster
    pool = get(c, "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/factory-1-pool")
    assert pool["spec"]["addresses"] == ["192.168.1.240-192.168.1.250"]
    l2 = get(c, "/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements/factory-1-l2")
    assert l2["spec"]["ipAddressPools"] == ["factory-1-pool"]
    sc = get(c, "/apis/storage.k8s.io/v1/storageclasses/edge-static-local")
    assert sc["provisioner"] == "kubernetes.io/no-provisioner" and sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert get(c, "/api/v1/namespaces/edge-processing/persistentvolumeclaims/local-pvc")["spec"]["storageClassName"] == "edge-static-local"
    deploy = get(c, "/apis/apps/v1/namespaces/edge-processing/deployments/edge-processor")
    term = deploy["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term == {"key": "edge-location", "operator": "In", "values": ["factory-1"]}
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"},
                                      "limits": {"cpu": "1", "memory": "1Gi"}}
    cron = get(c, "/apis/batch/v1/namespaces/edge-processing/cronjobs/data-sync")
    assert cron["spec"]["schedule"] == "*/15 * * * *"
    env = {e["name"]: e["valueFrom"] for e in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SYNC_TOKEN"] == {"secretKeyRef": {"name": "sync-secrets", "key": "token"}}
    assert get(c, "/api/v1/namespaces/edge-processing/configmaps/sync-config")["data"]["cloud-endpoint"]
    assert "find /data -mmin +30" in get(c, "/api/v1/namespaces/edge-processing/configmaps/sync-check")["data"]["check.sh"]
    assert get(c, "/api/v1/namespaces/edge-processing/secrets/sync-secrets")["data"]["token"]
    netpol = get(c, "/apis/networking.k8s.io/v1/namespaces/edge-processing/networkpolicies/edge-network-policy")["spec"]
    assert netpol["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"type": "sensor"}}}]
    assert netpol["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.255.255.255/32"]}} in netpol["egress"][0]["to"]
    assert any(p.get("port") == 53 for rule in netpol["egress"] for p in rule.get("ports", []))
    deny = get(c, "/apis/networking.k8s.io/v1/namespaces/edge-processing/networkpolicies/default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    prom = get(c, "/apis/monitoring.coreos.com/v1/namespaces/edge-monitoring/prometheuses/edge-prometheus")["spec"]
    assert prom["retention"] == "24h"
    assert prom["storage"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "40Gi"
    rules = get(c, "/apis/monitoring.coreos.com/v1/namespaces/edge-monitoring/prometheusrules/edge-alerts")
    assert [r["alert"] for r in rules["spec"]["groups"][0]["rules"]] == ["EdgeNodeDown", "EdgeNodePressure", "EdgeSyncDelayed"]
    for name in NODES:
        assert get(c, f"/api/v1/nodes/{name}")["metadata"]["labels"]["edge-location"] == "factory-1"
    assert get(c, "/api/v1/nodes/factory1-agent-1")["metadata"]["labels"]["edge-zone"] == "line-a"

    # The site works once booted: storage binds, pods land where they belong.
    claim = wait_for(lambda: phase_is(get(c, "/api/v1/namespaces/edge-processing/persistentvolumeclaims/local-pvc"),
                                      "Bound"), "the processor's claim Bound")
    volume = get(c, f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")
    assert volume["spec"]["local"]["path"] == "/var/lib/edge/processor"
    processors = wait_for(lambda: running(c, "edge-processing", "app=data-processor", 2), "2 processor pods Running")
    assert {p["spec"]["nodeName"] for p in processors} == {"factory1-agent-1"}, "on the node that holds the volume"
    for pod in processors:
        node = get(c, f"/api/v1/nodes/{pod['spec']['nodeName']}")
        assert node["metadata"]["labels"]["edge-location"] == "factory-1"
    assert wait_for(lambda: running(c, "edge-monitoring", "app.kubernetes.io/name=kube-state-metrics", 1), "kube-state-metrics")
    ingest_service = get(c, "/api/v1/namespaces/edge-processing/services/edge-processor-ingest")
    assert ingest_service["spec"]["type"] == "LoadBalancer" and [p["port"] for p in ingest_service["spec"]["ports"]] == [8080]
    assert ingest_service["metadata"]["annotations"]["metallb.io/address-pool"] == "factory-1-pool"
    lan = get(c, "/apis/networking.k8s.io/v1/namespaces/edge-processing/networkpolicies/sensors-from-lan")["spec"]
    assert lan["ingress"] == [{"from": [{"ipBlock": {"cidr": "192.168.1.0/24"}}], "ports": [{"protocol": "TCP", "port": 8080}]}]
    assert get(c, "/apis/monitoring.coreos.com/v1/namespaces/edge-monitoring/alertmanagers/edge-alertmanager")
    assert prom["serviceAccountName"] == "edge-prometheus" and prom["serviceMonitorSelector"] == {
        "matchLabels": {"edge-location": "factory-1"}}
    # MetalLB from its release manifest: controller and speakers run (kwok), speakers not on the
    # node tainted for sensors (the manifest tolerates only control-plane taints).
    assert wait_for(lambda: running(c, "metallb-system", "component=controller", 1), "MetalLB's controller")
    speakers = wait_for(lambda: running(c, "metallb-system", "component=speaker", 2), "MetalLB's speakers")
    assert {p["spec"]["nodeName"] for p in speakers} == {"factory1-server-1", "factory1-agent-1"}
    # The proof ran (a violated expectation would have failed the run above).
    # The proof ran and wrote its report (a violated expectation would have failed the run).
    report = tmp_path / "build" / "edge" / "factory-1" / "report" / "connlist.txt"
    assert "192.168.1.0-192.168.1.255 (factory-1 LAN) => edge-processing/edge-processor[Deployment] : TCP 8080" in report.read_text()
    # On real packets: a sensor on the factory LAN reaches the processors' ingest port, a host off
    # the LAN does not, and every probe equals the report.
    dataplane.add_outside("sensor", "192.168.1.50")
    dataplane.add_outside("off-lan", "198.51.100.9")
    packets = probes_against_report(dataplane, testbed, CLUSTER, ["edge-processing"], report, ["sensor", "off-lan"])
    assert packets["pods"] == 2 and not packets["wrong"], packets["wrong"]
    ingest = {(src, port): verdict for (src, _dst, port), verdict in packets["matrix"].items()
              if src.startswith("outside:")}
    assert ingest == {("outside:sensor", "8080/TCP"): "open", ("outside:off-lan", "8080/TCP"): "refused"}, ingest
    # Through the ingest Service: its name resolves inside the site (the processors' DNS egress
    # works), and its node port on the processors' node (where MetalLB's speaker or K3s'
    # servicelb delivers the LoadBalancer address) admits the sensor, with its own address
    # kept (externalTrafficPolicy Local), and not the host off the LAN.
    processor = next(name for name in dataplane.pods if name.startswith(f"{CLUSTER}/edge-processing/edge-processor"))
    answer = dataplane.resolve(processor, "edge-processor-ingest")
    assert answer["rcode"] == "NOERROR" and answer["addresses"] == [ingest_service["spec"]["clusterIP"]], answer
    node = dataplane.nodes["factory1-agent-1"].address
    node_port = ingest_service["spec"]["ports"][0]["nodePort"]
    through = dataplane.probe_addresses(["outside:sensor", "outside:off-lan"], [(node, node_port, "TCP")], peers=True)
    assert through == {("outside:sensor", f"{node}:{node_port}/TCP"): "open from 192.168.1.50",
                       ("outside:off-lan", f"{node}:{node_port}/TCP"): "refused"}, through
    # MetalLB for real, as the site's manifest and the role's pool set it up: its controller
    # gives the ingest Service an address from the site's pool, the speaker on the processors'
    # node answers ARP for it on the factory LAN, and a sensor there reaches a processor.
    dataplane.run_metallb(CLUSTER)
    dataplane.add_lan("factory-1", CLUSTER, "192.168.1.0/24")
    dataplane.add_lan_client("factory-1", "lan-sensor", "192.168.1.51")
    assigned = controlled(dataplane, lambda: (get(c, "/api/v1/namespaces/edge-processing/services/edge-processor-ingest")
                                              .get("status", {}).get("loadBalancer") or {}).get("ingress"),
                          "MetalLB's controller assigns the ingest address")
    address = assigned[0]["ip"]
    assert 240 <= int(address.rsplit(".", 1)[1]) <= 250 and address.startswith("192.168.1."), assigned
    dataplane.settle()
    target = [(address, 8080, "TCP")]
    until(lambda: dataplane.probe_addresses(["outside:lan-sensor"], target)[
        ("outside:lan-sensor", f"{address}:8080/TCP")] == "open", timeout=30)
    assert dataplane.probe_addresses(["outside:lan-sensor"], target, peers=True) == {
        ("outside:lan-sensor", f"{address}:8080/TCP"): "open from 192.168.1.51"}
    assert not dataplane.enforcer_failures()

    mark = testbed.audit_mark(CLUSTER)
    again = edge(tmp_path)
    assert again.returncode == 0 and recap_of(again.stdout, "edge-factory-1")["changed"] == 0, again.stdout[-3000:]
    assert testbed.writes(CLUSTER, since=mark) == []
    assert "testbed-sync-token" not in again.stdout + result.stdout


def test_node_readiness_names_the_nodes_that_are_not_ready(testbed, tmp_path):
    task = {"k8snet.fabric.node_readiness": {"names": ["factory1-server-1", "factory1-agent-9"], "timeout": 2,
                                             **testbed.connection(CLUSTER)}}
    result = run_playbook(tmp_path, [{"hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    assert result.returncode == 2
    assert "1 of 2 nodes not Ready after 2s: factory1-agent-9: not registered" in result.stdout, result.stdout[-2000:]


def recap_of(output: str, host: str) -> dict:
    for line in output.splitlines():
        if line.startswith(host + " ") and "ok=" in line:
            return {k: int(v) for k, v in (p.split("=") for p in line.split(":", 1)[1].split())}
    raise AssertionError(output[-2000:])


def test_check_mode_writes_nothing_and_removed_items_are_pruned(testbed, edge_cluster, tmp_path):
    assert edge(tmp_path).returncode == 0
    mark = testbed.audit_mark(CLUSTER)
    checked = edge(tmp_path, "--check", extra_vars={"edge_k3s_metallb_pool": [], "edge_k3s_sync_schedule": "*/5 * * * *"})
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert recap_of(checked.stdout, "edge-factory-1")["changed"] >= 1
    assert testbed.writes(CLUSTER, since=mark) == []

    pruned = edge(tmp_path, extra_vars={"edge_k3s_metallb_pool": []})
    assert pruned.returncode == 0, pruned.stdout[-3000:]
    c = edge_cluster
    assert get(c, "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/factory-1-pool") is None
    assert get(c, "/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements/factory-1-l2") is None
    assert get(c, "/api/v1/namespaces/metallb-system")["metadata"].get("deletionTimestamp") is None, \
        "MetalLB's own namespace is never pruned"
    restored = edge(tmp_path)
    assert restored.returncode == 0, restored.stdout[-3000:]


@pytest.mark.parametrize("extra,words", [
    ({"edge_k3s_service_cidr": "10.42.0.0/16"}, ["edge_k3s_cluster_cidr (10.42.0.0/16) overlaps edge_k3s_service_cidr"]),
    ({"edge_k3s_cluster_cidr": "10.0.0.0/33"}, ["edge_k3s_cluster_cidr", "10.0.0.0/33"]),
    ({"edge_k3s_disable": ["traefik", "trafik"]}, ["edge_k3s_disable item 'trafik'"]),
    ({"edge_k3s_metallb_pool": ["10.9.0.1-10.9.0.9"]}, ["edge_k3s_metallb_pool[0]", "not inside edge_k3s_lan_cidr"]),
    ({"edge_k3s_sync_token": ""}, ["edge_k3s_sync_token is empty"]),
    ({"edge_k3s_node_labels": ["zone"]}, ["edge_k3s_node_labels item 'zone' must be key=value"]),
])
def test_bad_inventory_values_fail_before_any_change(testbed, edge_cluster, tmp_path, extra, words):
    mark = testbed.audit_mark(CLUSTER)
    result = edge(tmp_path, extra_vars=extra)
    assert result.returncode != 0
    for word in words:
        assert word in result.stdout, result.stdout[-3000:]
    assert testbed.writes(CLUSTER, since=mark) == []
    assert "Converge the site" not in result.stdout, "validation stops the run before the cluster play"


def test_the_cluster_part_runs_with_exactly_the_rbac_it_ships(testbed, edge_cluster, tmp_path):
    """roles/edge_k3s/files/rbac.yml is enough (the site's Prometheus and kube-state-metrics roles
    are granted through escalate/bind on their two names, not by holding their reads); without
    MetalLB's rules the run fails before any write, naming the resource and the file."""
    from tests.rbac import assert_least_privilege

    (tmp_path / "admin").mkdir()
    assert edge(tmp_path / "admin").returncode == 0
    # Taken away as admin, so that the bound account's first run has something to write.
    for path in ("/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/factory-1-pool",
                 "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/edge-prometheus",
                 "/apis/rbac.authorization.k8s.io/v1/clusterroles/edge-prometheus"):
        edge_cluster.request("DELETE", path)

    def run(kubeconfig, folder):
        folder.mkdir(parents=True, exist_ok=True)
        return edge(folder, extra_vars={"fabric_testbed_kubeconfig": str(kubeconfig)})

    assert_least_privilege(testbed, tmp_path, "edge_k3s", [CLUSTER], run, take_away="metallb.io", resource="ipaddresspools")
    assert get(edge_cluster, "/apis/rbac.authorization.k8s.io/v1/clusterroles/edge-prometheus")["rules"]


def test_the_site_apiserver_killed_while_the_site_is_written(testbed, edge_cluster, tmp_path):
    """The run fails within 30 s naming the site's cluster; back up, it converges, then changes nothing."""
    from tests.faults import kill_at_first_write
    from tests.helpers import start_playbook

    for path in ("/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/factory-1-pool",
                 "/apis/batch/v1/namespaces/edge-processing/cronjobs/data-sync"):
        edge_cluster.request("DELETE", path, allow=(404,))
    plays = yaml.safe_load((REPO / "playbooks" / "edge.yml").read_text())
    proc = start_playbook(tmp_path, plays, extra_vars={"fabric_build_dir": str(tmp_path / "build")},
                          inventory=str(REPO / "inventories" / "testbed"))
    stdout, took = kill_at_first_write(testbed, CLUSTER, proc, "edge.yml")
    text = " ".join(stdout.split())
    assert proc.returncode != 0 and took < 30, (took, text[-2000:])
    assert f"{CLUSTER}: the API server" in text and "cannot be reached" in text, text[-3000:]
    print(f"\nedge_k3s: failed {took:.1f}s after {CLUSTER} was killed")
    assert edge(tmp_path).returncode == 0
    mark = testbed.audit_mark(CLUSTER)
    again = edge(tmp_path)
    assert again.returncode == 0 and recap_of(again.stdout, "edge-factory-1")["changed"] == 0, again.stdout[-3000:]
    assert testbed.writes(CLUSTER, since=mark) == []
