"""The analyzer reads what people actually have: raw API lists, kubectl lists, folders with other
files, static pods, odd owner references, hostNetwork pods."""

from __future__ import annotations

import json

import pytest
import yaml

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import manifests
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import runner
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import Analysis


def pod(ns, name, labels, owner=None, host_network=False, ports=()):
    meta = {"name": name, "namespace": ns, "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [{"controller": True, **owner}]
    return {"metadata": meta, "spec": {"hostNetwork": host_network, "containers": [{"name": "c", "ports": list(ports)}]}}


def test_raw_api_lists_and_kubectl_lists_are_flattened(tmp_path):
    (tmp_path / "pods.json").write_text(json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
        pod("shop", "web-1", {"app": "web"}), pod("shop", "db-1", {"app": "db"})]}))
    (tmp_path / "policies.yaml").write_text(yaml.safe_dump({"kind": "NetworkPolicyList", "apiVersion": "networking.k8s.io/v1",
                                                           "items": [{"metadata": {"name": "deny", "namespace": "shop"},
                                                                      "spec": {"podSelector": {}}}]}))
    (tmp_path / "namespaces.yaml").write_text(yaml.safe_dump({"kind": "List", "apiVersion": "v1", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}]}))
    objects = manifests.load([str(tmp_path)])
    assert sorted((o["kind"], o["apiVersion"]) for o in objects) == [
        ("Namespace", "v1"), ("NetworkPolicy", "networking.k8s.io/v1"), ("Pod", "v1"), ("Pod", "v1")]
    result = runner.analyse(objects, ["txt"], [{"src": "shop/web-1", "dst": "shop/db-1", "allowed": False}])
    assert result["violations"] == [] and result["summary"]["workloads"] == 2


def test_other_files_in_a_folder_are_skipped_with_a_warning(tmp_path):
    (tmp_path / "values.yaml").write_text("replicaCount: 2\nimage: {tag: v1}\n")
    (tmp_path / "broken.yaml").write_text("a: [\n")
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", **pod("a", "p", {})}))
    warnings: list[str] = []
    objects = manifests.load([str(tmp_path)], warnings=warnings)
    assert [o["metadata"]["name"] for o in objects] == ["p"]
    assert any("broken.yaml" in w and "not valid YAML" in w for w in warnings)
    assert any("values.yaml" in w and "non-Kubernetes" in w for w in warnings)
    with pytest.raises(ValidationError, match="broken.yaml: not valid YAML"):
        manifests.load([str(tmp_path / "broken.yaml")], warnings=[])


def test_static_pods_and_owners_without_a_kind_stay_workloads_of_their_own():
    objects = [
        {"apiVersion": "v1", "kind": "Pod", **pod("kube-system", "etcd-node-1", {"component": "etcd"},
                                                  owner={"kind": "Node", "name": "node-1"})},
        {"apiVersion": "v1", "kind": "Pod", **pod("kube-system", "kube-apiserver-node-1", {"component": "kube-apiserver"},
                                                  owner={"kind": "Node", "name": "node-1"})},
        {"apiVersion": "v1", "kind": "Pod", **pod("shop", "odd", {"app": "odd"}, owner={"name": "mystery"})},
    ]
    ids = sorted(w.id for w in Analysis(objects).workloads)
    assert ids == ["kube-system/etcd-node-1[Pod]", "kube-system/kube-apiserver-node-1[Pod]", "shop/odd[Pod]"]
    assert not any("[Node]" in i or "[None]" in i for i in ids)


def test_a_port_without_container_port_names_the_pod():
    bad = {"apiVersion": "v1", "kind": "Pod", **pod("shop", "web", {"app": "web"}, ports=[{"name": "http"}])}
    with pytest.raises(ValidationError, match=r"Pod shop/web: container 'c' ports\[0\] has no containerPort"):
        runner.analyse([bad], [], [])


def test_host_network_pods_excluded_by_default_or_analysed_as_pods():
    objects = [{"apiVersion": "v1", "kind": "Pod", **pod("mon", "node-exporter", {"app": "ne"}, host_network=True)},
               {"apiVersion": "v1", "kind": "Pod", **pod("shop", "web", {"app": "web"})},
               {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "deny", "namespace": "shop"}, "spec": {"podSelector": {}}}]
    excluded = runner.analyse(objects, [], [])
    assert excluded["summary"]["workloads"] == 1
    assert any(f["kind"] == "host-network" for f in excluded["findings"])
    included = runner.analyse(objects, [], [{"src": "mon/node-exporter", "dst": "shop/web", "allowed": False}],
                              include_host_network=True)
    assert included["summary"]["workloads"] == 2 and included["violations"] == []
    assert not any(f["kind"] == "host-network" for f in included["findings"])
