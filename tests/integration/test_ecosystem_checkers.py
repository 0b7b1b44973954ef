"""The ecosystems' own checkers, built from their pinned Go modules, and the module that runs
them before a role writes anything (k8snet.fabric.ecosystem_check)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from tests.helpers import REPO, run_playbook

from ansible_collections.k8snet.fabric.plugins.module_utils import ecosystem_check

CHAPTER_EXPR = 'up{job="edge-node", edge-location="factory-1"} == 0'
FIXED_EXPR = 'kube_node_status_condition{condition="Ready", status="true"} == 0'


def rule(expr, name="edge-alerts"):
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": name, "namespace": "monitoring"},
            "spec": {"groups": [{"name": "edge.rules", "rules": [
                {"alert": "EdgeNodeDown", "expr": expr, "for": "5m"}]}]}}


def test_promtool_rejects_the_chapters_expression_and_accepts_the_corrected_one(checker):
    promtool = checker("promtool")
    bad = ecosystem_check.run("promtool", [rule(CHAPTER_EXPR)], promtool)
    assert bad["checked"] and bad["checked_objects"] == 1
    [finding] = bad["findings"]
    assert finding["object"] == "PrometheusRule monitoring/edge-alerts"
    assert "EdgeNodeDown" in finding["message"] and "parse" in finding["message"]
    good = ecosystem_check.run("promtool", [rule(FIXED_EXPR)], promtool)
    assert good == {"checked": True, "binary": promtool, "checked_objects": 1, "findings": []}


def istio_fixture(subset):
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "shop"},
         "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
         "metadata": {"name": "reviews", "namespace": "shop"},
         "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": "reviews", "namespace": "shop"},
         "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": subset}}]}]}},
    ]


def test_istioctl_analyze_reports_a_route_to_an_undefined_subset(checker):
    istioctl = checker("istioctl")
    bad = ecosystem_check.run("istioctl", istio_fixture("v3"), istioctl)
    codes = {(f["code"], f["level"]) for f in bad["findings"]}
    assert ("IST0101", "error") in codes, bad["findings"]
    assert any("VirtualService shop/reviews" in f["object"] for f in bad["findings"] if f["code"] == "IST0101")
    good = ecosystem_check.run("istioctl", istio_fixture("v1"), istioctl)
    assert [f for f in good["findings"] if f["level"] in ("error", "warning")] == []
    assert good["checked_objects"] == 2


def check_task(objects, **options):
    return {"hosts": "localhost", "gather_facts": False, "tasks": [
        {"k8snet.fabric.ecosystem_check": {"checker": "promtool", "objects": objects, **options},
         "register": "out"},
        {"ansible.builtin.copy": {"content": "{{ out | to_json }}", "dest": "{{ result_file }}", "mode": "0600"}}]}


def test_the_module_fails_naming_the_rule_and_writes_nothing(tmp_path, checker):
    result = run_playbook(tmp_path, [check_task([rule(CHAPTER_EXPR)], binary=checker("promtool"))],
                          extra_vars={"result_file": str(tmp_path / "out.json")})
    assert result.returncode == 2, result.stdout[-2000:]
    assert "promtool refuses 1 finding(s); nothing was written" in result.stdout
    assert "PrometheusRule monitoring/edge-alerts" in result.stdout
    assert not (tmp_path / "out.json").exists()


def promtool_test_rules(checker, tmp_path, rules: dict, tests: list[dict]) -> None:
    """``promtool test rules`` over ``rules`` (a rule file's groups) with these unit tests
    (1-minute evaluation); fails with promtool's report."""
    import subprocess

    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
                                                         "tests": tests}))
    tested = subprocess.run([checker("promtool"), "test", "rules", "tests.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_edge_remote_write_alerts_fire_by_promtool_when_the_queue_falls_behind(tmp_path, checker):
    """The site's queue alerts, unit-tested by promtool on series as Prometheus exports them: the
    newest sent sample stuck while reading goes on fires EdgeRemoteWriteBehind (labelled with the
    queue and the site), a queue that keeps up fires nothing, refused samples fire
    EdgeRemoteWriteFailing."""
    from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import edge_k3s

    remote = {"url": "https://metrics.example.com/api/v1/write", "behind_seconds": 600}
    site = {"name": "factory-1", "prometheus": {"remote_write": remote}}
    rules = {"groups": [{"name": "edge.rules", "rules": edge_k3s.remote_write_alerts(site)}]}
    queue = 'remote_name="central",url="https://metrics.example.com/api/v1/write"'
    site_labels = {"severity": "warning", "edge_location": "factory-1", "instance": "p", "remote_name": "central",
                   "url": "https://metrics.example.com/api/v1/write"}
    promtool_test_rules(checker, tmp_path, rules, [
        {"interval": "1m", "input_series": [
            {"series": 'prometheus_remote_storage_highest_timestamp_in_seconds{instance="p"}', "values": "0+60x40"},
            {"series": f'prometheus_remote_storage_queue_highest_sent_timestamp_seconds{{instance="p",{queue}}}',
             "values": "0x40"},
            {"series": f'prometheus_remote_storage_samples_failed_total{{instance="p",{queue}}}', "values": "0+10x40"}],
         "alert_rule_test": [
             {"eval_time": "10m", "alertname": "EdgeRemoteWriteBehind", "exp_alerts": []},
             {"eval_time": "30m", "alertname": "EdgeRemoteWriteBehind", "exp_alerts": [{
                 "exp_labels": site_labels,
                 "exp_annotations": {"summary": "metrics of factory-1 reach the central Prometheus 30m 0s late"}}]},
             {"eval_time": "30m", "alertname": "EdgeRemoteWriteFailing", "exp_alerts": [{
                 "exp_labels": site_labels,
                 "exp_annotations": {"summary": "the central Prometheus refuses samples of factory-1"}}]}]},
        {"interval": "1m", "input_series": [
            {"series": 'prometheus_remote_storage_highest_timestamp_in_seconds{instance="p"}', "values": "0+60x40"},
            {"series": f'prometheus_remote_storage_queue_highest_sent_timestamp_seconds{{instance="p",{queue}}}',
             "values": "0+60x40"},
            {"series": f'prometheus_remote_storage_samples_failed_total{{instance="p",{queue}}}', "values": "0x40"}],
         "alert_rule_test": [{"eval_time": "30m", "alertname": "EdgeRemoteWriteBehind", "exp_alerts": []},
                             {"eval_time": "30m", "alertname": "EdgeRemoteWriteFailing", "exp_alerts": []}]}])


def test_the_hybrid_latency_alerts_fire_by_promtool_for_the_slow_and_the_lossy_location(tmp_path, checker):
    """hybrid_dns's latency alerts, unit-tested by promtool on the blackbox exporter's series: a
    location answering in 500 ms is slow, one whose probes all fail is lossy, a healthy one
    fires nothing; each alert names its location."""
    from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import hybrid_dns

    latency = {"prober": "blackbox-exporter.monitoring.svc:9115", "module": "tcp_connect", "namespace": "monitoring",
               "interval": "30s", "latency_ms": 200, "loss_ratio": 0.05, "for": "5m"}
    locations = [{"name": name, "endpoints": [address]} for name, address in
                 (("on-prem", "10.0.100.10"), ("aws", "172.16.100.10"), ("azure", "192.168.100.10"))]
    objects = hybrid_dns.latency_objects({"locations": locations, "latency": latency, "probe_port": 443})
    rule = next(o for o in objects if o["kind"] == "PrometheusRule")

    def series(metric, location, address, values):
        return {"series": f'{metric}{{job="hybrid-latency",location="{location}",instance="{address}:443"}}',
                "values": values}
    promtool_test_rules(checker, tmp_path, rule["spec"], [{"interval": "1m", "input_series": [
        series("probe_duration_seconds", "on-prem", "10.0.100.10", "0.01x20"),
        series("probe_success", "on-prem", "10.0.100.10", "1x20"),
        series("probe_duration_seconds", "aws", "172.16.100.10", "0.5x20"),
        series("probe_success", "aws", "172.16.100.10", "1x20"),
        series("probe_duration_seconds", "azure", "192.168.100.10", "0.05x20"),
        series("probe_success", "azure", "192.168.100.10", "0x20")],
        "alert_rule_test": [
            {"eval_time": "15m", "alertname": "HybridLocationSlow", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "location": "aws"},
                "exp_annotations": {"summary": "location aws answers in 500 ms"}}]},
            {"eval_time": "15m", "alertname": "HybridLocationLoss", "exp_alerts": [{
                "exp_labels": {"severity": "critical", "location": "azure"},
                "exp_annotations": {"summary": "location azure fails 100% of probes"}}]}]}])


