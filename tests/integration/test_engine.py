"""The converge engine against the real testbed apiservers."""

from __future__ import annotations

import copy

import pytest
import yaml

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import applyset, diff
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import Engine, SetError
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import (
    ClusterUnreachable,
    ValidationError,
)

pytestmark = pytest.mark.testbed
CLUSTER = "us-east"


def ns(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def cm(name, namespace, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": data or {"key": "value"}}


def netpol(name, namespace, egress=None):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"podSelector": {"matchLabels": {"app": name}}, "policyTypes": ["Egress"],
                     "egress": egress if egress is not None else [{}]}}


def vs(name, namespace):
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"hosts": [name], "http": [{"route": [{"destination": {"host": name}}]}]}}


@pytest.fixture
def engine(testbed):
    def make(user="admin", **kwargs):
        return Engine(testbed.client(CLUSTER, user=user), **kwargs)
    return make


@pytest.fixture
def audit(testbed):
    class Audit:
        def __init__(self):
            self.mark = testbed.audit_mark(CLUSTER)

        def writes(self):
            return testbed.writes(CLUSTER, since=self.mark)

        def reset(self):
            self.mark = testbed.audit_mark(CLUSTER)
    return Audit()


def live(testbed, path):
    return testbed.client(CLUSTER).request("GET", path, allow=(404,))


def test_create_then_noop_then_update(testbed, engine, audit, namespace_name):
    objects = [ns(namespace_name), cm("a", namespace_name), netpol("np", namespace_name), vs("vs", namespace_name)]
    first = engine().converge("s1", namespace_name, copy.deepcopy(objects), "replaced")
    assert first["changed"] and first["summary"]["created"] == 4
    assert live(testbed, f"/api/v1/namespaces/{namespace_name}/configmaps/a")["data"] == {"key": "value"}
    got = live(testbed, f"/apis/networking.istio.io/v1/namespaces/{namespace_name}/virtualservices/vs")
    assert got["spec"]["hosts"] == ["vs"]

    audit.reset()
    second = engine().converge("s1", namespace_name, copy.deepcopy(objects), "replaced")
    assert not second["changed"] and second["summary"]["unchanged"] == 4
    assert audit.writes() == [], "an unchanged re-run sends no write and no dry run"
    dry_runs = [e for e in testbed.audit_events(CLUSTER, since=audit.mark)
                if "dryRun=All" in e["requestURI"]]
    assert dry_runs == []

    objects[1] = cm("a", namespace_name, key="changed")
    third = engine().converge("s1", namespace_name, copy.deepcopy(objects), "replaced")
    assert [r["result"] for r in third["results"] if r["name"] == "a"] == ["configured"]
    assert live(testbed, f"/api/v1/namespaces/{namespace_name}/configmaps/a")["data"] == {"key": "changed"}


def test_egress_allow_all_is_idempotent(testbed, engine, audit, namespace_name):
    """kubernetes.core issue #113: `egress: [{}]` reported changed forever."""
    objects = [ns(namespace_name), netpol("np", namespace_name, egress=[{}]),
               {**netpol("np2", namespace_name), "spec": {"podSelector": {}, "ingress": [{}],
                                                          "policyTypes": ["Ingress"]}}]
    engine().converge("eg", namespace_name, copy.deepcopy(objects), "merged")
    audit.reset()
    again = engine().converge("eg", namespace_name, copy.deepcopy(objects), "merged")
    assert not again["changed"]
    assert audit.writes() == []
    stored = live(testbed, f"/apis/networking.k8s.io/v1/namespaces/{namespace_name}/networkpolicies/np")
    assert stored["spec"]["egress"] == [{}]


def test_replaced_removes_undeclared_fields_merged_does_not(testbed, engine, namespace_name):
    path = f"/api/v1/namespaces/{namespace_name}/configmaps/a"
    engine().converge("rm", namespace_name, [ns(namespace_name), cm("a", namespace_name, one="1", two="2")], "replaced")
    engine().converge("rm", namespace_name, [ns(namespace_name), cm("a", namespace_name, one="1")], "merged")
    assert live(testbed, path)["data"] == {"one": "1", "two": "2"}, "merged never removes"
    engine().converge("rm", namespace_name, [ns(namespace_name), cm("a", namespace_name, one="1")], "replaced")
    assert live(testbed, path)["data"] == {"one": "1"}, "replaced drops what it no longer declares"


