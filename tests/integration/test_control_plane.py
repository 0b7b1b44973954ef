"""The testbed acts like a cluster: controllers, scheduler and kwok nodes do their work.

Every test here would fail on a bare apiserver (nothing schedules, nothing finalizes)."""

from __future__ import annotations

import ipaddress

import pytest

from tests.helpers import phase_is, pods, running, wait_for
from tests.testbed.versions import CLUSTERS

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import Engine

pytestmark = pytest.mark.testbed
IMAGE = "registry.local/app:v1"


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def deployment(name, ns, replicas=2, labels=None, **pod_spec):
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": IMAGE,
                                                           "ports": [{"containerPort": 8080}]}],
                                           **pod_spec}}}}


def node_cidrs(client):
    return {n["metadata"]["name"]: ipaddress.ip_network(n["spec"]["podCIDR"])
            for n in client.request("GET", "/api/v1/nodes")["items"]}


def converge(testbed, cluster, name, ns, objects):
    return Engine(testbed.client(cluster)).converge(name, ns, objects, "overridden")


def test_every_cluster_has_ready_kwok_nodes_with_pod_ranges(testbed):
    for cluster, spec in CLUSTERS.items():
        nodes = {n["metadata"]["name"]: n for n in testbed.client(cluster).request("GET", "/api/v1/nodes")["items"]}
        assert {n.name for n in spec.nodes} <= set(nodes)
        pod_range = ipaddress.ip_network(spec.pod_cidr)
        for node in spec.nodes:
            live = nodes[node.name]
            assert any(c["type"] == "Ready" and c["status"] == "True" for c in live["status"]["conditions"])
            assert ipaddress.ip_network(live["spec"]["podCIDR"]).subnet_of(pod_range)


def test_controllers_make_default_service_account_and_root_ca(testbed, namespace_name):
    client = testbed.client("eu-west")
    client.request("POST", "/api/v1/namespaces", body=namespace(namespace_name))
    wait_for(lambda: client.request("GET", f"/api/v1/namespaces/{namespace_name}/serviceaccounts/default",
                                    allow=(404,)), "the default ServiceAccount")
    wait_for(lambda: client.request("GET", f"/api/v1/namespaces/{namespace_name}/configmaps/kube-root-ca.crt",
                                    allow=(404,)), "kube-root-ca.crt")


def test_a_deleted_namespace_disappears_with_its_objects(testbed, namespace_name):
    client = testbed.client("us-east")
    converge(testbed, "us-east", "gone", namespace_name, [
        namespace(namespace_name), deployment("web", namespace_name, replicas=1)])
    wait_for(lambda: running(client, namespace_name, "app=web", 1), "a running pod")
    client.request("DELETE", f"/api/v1/namespaces/{namespace_name}")
    wait_for(lambda: client.request("GET", f"/api/v1/namespaces/{namespace_name}", allow=(404,)) is None,
             "the namespace to be finalized and removed")


def test_deployment_pods_run_on_the_nodes_affinity_allows_with_ips_in_their_podcidr(testbed, namespace_name):
    client = testbed.client("us-east")
    allowed_zones = ["us-east-1a", "us-east-1b"]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": allowed_zones}]}]}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace_name},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    converge(testbed, "us-east", "web", namespace_name, [
        namespace(namespace_name), deployment("web", namespace_name, replicas=4, affinity=affinity), service])
    live = wait_for(lambda: running(client, namespace_name, "app=web", 4), "4 running pods", timeout=90)
    cidrs = node_cidrs(client)
    for pod in live:
        node = pod["spec"]["nodeName"]
        assert node in {"us-east-a", "us-east-b"}, f"{pod['metadata']['name']} on {node}"
        assert ipaddress.ip_address(pod["status"]["podIP"]) in cidrs[node]
    # A ReplicaSet made them (Deployment -> ReplicaSet -> Pods).
    assert {p["metadata"]["ownerReferences"][0]["kind"] for p in live} == {"ReplicaSet"}

    # The EndpointSlice controller lists exactly those IPs.
    def slice_ips():
        slices = client.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{namespace_name}/endpointslices",
                                query={"labelSelector": "kubernetes.io/service-name=web"})["items"]
        ips = {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]
               if (e.get("conditions") or {}).get("ready")}
        return ips if len(ips) == 4 else None
    assert wait_for(slice_ips, "4 ready endpoints") == {p["status"]["podIP"] for p in live}