def test_without_promtool_the_module_warns_that_nothing_was_checked(tmp_path):
    env = {"PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if "testbed" not in p)}
    result = run_playbook(tmp_path, [check_task([rule(CHAPTER_EXPR)])],
                          extra_vars={"result_file": str(tmp_path / "out.json")}, env=env)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "promtool is not installed" in result.stderr and "nothing was checked" in result.stderr
    assert json.loads((tmp_path / "out.json").read_text())["checked"] is False
    required = run_playbook(tmp_path, [check_task([rule(FIXED_EXPR)], required=True)],
                            extra_vars={"result_file": str(tmp_path / "out2.json")}, env=env)
    assert required.returncode == 2 and "promtool is not installed" in required.stdout


@pytest.mark.parametrize("playbook", ["edge.yml", "ecommerce.yml", "mesh.yml", "multicluster.yml"])
def test_fabric_require_checkers_turns_a_missing_checker_into_a_failure(tmp_path, playbook):
    """Without the tools every run used to pass with a warning; an inventory can make them mandatory
    (inventories/testbed does). Nothing is written when it fails."""
    env = {"PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if "testbed" not in p)}
    plays = yaml.safe_load((REPO / "playbooks" / playbook).read_text())
    build = tmp_path / "build"
    result = run_playbook(tmp_path, plays, extra_vars={"fabric_build_dir": str(build), "fabric_require_checkers": True},
                          inventory=str(REPO / "inventories" / "local"), env=env)
    output = " ".join(result.stdout.split())
    assert result.returncode != 0, output[-2000:]
    assert "is not installed" in output and "nothing was checked" in output, output[-2000:]
    assert not [p for p in build.rglob("*") if p.is_file()] if build.exists() else True


@pytest.mark.parametrize("playbook, folder", [("edge.yml", "edge/factory-1"), ("ecommerce.yml", "ecommerce"),
                                              ("mesh.yml", "mesh")])
def test_every_rendered_prometheus_rule_passes_promtool(tmp_path, checker, playbook, folder):
    build_dir = tmp_path / "build"
    plays = yaml.safe_load((REPO / "playbooks" / playbook).read_text())
    result = run_playbook(tmp_path, plays, inventory=str(REPO / "inventories" / "local"),
                          extra_vars={"fabric_build_dir": str(build_dir)})
    assert result.returncode == 0, result.stdout[-3000:]
    assert "alert rules with Prometheus's own promtool" in result.stdout
    objects = [o for f in build_dir.joinpath(folder).glob("*.yaml")
               for o in yaml.safe_load_all(f.read_text()) if o]
    rules = [o for o in objects if o["kind"] == "PrometheusRule"]
    assert rules, "the render has alert rules"
    checked = ecosystem_check.run("promtool", rules, checker("promtool"))
    assert checked["checked_objects"] == len(rules) and checked["findings"] == []


@pytest.mark.testbed
def test_istioctl_generates_an_install_from_the_roles_file_that_the_testbed_runs(testbed, tmp_path, checker):
    """`istioctl manifest generate -f` over the install file istio_mesh writes, applied through
    the engine: CRDs, istiod and the gateway, webhooks accepted; kwok runs istiod's pods."""
    import subprocess

    from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import Engine

    from tests.helpers import wait_for

    build_dir = tmp_path / "build"
    plays = yaml.safe_load((REPO / "playbooks" / "mesh.yml").read_text())
    rendered = run_playbook(tmp_path, plays, inventory=str(REPO / "inventories" / "local"),
                            extra_vars={"fabric_build_dir": str(build_dir)})
    assert rendered.returncode == 0, rendered.stdout[-3000:]
    generated = subprocess.run([checker("istioctl"), "manifest", "generate", "-f",
                                str(build_dir / "mesh" / "istio-operator.yaml")],
                               capture_output=True, text=True, check=True).stdout
    objects = [d for d in yaml.safe_load_all(generated) if d]
    kinds = {o["kind"] for o in objects}
    assert {"CustomResourceDefinition", "Deployment", "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration"} <= kinds
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}
    # The testbed installed Istio's CRDs from istio.io/api already: istioctl's take them over.
    engine = Engine(testbed.client("eu-west"), force_conflicts=True)
    result = engine.converge("istio-install", "istio-system", [namespace, *objects], "overridden")
    assert result["changed"]
    client = testbed.client("eu-west")
    try:
        def istiod_running():
            pods = client.request("GET", "/api/v1/namespaces/istio-system/pods",
                                  query={"labelSelector": "app=istiod"})["items"]
            return [p for p in pods if p["status"].get("phase") == "Running"]
        assert wait_for(istiod_running, "istiod's pods Running on kwok nodes", timeout=90)
        hooks = client.request("GET", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-sidecar-injector")
        assert hooks["webhooks"]
    finally:
        # The webhooks point at an istiod no packet reaches: remove everything but the CRDs,
        # which other tests of this cluster use.
        Engine(testbed.client("eu-west")).delete(
            "istio-install", "istio-system", [o for o in objects if o["kind"] != "CustomResourceDefinition"])


@pytest.mark.parametrize("inventory, gateway_api", [("local", "istio"), ("testbed", "istio"), ("local", "gateway-api")])
def test_every_mesh_render_passes_istioctl_analyze(tmp_path, checker, inventory, gateway_api):
    """What every Istio user runs: `istioctl analyze -A` finds no error and no warning in what
    istio_mesh renders, for each of the project's inventories."""
    build_dir = tmp_path / "build"
    plays = yaml.safe_load((REPO / "playbooks" / "mesh.yml").read_text())
    gateway = yaml.safe_load((REPO / "roles" / "istio_mesh" / "defaults" / "main.yml").read_text())["istio_mesh_gateway"]
    result = run_playbook(tmp_path, plays, inventory=str(REPO / "inventories" / inventory),
                          extra_vars={"fabric_build_dir": str(build_dir), "fabric_mode": "render",
                                      "istio_mesh_gateway": {**gateway, "api": gateway_api}})
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Istio's own analysis of the mesh configuration" in result.stdout
    objects = [o for o in yaml.safe_load_all((build_dir / "mesh" / "manifests.yaml").read_text()) if o]
    # The gateway's generated certificate is served from the Secret it names (redacted in its file).
    secret = yaml.safe_load((build_dir / "mesh" / "tls-secret.yaml").read_text())
    assert (secret["metadata"]["namespace"], secret["metadata"]["name"]) == (gateway["namespace"], gateway["tls_secret"])
    objects.append(secret)
    analysed = ecosystem_check.run("istioctl", objects, checker("istioctl"))
    assert analysed["checked_objects"] >= 7
    assert [f for f in analysed["findings"] if f["level"] in ("error", "warning")] == []


def test_istioctl_takes_the_tracing_provider_into_the_mesh_config(tmp_path, checker):
    """With a tracing collector, the install file istioctl generates from carries the
    OpenTelemetry provider into the mesh configuration istiod reads (the `istio` ConfigMap), the
    Telemetry names that provider, and istioctl analyze stays clean."""
    import subprocess

    build_dir = tmp_path / "build"
    plays = yaml.safe_load((REPO / "playbooks" / "mesh.yml").read_text())
    collector = "opentelemetry-collector.observability.svc.cluster.local:4317"
    result = run_playbook(tmp_path, plays, inventory=str(REPO / "inventories" / "local"), extra_vars={
        "fabric_build_dir": str(build_dir), "fabric_mode": "render",
        "istio_mesh_telemetry": {"access_logging": True, "tracing_sampling": 10.0, "tracing_collector": collector}})
    assert result.returncode == 0, result.stdout[-3000:]
    generated = subprocess.run([checker("istioctl"), "manifest", "generate", "-f",
                                str(build_dir / "mesh" / "istio-operator.yaml")],
                               capture_output=True, text=True, check=True).stdout
    config_map = next(d for d in yaml.safe_load_all(generated)
                      if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == "istio")
    mesh_config = yaml.safe_load(config_map["data"]["mesh"])
    assert mesh_config["enableTracing"] is True
    assert mesh_config["extensionProviders"] == [{"name": "otel-tracing", "opentelemetry": {
        "service": "opentelemetry-collector.observability.svc.cluster.local", "port": 4317}}]
    objects = [o for o in yaml.safe_load_all((build_dir / "mesh" / "manifests.yaml").read_text()) if o]
    telemetry = next(o for o in objects if o["kind"] == "Telemetry")
    assert telemetry["spec"]["tracing"] == [{"providers": [{"name": "otel-tracing"}], "randomSamplingPercentage": 10.0}]
    analysed = ecosystem_check.run("istioctl", objects, checker("istioctl"))
    assert [f for f in analysed["findings"] if f["level"] in ("error", "warning")] == []


def test_the_mesh_role_refuses_what_istioctl_would_flag_first_naming_the_variable(tmp_path, checker):
    """A route to a subset no DestinationRule defines: istioctl says IST0101 (see above); the
    role's own check says which variable, before anything is written."""
    services = yaml.safe_load((REPO / "roles" / "istio_mesh" / "defaults" / "main.yml").read_text())["istio_mesh_services"]
    services[0]["routes"][0]["split"] = {"v3": 90, "v1": 10}
    plays = yaml.safe_load((REPO / "playbooks" / "mesh.yml").read_text())
    result = run_playbook(tmp_path, plays, inventory=str(REPO / "inventories" / "local"),
                          extra_vars={"fabric_build_dir": str(tmp_path / "build"), "istio_mesh_services": services})
    assert result.returncode != 0
    assert "istio_mesh_services[0].routes[0].split: version 'v3' is not one of the service's versions" in result.stdout
    assert not (tmp_path / "build").exists()


@pytest.mark.testbed
def test_istio_install_runs_istioctl_once_per_file_and_revision_and_verifies(testbed, tmp_path, checker):
    install_file = tmp_path / "istio-operator.yaml"
    plays = yaml.safe_load((REPO / "playbooks" / "mesh.yml").read_text())
    assert run_playbook(tmp_path, plays, inventory=str(REPO / "inventories" / "local"),
                        extra_vars={"fabric_build_dir": str(tmp_path / "build")}).returncode == 0
    install_file.write_text((tmp_path / "build" / "mesh" / "istio-operator.yaml").read_text())
    import uuid

    revision = f"r{uuid.uuid4().hex[:6]}"  # a fresh control plane per run of this test
    task = {"k8snet.fabric.istio_install": {"file": str(install_file), "revision": revision, "timeout": 90,
                                            "istioctl": checker("istioctl"), **testbed.connection("eu-west")},
            "register": "out"}
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        task, {"ansible.builtin.copy": {"content": "{{ out | to_json }}", "dest": "{{ result_file }}", "mode": "0600"}}]}]
    client = testbed.client("eu-west")
    try:
        first = run_playbook(tmp_path, play, extra_vars={"result_file": str(tmp_path / "1.json")})
        assert first.returncode == 0, first.stdout[-3000:]
        out = json.loads((tmp_path / "1.json").read_text())
        assert out["installed"] is True and out["changed"] is True
        assert out["verified"]["istiod"] == f"istio-system/istiod-{revision}" and out["verified"]["crds_established"] >= 10
        again = run_playbook(tmp_path, play, extra_vars={"result_file": str(tmp_path / "2.json")})
        out = json.loads((tmp_path / "2.json").read_text())
        assert again.returncode == 0 and out["installed"] is False and out["changed"] is False
        checked = run_playbook(tmp_path, [{**play[0], "tasks": [task]}], "--check")
        assert checked.returncode == 0 and "changed=0" in checked.stdout, checked.stdout[-2000:]
    finally:
        # No request reaches istiod here: its webhooks would stall this cluster's Istio objects.
        for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            for hook in client.request("GET", f"/apis/admissionregistration.k8s.io/v1/{kind}")["items"]:
                if revision in hook["metadata"]["name"]:
                    client.request("DELETE", f"/apis/admissionregistration.k8s.io/v1/{kind}/{hook['metadata']['name']}")