def test_other_managers_fields_survive_replaced(testbed, engine, namespace_name):
    path = f"/api/v1/namespaces/{namespace_name}/configmaps/a"
    engine().converge("om", namespace_name, [ns(namespace_name), cm("a", namespace_name, one="1")], "replaced")
    testbed.client(CLUSTER).request("PATCH", path, query={"fieldManager": "someone-else"},
                                    body={"data": {"theirs": "x"}}, content_type="application/merge-patch+json")
    engine().converge("om", namespace_name, [ns(namespace_name), cm("a", namespace_name, one="2")], "replaced")
    assert live(testbed, path)["data"] == {"one": "2", "theirs": "x"}


def test_drift_is_detected_and_corrected(testbed, engine, namespace_name):
    objects = [ns(namespace_name), cm("a", namespace_name, one="1")]
    path = f"/api/v1/namespaces/{namespace_name}/configmaps/a"
    engine().converge("dr", namespace_name, copy.deepcopy(objects), "replaced")
    # Drift 1: someone removes a managed field. No conflict: it comes back.
    testbed.client(CLUSTER).request("PATCH", path, query={"fieldManager": "kubectl-edit"},
                                    body=[{"op": "remove", "path": "/data/one"}],
                                    content_type="application/json-patch+json")
    fixed = engine().converge("dr", namespace_name, copy.deepcopy(objects), "replaced")
    assert fixed["changed"] and live(testbed, path)["data"] == {"one": "1"}
    # Drift 2: someone changes a managed value: a conflict naming the manager and the field.
    testbed.client(CLUSTER).request("PATCH", path, query={"fieldManager": "kubectl-edit"},
                                    body={"data": {"one": "tampered"}}, content_type="application/merge-patch+json")
    with pytest.raises(SetError) as conflict:
        engine().converge("dr", namespace_name, copy.deepcopy(objects), "replaced")
    message = str(conflict.value)
    assert "kubectl-edit" in message and ".data.one" in message and "force_conflicts" in message
    assert live(testbed, path)["data"] == {"one": "tampered"}, "a failed validation wrote nothing"
    engine(force_conflicts=True).converge("dr", namespace_name, copy.deepcopy(objects), "replaced")
    assert live(testbed, path)["data"] == {"one": "1"}


def test_overridden_prunes_what_is_no_longer_declared(testbed, engine, namespace_name):
    other = f"{namespace_name}-b"
    full = [ns(namespace_name), ns(other), cm("keep", namespace_name), netpol("gone", namespace_name),
            vs("gone-vs", other)]
    engine().converge("pr", namespace_name, copy.deepcopy(full), "overridden")
    parent = live(testbed, f"/api/v1/namespaces/{namespace_name}/secrets/pr")
    assert parent["metadata"]["labels"][applyset.ID_LABEL] == applyset.applyset_id("pr", namespace_name)
    assert parent["metadata"]["annotations"][applyset.GROUP_KINDS_ANNOTATION] == \
        "ConfigMap,Namespace,NetworkPolicy.networking.k8s.io,VirtualService.networking.istio.io"
    assert parent["metadata"]["annotations"][applyset.NAMESPACES_ANNOTATION] == other

    result = engine().converge("pr", namespace_name, [ns(namespace_name), cm("keep", namespace_name)], "overridden")
    pruned = sorted((r["kind"], r["name"]) for r in result["results"] if r["result"] == "pruned")
    assert pruned == [("Namespace", other), ("NetworkPolicy", "gone"), ("VirtualService", "gone-vs")]
    assert live(testbed, f"/apis/networking.k8s.io/v1/namespaces/{namespace_name}/networkpolicies/gone") is None
    assert live(testbed, f"/api/v1/namespaces/{namespace_name}/configmaps/keep") is not None
    parent = live(testbed, f"/api/v1/namespaces/{namespace_name}/secrets/pr")
    assert parent["metadata"]["annotations"][applyset.GROUP_KINDS_ANNOTATION] == "ConfigMap,Namespace"


