"""Pure parts of the engine: normalisation, comparison, hashing, redaction, ordering."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import applyset, diff
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import check_set_name, shape_problem
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError


@pytest.mark.parametrize("want,have,equal", [
    ({"egress": [{}]}, {"egress": [{}]}, True),
    ({"egress": [{}]}, {"egress": []}, False),
    ({"labels": {}}, {}, True),
    ({"a": None}, {}, True),
    ({"port": "80"}, {"port": 80}, True),
    ({"cpu": 1}, {"cpu": "1"}, True),  # an int quantity declared, the canonical string stored
    ({"port": 80}, {"port": "http"}, False),
    ({"cpu": "1000m"}, {"cpu": "1"}, True),
    ({"cpu": "500m"}, {"cpu": "0.5"}, True),
    ({"memory": "1Gi"}, {"memory": "1073741824"}, True),
    ({"memory": "1G"}, {"memory": "1Gi"}, False),
    ({"x": True}, {"x": "true"}, False),
    ({"x": 1}, {"x": True}, False),
    ({"l": [1, 2]}, {"l": [1, 2, 3]}, False),
    ({"m": {"a": 1}}, {"m": {"a": 1, "b": 2}}, True),
    ({"m": {"a": 1, "c": 3}}, {"m": {"a": 1, "b": 2}}, False),
])
def test_contains(want, have, equal):
    assert diff.contains(want, have) is equal


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                    max_leaves=10))
def test_everything_contains_itself(value):
    assert diff.contains(value, value)


def test_stringdata_is_folded_into_data():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"a": base64.b64encode(b"x").decode()}, "stringData": {"b": "y"}}
    wire = diff.to_wire(secret)
    assert "stringData" not in wire and wire["data"]["b"] == base64.b64encode(b"y").decode()
    assert "stringData" in secret, "the declared object is not modified"


def test_declared_hash_is_stable_and_ignores_itself():
    obj = {"kind": "ConfigMap", "metadata": {"name": "a", "annotations": {"x": "1"}}, "data": {"b": "2", "a": "1"}}
    same = {"data": {"a": "1", "b": "2"}, "metadata": {"annotations": {"x": "1"}, "name": "a"}, "kind": "ConfigMap"}
    assert diff.declared_hash(obj) == diff.declared_hash(same)
    same["metadata"]["annotations"][diff.HASH_ANNOTATION] = "whatever"
    assert diff.declared_hash(obj) == diff.declared_hash(same)
    same["data"]["b"] = "3"
    assert diff.declared_hash(obj) != diff.declared_hash(same)


def test_redaction_of_secrets_and_token_fields():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "c2VjcmV0"}}
    assert diff.redact(secret)["data"] == {"k": diff.REDACTED}
    assert secret["data"] == {"k": "c2VjcmV0"}, "redaction copies"
    other = {**secret, "data": {"k": "b3RoZXI="}}
    assert diff.redact(other, secret)["data"] == {"k": diff.REDACTED_CHANGED}
    assert diff.redact(secret, secret)["data"] == {"k": diff.REDACTED}
    cr = {"kind": "Thing", "spec": {"auth": {"bearerToken": "abc", "api_key": "def", "name": "ok"},
                                    "keyName": "not-a-secret"}}
    red = diff.redact(cr)
    assert red["spec"]["auth"] == {"bearerToken": diff.REDACTED, "api_key": diff.REDACTED, "name": "ok"}
    assert red["spec"]["keyName"] == "not-a-secret"


def test_scrub_removes_plain_and_base64_secret_values():
    secrets = diff.secret_values([{"apiVersion": "v1", "kind": "Secret", "stringData": {"p": "hunter22"}}])
    text = f"invalid value hunter22 and {base64.b64encode(b'hunter22').decode()}"
    assert "hunter22" not in diff.scrub(text, secrets)
    assert "aHVudGVyMjI" not in diff.scrub(text, secrets)


def test_object_diff_headers_and_cleanup():
    live = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n",
            "resourceVersion": "5", "managedFields": [{}], "annotations": {diff.HASH_ANNOTATION: "h"}}, "data": {"x": "1"}}
    after = {**live, "data": {"x": "2"}}
    entry = diff.object_diff(live, after)
    assert entry["before_header"] == "ConfigMap n/a (live)"
    assert "resourceVersion" not in entry["before"] and "managedFields" not in entry["after"]
    assert diff.HASH_ANNOTATION not in entry["after"]
    assert "x: '2'" in entry["after"]
    assert diff.object_diff(None, after)["before_header"] == "ConfigMap n/a (absent)"


def test_foundation_ordering_kinds():
    assert diff.is_foundation({"apiVersion": "v1", "kind": "Namespace"})
    assert diff.is_foundation({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"})
    assert not diff.is_foundation({"apiVersion": "v1", "kind": "ConfigMap"})


def test_applyset_id_matches_kubectl_formula():
    # base64url(sha256("name.namespace.Secret.")) without padding, as kubectl computes it.
    import hashlib
    expected = base64.urlsafe_b64encode(hashlib.sha256(b"web.prod.Secret.").digest()).decode().rstrip("=")
    assert applyset.applyset_id("web", "prod") == f"applyset-{expected}-v1"
    parent = applyset.parent_object("web", "prod", {"Service", "Deployment.apps"}, {"prod", "a", "b"})
    ann = parent["metadata"]["annotations"]
    assert ann[applyset.GROUP_KINDS_ANNOTATION] == "Deployment.apps,Service"
    assert ann[applyset.NAMESPACES_ANNOTATION] == "a,b"
    assert applyset.check_tooling({"metadata": {"name": "p", "annotations": {applyset.TOOLING_ANNOTATION: "kubectl/v1.30"}}})


@pytest.mark.parametrize("raw,fragment", [
    ("x", "expected a mapping"),
    ({"kind": "ConfigMap", "metadata": {"name": "a"}}, "missing apiVersion"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, "missing metadata.name"),
])
def test_shape_problems(raw, fragment):
    assert fragment in shape_problem(raw, "objects[0]")


def test_set_names_are_checked():
    check_set_name("edge-factory-1", "kube-system")
    with pytest.raises(ValidationError, match="name: 'Bad_Set'"):
        check_set_name("Bad_Set", "default")


def test_a_kind_defined_this_run_is_awaited_until_discovery_serves_it():
    """Established CRDs show up in discovery a moment later; the engine asks again meanwhile."""
    from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import Engine
    from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.discovery import ResourceType
    from ansible_collections.k8snet.fabric.plugins.module_utils.errors import DiscoveryError

    widget = ResourceType("example.com", "v1", "Widget", "widgets", True)

    class LateDiscovery:
        asked, invalidated = 0, 0

        def resolve(self, api_version, kind):
            self.asked += 1
            if self.asked < 3:
                raise DiscoveryError("not served yet")
            return widget

        def invalidate(self):
            self.invalidated += 1

    late = LateDiscovery()
    engine = Engine(client=None, discovery=late, wait_timeout=5)
    assert engine.await_kind("example.com/v1", "Widget") is widget
    assert (late.asked, late.invalidated) == (3, 2)
    never = Engine(client=None, discovery=type("Never", (), {
        "resolve": lambda self, *a: (_unused for _unused in ()).throw(DiscoveryError("gone")),
        "invalidate": lambda self: None})(), wait_timeout=0.3)
    with pytest.raises(DiscoveryError, match="gone"):
        never.await_kind("example.com/v1", "Widget")


def test_an_unserved_controller_group_names_the_controller():
    from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.discovery import controller_hint

    assert controller_hint("externaldns.k8s.io/v1alpha1", {"", "apps"}) == (
        "; nothing of externaldns.k8s.io is served: external-dns is not installed on this cluster")
    assert controller_hint("externaldns.k8s.io/v1alpha1", {"externaldns.k8s.io"}) == "", "the group is served: a typo"
    assert controller_hint("example.com/v1", set()) == "", "an unknown group names no one"
    assert controller_hint("v1", set()) == ""