@pytest.mark.parametrize("receivers", [["ops"], ["ops", "plant"], ["ops", "plant", "pager"]])
def test_every_edge_alert_reaches_every_receiver_by_alertmanagers_own_routing(tmp_path, checker, receivers):
    """The route tree edge_k3s writes, routed by Alertmanager's code (amtool config routes test):
    with two or more receivers the first one used to sit on the root route under matcher-less
    children, and Alertmanager uses a route's own receiver only when no child matches."""
    import subprocess

    from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import edge_k3s

    site = {"monitoring": {"receivers": [{"name": n, "webhook_url": f"https://hooks.example/{n}"} for n in receivers]}}
    config = tmp_path / "alertmanager.yaml"
    config.write_text(yaml.safe_dump(edge_k3s.alertmanager_config(site)))
    for alert in (["alertname=EdgeNodeNotReady", "edge_location=factory-1", "severity=critical"],
                  ["alertname=EdgeSyncDelayed", "edge_location=factory-2", "severity=warning"]):
        routed = subprocess.run([checker("amtool"), "config", "routes", "test", f"--config.file={config}", *alert],
                                capture_output=True, text=True, timeout=60, check=False)
        assert routed.returncode == 0, routed.stderr
        assert sorted(routed.stdout.strip().split(",")) == sorted(receivers), routed.stdout