def test_an_object_still_being_deleted_is_not_pruned_again(testbed, engine, audit, namespace_name):
    """A finalizer holds a pruned object (as a namespace is held while it empties): the next
    runs neither delete it again nor report a change."""
    held = cm("held", namespace_name)
    held["metadata"]["finalizers"] = ["example.com/hold"]
    keep = [ns(namespace_name), cm("keep", namespace_name)]  # ConfigMaps stay in the set's scope
    engine().converge("fin", namespace_name, keep + [held], "overridden")
    first = engine().converge("fin", namespace_name, copy.deepcopy(keep), "overridden")
    assert first["summary"]["pruned"] == 1
    assert live(testbed, f"/api/v1/namespaces/{namespace_name}/configmaps/held")["metadata"]["deletionTimestamp"]
    audit.reset()
    again = engine().converge("fin", namespace_name, copy.deepcopy(keep), "overridden")
    assert again["changed"] is False and again["summary"]["pruned"] == 0
    assert audit.writes() == []
    # Let it go (the finalizer's owner would).
    testbed.client(CLUSTER).request("PATCH", f"/api/v1/namespaces/{namespace_name}/configmaps/held",
                                    body={"metadata": {"finalizers": None}},
                                    content_type="application/merge-patch+json")


def test_replaced_does_not_prune(testbed, engine, namespace_name):
    engine().converge("np", namespace_name, [ns(namespace_name), cm("a", namespace_name), cm("b", namespace_name)], "replaced")
    engine().converge("np", namespace_name, [ns(namespace_name), cm("a", namespace_name)], "replaced")
    assert live(testbed, f"/api/v1/namespaces/{namespace_name}/configmaps/b") is not None


def test_gathered_and_deleted(testbed, engine, namespace_name):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": namespace_name},
              "stringData": {"token": "s3cr3t-value"}}
    engine().converge("gd", namespace_name, [ns(namespace_name), cm("a", namespace_name), secret], "replaced")
    gathered = engine().gather("gd", namespace_name)["gathered"]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in gathered) == [
        ("ConfigMap", "a"), ("Namespace", namespace_name), ("Secret", "s")]
    assert "s3cr3t" not in repr(gathered) and diff.REDACTED in repr(gathered)

    engine().delete("gd", namespace_name, [cm("a", namespace_name)])
    assert live(testbed, f"/api/v1/namespaces/{namespace_name}/configmaps/a") is None
    assert live(testbed, f"/api/v1/namespaces/{namespace_name}/secrets/s") is not None
    whole = engine().delete("gd", namespace_name, [])
    assert {(r["kind"], r["result"]) for r in whole["results"]} == {("Secret", "deleted"), ("Namespace", "deleted")}
    assert live(testbed, f"/api/v1/namespaces/{namespace_name}/secrets/s") is None


def test_check_mode_sends_dry_runs_only(testbed, engine, audit, namespace_name):
    objects = [ns(namespace_name), cm("a", namespace_name), netpol("np", namespace_name)]
    result = engine(check_mode=True, want_diff=True).converge("cm", namespace_name, objects, "overridden")
    assert result["changed"] and result["summary"]["created"] == 3
    assert len(result["diff"]) == 3 and "key: value" in result["diff"][1]["after"]
    assert audit.writes() == []
    assert any("dryRun=All" in e["requestURI"] for e in testbed.audit_events(CLUSTER, since=audit.mark))
    assert live(testbed, f"/api/v1/namespaces/{namespace_name}") is None
    # Check mode of a delete writes nothing either.
    engine().converge("cm", namespace_name, objects, "overridden")
    audit.reset()
    engine(check_mode=True).delete("cm", namespace_name, [])
    engine(check_mode=True).converge("cm", namespace_name, objects[:1], "overridden")
    assert audit.writes() == []


