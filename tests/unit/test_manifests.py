"""Reading manifests (module_utils/k8s/manifests.py): JSON is read as JSON, with the same result
as through the YAML parser."""

from __future__ import annotations

import json

import pytest
import yaml

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import manifests
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

OBJECTS = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": "a"}, "data": {"i": str(i)}}
           for i in range(3)]


@pytest.mark.parametrize("text", [
    json.dumps({"apiVersion": "v1", "kind": "List", "items": OBJECTS}),  # kubectl's list, as JSON
    json.dumps(OBJECTS),  # a JSON array of objects
    yaml.safe_dump_all(OBJECTS),  # multi-document YAML
    yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": OBJECTS}, default_flow_style=True),  # YAML flow style, not JSON
])
def test_every_form_gives_the_same_objects(text):
    assert manifests.parse(text) == OBJECTS


def test_a_typed_list_gives_its_items_their_kind():
    text = json.dumps({"apiVersion": "v1", "kind": "ConfigMapList", "items": [{"metadata": {"name": "x"}}]})
    assert manifests.parse(text) == [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}]


def test_a_json_array_of_non_objects_is_refused_naming_the_document():
    with pytest.raises(ValidationError, match=r"objects.json: document 1 is a list, not an object"):
        manifests.parse(json.dumps([OBJECTS[0], [1, 2]]), origin="objects.json")


def test_load_reads_a_json_file(tmp_path):
    (tmp_path / "objects.json").write_text(json.dumps(OBJECTS))
    assert manifests.load([str(tmp_path / "objects.json")]) == OBJECTS


def test_a_bare_equals_sign_is_the_string_go_yaml_reads():
    """The Prometheus Operator's bundle.yaml lists `=` among a CRD's enum values: PyYAML's YAML
    1.1 value tag would refuse the release manifest that kubectl applies."""
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ops}\ndata:\n  ops: x\nenum:\n- '!='\n- =\n- =~\n"
    assert manifests.parse(text)[0]["enum"] == ["!=", "=", "=~"]


def test_the_offline_schema_check_names_the_field_and_checks_a_repeated_object_once():
    def policy(port):
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "a"},
                "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": port, "protocol": "TCP"}]}]}}

    with pytest.raises(ValidationError, match=r"NetworkPolicy a/p: spec/ingress/0/ports/0/port: \[8080\] is not valid"):
        manifests.validate_offline([policy([8080])], "1.37")
    before = manifests._schema_verdict.cache_info()
    fleet = [policy(8080) for _site in range(50)]  # one object word for word at every site
    report = manifests.validate_offline(fleet, "1.37")
    after = manifests._schema_verdict.cache_info()
    assert [entry["schema"] for entry in report] == ["valid"] * 50
    assert after.misses - before.misses <= 1 and after.hits - before.hits >= 49
    custom = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p", "namespace": "m"}}
    assert manifests.validate_offline([custom], "1.37") == [{"object": "IPAddressPool m/p", "schema": "not checked (custom resource)"}]