def test_istioctl_builds_the_multicluster_install_and_analyze_stays_clean(tmp_path, checker):
    """istio_mesh_multicluster: the install file istioctl generates from gives istiod the mesh ID,
    the cluster's name and network, and an east-west gateway on that network serving 15443; the
    cross-network Gateway selects it; istioctl analyze finds nothing."""
    import subprocess

    build_dir = tmp_path / "build"
    plays = yaml.safe_load((REPO / "playbooks" / "mesh.yml").read_text())
    result = run_playbook(tmp_path, plays, inventory=str(REPO / "inventories" / "local"), extra_vars={
        "fabric_build_dir": str(build_dir), "fabric_mode": "render", "istio_mesh_context": "us-east",
        "istio_mesh_multicluster": {"enabled": True, "mesh_id": "shop-mesh", "cluster_name": "us-east",
                                    "network": "net-us-east",
                                    "remotes": [{"name": "eu-west", "network": "net-eu-west", "context": "eu-west"}],
                                    "root_ca": {"external": True}}})
    assert result.returncode == 0, result.stdout[-3000:]
    generated = [d for d in yaml.safe_load_all(subprocess.run(
        [checker("istioctl"), "manifest", "generate", "-f", str(build_dir / "mesh" / "istio-operator.yaml")],
        capture_output=True, text=True, check=True).stdout) if d]
    istiod = next(d for d in generated if d["kind"] == "Deployment" and d["metadata"]["name"] == "istiod")
    env = {e["name"]: e.get("value") for e in istiod["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CLUSTER_ID"] == "us-east"
    # Every injected sidecar learns the mesh and its network from the injector's values.
    injector = next(d for d in generated if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "istio-sidecar-injector")
    values = json.loads(injector["data"]["values"])["global"]
    assert (values["meshID"], values["network"]) == ("shop-mesh", "net-us-east")
    east_west = next(d for d in generated if d["kind"] == "Deployment" and d["metadata"]["name"] == "istio-eastwestgateway")
    assert east_west["spec"]["template"]["metadata"]["labels"]["topology.istio.io/network"] == "net-us-east"
    service = next(d for d in generated if d["kind"] == "Service" and d["metadata"]["name"] == "istio-eastwestgateway")
    assert 15443 in [p["port"] for p in service["spec"]["ports"]]
    mesh_config = yaml.safe_load(next(d for d in generated if d["kind"] == "ConfigMap"
                                      and d["metadata"]["name"] == "istio")["data"]["mesh"])
    assert mesh_config["defaultConfig"]["meshId"] == "shop-mesh"
    # Sidecars resolve the other clusters' services from istiod's name table (DNS proxying).
    assert mesh_config["defaultConfig"]["proxyMetadata"] == {"ISTIO_META_DNS_CAPTURE": "true"}
    objects = [o for o in yaml.safe_load_all((build_dir / "mesh" / "manifests.yaml").read_text()) if o]
    cross = next(o for o in objects if o["kind"] == "Gateway" and o["metadata"]["name"] == "cross-network-gateway")
    assert cross["spec"]["selector"] == {"istio": "eastwestgateway"}
    analysed = ecosystem_check.run("istioctl", objects, checker("istioctl"))
    assert [f for f in analysed["findings"] if f["level"] in ("error", "warning")] == []
