"""k8snet.fabric.resource_set through real ansible-playbook runs against the testbed."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import recap, run_playbook

pytestmark = pytest.mark.testbed
CLUSTER = "eu-west"


def play(testbed, state, objects, **options):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "converge", "register": "out",
        "k8snet.fabric.resource_set": {"name": "mod", "set_namespace": options.pop("set_namespace", "default"),
                                       "state": state, "objects": objects,
                                       **testbed.connection(CLUSTER), **options}},
        {"name": "show", "ansible.builtin.debug": {"var": "out.summary"}}]}]


def objects_for(namespace):
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": namespace},
             "stringData": {"password": "pa55-w0rd-xyz"}},
            {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "deny", "namespace": namespace},
             "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}]


def test_check_then_apply_then_idempotent_with_diff(testbed, tmp_path, namespace_name):
    objects = objects_for(namespace_name)
    mark = testbed.audit_mark(CLUSTER)
    checked = run_playbook(tmp_path, play(testbed, "overridden", objects, set_namespace=namespace_name),
                           "--check", "--diff")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert recap(checked.stdout)["changed"] == 1
    assert testbed.writes(CLUSTER, since=mark) == [], "check mode writes nothing"
    assert "pa55-w0rd-xyz" not in checked.stdout and "<redacted>" in checked.stdout
    assert "kind: NetworkPolicy" in checked.stdout, "the diff shows the object"

    applied = run_playbook(tmp_path, play(testbed, "overridden", objects, set_namespace=namespace_name), "--diff")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert recap(applied.stdout)["changed"] == 1
    assert "pa55-w0rd-xyz" not in applied.stdout + applied.stderr

    mark = testbed.audit_mark(CLUSTER)
    again = run_playbook(tmp_path, play(testbed, "overridden", objects, set_namespace=namespace_name), "--diff")
    assert recap(again.stdout)["changed"] == 0
    assert testbed.writes(CLUSTER, since=mark) == []


def test_rendered_and_parsed_need_no_cluster(tmp_path):
    dest = tmp_path / "out" / "set.yaml"
    objects = objects_for("render-ns")
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "render", "register": "rendered",
         "k8snet.fabric.resource_set": {"state": "rendered", "objects": objects, "dest": str(dest)}},
        {"name": "parse", "register": "parsed",
         "k8snet.fabric.resource_set": {"state": "parsed", "src": [str(dest)]}},
        {"ansible.builtin.assert": {"that": [
            "parsed.parsed | length == 3",
            "parsed.parsed[2].kind == 'NetworkPolicy'",
            "rendered.validation | selectattr('schema', 'equalto', 'valid') | list | length == 3"]}}]}]
    result = run_playbook(tmp_path, plays, env={"KUBECONFIG": "/nonexistent"})
    assert result.returncode == 0, result.stdout + result.stderr
    docs = list(yaml.safe_load_all(dest.read_text()))
    assert [d["kind"] for d in docs] == ["Namespace", "Secret", "NetworkPolicy"]
    assert docs[1]["stringData"] == {"password": "<redacted>"}


def test_rendered_rejects_schema_errors(tmp_path):
    bad = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "x"},
            "spec": {"podSelector": {}, "ingres": []}}]
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"k8snet.fabric.resource_set": {"state": "rendered", "objects": bad}}]}]
    result = run_playbook(tmp_path, plays)
    assert result.returncode != 0
    assert "NetworkPolicy x" in result.stdout and "ingres" in result.stdout


def test_api_key_is_never_logged_and_objects_are_not_echoed(testbed, tmp_path, namespace_name):
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"k8snet.fabric.resource_set": {"name": "x", "state": "merged", "api_key": "tok-abc123-secret",
                                        "objects": objects_for(namespace_name),
                                        **testbed.connection(CLUSTER)}}]}]
    result = run_playbook(tmp_path, plays, "-vvv")
    # (The apiserver takes the kubeconfig's client certificate first; the token is still sent.)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "tok-abc123-secret" not in result.stdout + result.stderr
    # The argument echo names how many objects there were, not what they hold.
    assert "objects: 3 declared (see results)" in result.stdout
    assert "pa55-w0rd-xyz" not in result.stdout + result.stderr


def test_server_warnings_become_task_warnings(testbed, tmp_path, namespace_name):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace_name},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"nodeSelector": {"beta.kubernetes.io/arch": "amd64"},
                                                 "containers": [{"name": "web", "image": "nginx:1.27"}]}}}}
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name}}, deployment]
    result = run_playbook(tmp_path, play(testbed, "replaced", objects, set_namespace=namespace_name))
    assert result.returncode == 0, result.stdout + result.stderr
    output = " ".join((result.stdout + result.stderr).split())
    assert f"API server on Deployment {namespace_name}/web: spec.template.spec.nodeSelector" in output