def test_check_mode_validates_in_namespaces_an_earlier_set_would_create(testbed, engine, audit, namespace_name):
    # A second set of a role whose first set declares the namespace: in check mode it was not made.
    objects = [netpol("np", namespace_name)]
    with pytest.raises(SetError, match=f"namespace '{namespace_name}' does not exist"):
        engine(check_mode=True).converge("later", "default", objects, "overridden")
    result = engine(check_mode=True, pending_namespaces=[namespace_name]).converge(
        "later", "default", objects, "overridden")
    assert result["summary"]["created"] == 1
    invalid = [netpol("np", namespace_name, egress=[{"ports": [{"port": 70000}]}])]
    with pytest.raises(SetError, match="invalid"):  # still validated by the server, in the stand-in
        engine(check_mode=True, pending_namespaces=[namespace_name]).converge("later", "default", invalid, "overridden")
    assert audit.writes() == []
    # A real run ignores the option: the namespace must exist by then.
    with pytest.raises(SetError, match=f"namespace '{namespace_name}' does not exist"):
        engine(pending_namespaces=[namespace_name]).converge("later", "default", objects, "overridden")
    assert audit.writes() == []


def test_one_invalid_object_among_fifty_writes_nothing(testbed, engine, audit, namespace_name):
    testbed.client(CLUSTER).request("POST", "/api/v1/namespaces", body=ns(namespace_name))
    audit.reset()
    objects = [cm(f"c{i}", namespace_name) for i in range(50)]
    objects[17] = netpol("bad", namespace_name, egress=[{"ports": [{"port": 70000}]}])
    with pytest.raises(SetError) as failed:
        engine().converge("inv", namespace_name, objects, "replaced")
    assert "NetworkPolicy" in str(failed.value) and "bad" in str(failed.value)
    assert "70000" in str(failed.value) or "port" in str(failed.value)
    assert "nothing was changed" in str(failed.value)
    outcomes = {(r["name"], r["result"]) for r in failed.value.details["results"]}
    assert outcomes == {("bad", "failed")} | {(f"c{i}", "skipped") for i in range(50) if i != 17}, \
        "what was not written is not reported as created"
    assert audit.writes() == []
    assert testbed.client(CLUSTER).request("GET", f"/api/v1/namespaces/{namespace_name}/configmaps")["items"] == [] or \
        all(i["metadata"]["name"] == "kube-root-ca.crt"
            for i in testbed.client(CLUSTER).request("GET", f"/api/v1/namespaces/{namespace_name}/configmaps")["items"])


def test_crd_and_its_objects_in_one_set(testbed, engine, namespace_name):
    group = f"{namespace_name}.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"widgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                      "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}}
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": namespace_name},
              "spec": {"size": 3}}
    result = engine().converge("crd", namespace_name, [ns(namespace_name), crd, widget, vs("vs", namespace_name)], "overridden")
    assert result["summary"]["created"] == 4
    assert live(testbed, f"/apis/{group}/v1/namespaces/{namespace_name}/widgets/w")["spec"] == {"size": 3}
    again = engine().converge("crd", namespace_name, [ns(namespace_name), crd, widget, vs("vs", namespace_name)], "overridden")
    assert not again["changed"]
    engine().delete("crd", namespace_name, [])