def test_a_tainted_node_gets_no_pod_without_the_toleration(testbed, namespace_name):
    client = testbed.client("edge-factory-1")
    pin = {"nodeSelector": {"kubernetes.io/hostname": "factory1-agent-2"}}
    toleration = {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "sensors",
                                   "effect": "NoSchedule"}]}
    converge(testbed, "edge-factory-1", "taints", namespace_name, [
        namespace(namespace_name),
        deployment("plain", namespace_name, replicas=1, **pin),
        deployment("tolerant", namespace_name, replicas=1, **pin, **toleration)])
    tolerant = wait_for(lambda: running(client, namespace_name, "app=tolerant", 1), "the tolerating pod")
    assert tolerant[0]["spec"]["nodeName"] == "factory1-agent-2"

    def unschedulable():
        items = pods(client, namespace_name, "app=plain")
        return items and any(c["type"] == "PodScheduled" and c["status"] == "False" and c["reason"] == "Unschedulable"
                             for c in items[0]["status"].get("conditions") or [])
    wait_for(unschedulable, "the scheduler to refuse the plain pod")
    plain = pods(client, namespace_name, "app=plain")[0]
    assert not plain["spec"].get("nodeName") and plain["status"]["phase"] == "Pending"


def test_a_claim_binds_to_a_local_volume_and_its_pod_follows_the_volume(testbed, namespace_name):
    client = testbed.client("edge-factory-1")
    storage_class = f"local-{namespace_name}"
    volume = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{namespace_name}"},
              "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"],
                       "persistentVolumeReclaimPolicy": "Retain", "storageClassName": storage_class,
                       "local": {"path": "/var/lib/edge/data"},
                       "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                           {"key": "kubernetes.io/hostname", "operator": "In", "values": ["factory1-agent-1"]}]}]}}}}
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": namespace_name},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                      "resources": {"requests": {"storage": "1Gi"}}}}
    klass = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": storage_class},
             "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"}
    app = deployment("store", namespace_name, replicas=1,
                     volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
    try:
        converge(testbed, "edge-factory-1", "storage", namespace_name,
                 [namespace(namespace_name), klass, volume, claim, app])
        pod = wait_for(lambda: running(client, namespace_name, "app=store", 1), "the pod using the claim")[0]
        assert pod["spec"]["nodeName"] == "factory1-agent-1"
        bound = wait_for(lambda: phase_is(client.request(
            "GET", f"/api/v1/namespaces/{namespace_name}/persistentvolumeclaims/data"), "Bound"), "Bound")
        assert bound["spec"]["volumeName"] == f"pv-{namespace_name}"
    finally:
        Engine(testbed.client("edge-factory-1")).delete("storage", namespace_name, [])


def test_a_triggered_cronjob_makes_a_job_whose_pod_completes_and_owned_objects_are_collected(testbed, namespace_name):
    client = testbed.client("us-east")
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "sync", "namespace": namespace_name},
            "spec": {"schedule": "*/15 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "sync", "image": IMAGE}]}}}}}}
    converge(testbed, "us-east", "cron", namespace_name, [namespace(namespace_name), cron])
    live_cron = client.request("GET", f"/apis/batch/v1/namespaces/{namespace_name}/cronjobs/sync")
    # What `kubectl create job --from=cronjob/sync` sends.
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "sync-manual", "namespace": namespace_name,
                        "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "sync",
                                             "uid": live_cron["metadata"]["uid"], "controller": True}]},
           "spec": live_cron["spec"]["jobTemplate"]["spec"]}
    client.request("POST", f"/apis/batch/v1/namespaces/{namespace_name}/jobs", body=job)

    def succeeded():
        live = client.request("GET", f"/apis/batch/v1/namespaces/{namespace_name}/jobs/sync-manual")
        return live if (live.get("status") or {}).get("succeeded") == 1 else None
    wait_for(succeeded, "the job's pod to complete (kwok) and the job controller to count it")
    assert pods(client, namespace_name, "job-name=sync-manual")
    # Garbage collection: the CronJob goes, its Job and the Job's pod follow.
    client.request("DELETE", f"/apis/batch/v1/namespaces/{namespace_name}/cronjobs/sync",
                   query={"propagationPolicy": "Background"})
    wait_for(lambda: client.request("GET", f"/apis/batch/v1/namespaces/{namespace_name}/jobs/sync-manual",
                                    allow=(404,)) is None, "the owned Job to be collected")
    wait_for(lambda: not pods(client, namespace_name, "job-name=sync-manual"), "the Job's pod to be collected")