def test_clear_errors(testbed, engine, namespace_name):
    with pytest.raises(ValidationError) as unknown:
        engine().converge("e", "default", [{"apiVersion": "networking.istio.io/v1alpha9", "kind": "VirtualService",
                                            "metadata": {"name": "x", "namespace": "default"}}], "replaced")
    assert "networking.istio.io/v1 " in str(unknown.value) or "networking.istio.io/v1," in str(unknown.value)
    with pytest.raises(ValidationError) as typo:
        engine().converge("e", "default", [{"apiVersion": "v1", "kind": "ConfigMapp",
                                            "metadata": {"name": "x", "namespace": "default"}}], "replaced")
    assert "closest served: v1 ConfigMap" in str(typo.value)
    with pytest.raises(ValidationError) as uninstalled:  # the testbed serves k8gb.io's Gslb, not the old group's
        engine().converge("e", "default", [{"apiVersion": "k8gb.absa.oss/v1beta1", "kind": "Gslb",
                                            "metadata": {"name": "x", "namespace": "default"}}], "replaced")
    assert "served apiVersions of that kind: k8gb.io/v1beta1)" in str(uninstalled.value)
    with pytest.raises(ValidationError) as no_controller:
        engine().converge("e", "default", [{"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "RateLimitPolicy",
                                            "metadata": {"name": "x", "namespace": "default"}}], "replaced")
    assert "is not served" in str(no_controller.value)
    assert "nothing of gateway.envoyproxy.io is served" not in str(no_controller.value), \
        "the testbed serves other kinds of that group: a wrong kind, not a missing controller"
    with pytest.raises(SetError) as missing_ns:
        engine().converge("e", "default", [cm("x", f"{namespace_name}-absent")], "replaced")
    assert f"namespace '{namespace_name}-absent' does not exist" in str(missing_ns.value)
    with pytest.raises(ValidationError) as scope:
        engine().converge("e", "default", [{**ns("x"), "metadata": {"name": "x", "namespace": "default"}}], "replaced")
    assert "cluster-scoped" in str(scope.value)
    with pytest.raises(ValidationError) as twice:
        engine().converge("e", "default", [cm("x", "default"), cm("x", "default")], "replaced")
    assert "declared twice" in str(twice.value)


def test_forbidden_names_verb_and_resource(testbed, engine, audit, namespace_name):
    with pytest.raises(SetError) as refused:
        engine(user="limited").converge("lim", "default", [ns(namespace_name)], "replaced")
    message = str(refused.value)
    assert "forbidden by RBAC" in message and "k8snet-limited" in message
    assert 'cannot patch resource "namespaces"' in message
    assert audit.writes() == []


def test_concurrency_loses_and_duplicates_nothing(testbed, engine, namespace_name):
    objects = [ns(namespace_name)] + [cm(f"c{i:03d}", namespace_name, n=str(i)) for i in range(150)] + \
              [netpol(f"p{i:03d}", namespace_name) for i in range(50)]
    result = engine(workers=16).converge("cc", namespace_name, objects, "overridden")
    assert result["summary"]["created"] == 201
    names = [i["metadata"]["name"] for i in testbed.client(CLUSTER).request(
        "GET", f"/api/v1/namespaces/{namespace_name}/configmaps")["items"] if i["metadata"]["name"] != "kube-root-ca.crt"]
    assert sorted(names) == [f"c{i:03d}" for i in range(150)]
    stored = {i["metadata"]["name"]: i["data"]["n"] for i in testbed.client(CLUSTER).request(
        "GET", f"/api/v1/namespaces/{namespace_name}/configmaps")["items"] if "n" in (i.get("data") or {})}
    assert all(stored[f"c{i:03d}"] == str(i) for i in range(150))
    assert not engine(workers=16).converge("cc", namespace_name, objects, "overridden")["changed"]


def test_interrupted_run_converges_on_rerun(testbed, engine, namespace_name):
    objects = [ns(namespace_name)] + [cm(f"c{i}", namespace_name) for i in range(20)]
    broken = engine(workers=1)
    real_request = broken.client.request
    calls = {"writes": 0}

    def flaky(method, path, **kwargs):
        if method == "PATCH" and "dryRun" not in (kwargs.get("query") or {}) and "/configmaps/" in path:
            calls["writes"] += 1
            if calls["writes"] > 7:
                raise ClusterUnreachable("connection reset (simulated interruption)")
        return real_request(method, path, **kwargs)

    broken.client.request = flaky
    with pytest.raises(SetError):
        broken.converge("ir", namespace_name, copy.deepcopy(objects), "overridden")
    result = engine().converge("ir", namespace_name, copy.deepcopy(objects), "overridden")
    assert result["summary"]["unchanged"] == 8 and result["summary"]["created"] == 13
    # The parent was written before the members, so prune still sees the whole set.
    shrunk = engine().converge("ir", namespace_name, copy.deepcopy(objects[:5]), "overridden")
    assert shrunk["summary"]["pruned"] == 16


def test_secret_values_never_appear_in_diff_or_errors(testbed, engine, namespace_name):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": namespace_name},
              "stringData": {"password": "correct-horse-battery"}}
    result = engine(want_diff=True).converge("sec", namespace_name, [ns(namespace_name), secret], "replaced")
    text = repr(result)
    assert "correct-horse-battery" not in text and "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5" not in text
    changed = copy.deepcopy(secret)
    changed["stringData"]["password"] = "another-secret-value"
    result = engine(want_diff=True).converge("sec", namespace_name, [ns(namespace_name), changed], "replaced")
    entry = [d for d in result["diff"] if "Secret" in d["after_header"]][0]
    assert diff.REDACTED_CHANGED in entry["after"] and "another-secret-value" not in repr(result)
    bad = copy.deepcopy(secret)
    bad["metadata"]["name"] = "Bad_Name"
    with pytest.raises(SetError) as failed:
        engine().converge("sec", namespace_name, [ns(namespace_name), bad], "replaced")
    assert "correct-horse-battery" not in str(failed.value)


def test_discovery_cache_finds_new_crds(testbed, namespace_name, tmp_path, monkeypatch):
    monkeypatch.setenv("K8SNET_CACHE_DIR", str(tmp_path))
    first = Engine(testbed.client(CLUSTER))
    first.discovery.resolve("v1", "ConfigMap")
    assert first.discovery.refreshed
    cached = Engine(testbed.client(CLUSTER))
    cached.discovery.resolve("v1", "ConfigMap")
    assert not cached.discovery.refreshed, "second engine reads the on-disk cache"
    group = f"{namespace_name}.example.org"
    testbed.client(CLUSTER).request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body={
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {"group": group, "scope": "Cluster", "names": {"plural": "gadgets", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})
    import time
    deadline = time.time() + 20
    while True:
        try:
            rtype = cached.discovery.resolve(f"{group}/v1", "Gadget")
            break
        except Exception:
            if time.time() > deadline:
                raise
            cached.discovery.refreshed = False
            time.sleep(0.3)
    assert rtype.plural == "gadgets" and not rtype.namespaced


def test_an_object_of_another_set_is_not_adopted_silently(testbed, engine, audit, namespace_name):
    engine().converge("owner-a", namespace_name, [ns(namespace_name), cm("shared", namespace_name, who="a")], "replaced")
    audit.reset()
    with pytest.raises(SetError) as claimed:
        engine().converge("owner-b", namespace_name, [cm("shared", namespace_name, who="b")], "replaced")
    assert "ConfigMap " + namespace_name + "/shared belongs to another set" in str(claimed.value)
    assert audit.writes() == []
    engine(force_conflicts=True).converge("owner-b", namespace_name, [cm("shared", namespace_name, who="b")], "replaced")
    labels = live(testbed, f"/api/v1/namespaces/{namespace_name}/configmaps/shared")["metadata"]["labels"]
    assert labels[applyset.PART_OF_LABEL] == applyset.applyset_id("owner-b", namespace_name)


@pytest.mark.parametrize("state", ["merged", "replaced"])
def test_a_field_the_schema_lacks_fails_fast_and_writes_nothing(testbed, engine, audit, namespace_name, state):
    """Not dropped with a warning (the server's default for create/patch), and not retried as
    the 500 server-side apply answers for it (kubernetes/kubernetes#139253)."""
    testbed.client(CLUSTER).request("POST", "/api/v1/namespaces", body=ns(namespace_name))
    audit.reset()
    typo = netpol("typo", namespace_name)
    typo["spec"]["ingres"] = [{}]
    run = engine()
    with pytest.raises(SetError) as failed:
        run.converge("typo", namespace_name, [cm("ok", namespace_name), typo], state)
    assert f"NetworkPolicy {namespace_name}/typo: invalid:" in str(failed.value)
    assert "ingres" in str(failed.value)
    assert run.client.counts["dry-run"] == 2, "one dry run each, no retries"
    assert audit.writes() == []


def test_server_warnings_are_kept_with_the_request_that_got_them(testbed, engine, namespace_name):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": namespace_name},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"nodeSelector": {"beta.kubernetes.io/arch": "amd64"},
                                                 "containers": [{"name": "web", "image": "nginx:1.27"}]}}}}
    run = engine()
    run.converge("warn", namespace_name, [ns(namespace_name), deployment], "replaced")
    [(text, about)] = [(t, a) for t, a in run.client.warnings.items() if "beta.kubernetes.io/arch" in t]
    assert "deprecated" in text and '"kubernetes.io/arch"' in text
    assert about == f"Deployment {namespace_name}/web"  # its own namespace, not the stand-in


def test_overridden_diff_of_an_update_is_plain_data(testbed, engine, namespace_name):
    """The prune scan reuses the run's listings; it must not leave its bookkeeping in the live
    objects the diff shows (a ResourceType in a diff broke --diff output)."""
    engine().converge("od", namespace_name, [ns(namespace_name), cm("a", namespace_name)], "overridden")
    result = engine(want_diff=True).converge("od", namespace_name,
                                             [ns(namespace_name), cm("a", namespace_name, key="new")], "overridden")
    assert [r["result"] for r in result["results"]] == ["unchanged", "configured"]
    text = yaml.safe_dump(result["diff"])
    assert "new" in text and "ResourceType" not in text


def test_await_kinds_waits_for_a_crd_another_installer_creates(testbed, engine, namespace_name):
    """K3s applies a release manifest's CRDs on its own time: with await_kinds the set waits for
    the kind instead of failing, and still validates before writing; without it, it fails at once."""
    import threading
    import time as clock

    group = f"{namespace_name}.example.net"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"gadgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                      "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}}
    gadget = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": namespace_name},
              "spec": {"size": 3}}
    with pytest.raises(ValidationError, match="not served|no kind"):
        engine().converge("gadgets", namespace_name, [ns(namespace_name), gadget], "overridden")
    client = testbed.client(CLUSTER)
    installer = threading.Timer(2.0, lambda: client.request(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd))
    started = clock.monotonic()
    installer.start()
    try:
        result = engine(await_kinds=30).converge("gadgets", namespace_name, [ns(namespace_name), gadget], "overridden")
    finally:
        installer.join()
    assert clock.monotonic() - started >= 2.0
    assert client.request("GET", f"/apis/{group}/v1/namespaces/{namespace_name}/gadgets/g")["spec"] == {"size": 3}
    assert result["changed"]
    client.request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{group}")


def test_a_role_and_its_binding_in_one_set_as_an_account_without_bind(testbed, namespace_name):
    """The apiserver checks a binding against its role's rules, so an identity without ``bind``
    can create the binding only once the role exists: the engine writes the role first, then
    validates and writes the binding (before, the dry run of the binding failed: 404)."""
    from tests.rbac import bound_account

    granter = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "granter"}, "rules": [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles", "clusterrolebindings"],
         "verbs": ["get", "list", "create", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get", "list", "create", "patch"]}]}
    _user, token = bound_account(testbed, "us-east", granter)
    admin = testbed.client("us-east")
    admin.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name}})
    role = f"reader-{namespace_name}"
    objects = [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]},
               {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace_name}]}]
    as_granter = admin.with_token(token)
    checked = Engine(as_granter, check_mode=True).converge("granted", namespace_name, objects, "replaced")
    assert [r["result"] for r in checked["results"]] == ["created", "created"]
    result = Engine(as_granter).converge("granted", namespace_name, objects, "replaced")
    assert [r["result"] for r in result["results"]] == ["created", "created"]
    assert admin.request("GET", f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{role}")["roleRef"]["name"] == role
    assert Engine(as_granter).converge("granted", namespace_name, objects, "replaced")["changed"] is False
