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


def test_a_large_set_from_a_json_file_with_only_changes_reported(testbed, tmp_path, namespace_name):
    """src takes the JSON list kubectl takes; report_unchanged: false keeps an unchanged run's
    result to the summary (sets of thousands), while changes are still named."""
    import json

    objects = objects_for(namespace_name)[:1] + [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": namespace_name}, "data": {"i": str(i)}}
        for i in range(30)]
    source = tmp_path / "objects.json"
    source.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))

    def converge():
        plays = play(testbed, "replaced", None, set_namespace=namespace_name, src=[str(source)], report_unchanged=False)
        plays[0]["tasks"][0]["k8snet.fabric.resource_set"].pop("objects")
        saved = tmp_path / "result.json"
        plays[0]["tasks"][1] = {"name": "save", "ansible.builtin.copy": {"content": "{{ out | to_json }}", "dest": str(saved),
                                                                         "mode": "0600"}}
        proc = run_playbook(tmp_path, plays)
        assert proc.returncode == 0, proc.stdout[-3000:]
        return json.loads(saved.read_text())

    first = converge()
    assert first["summary"]["created"] == 31 and len(first["results"]) == 31
    assert first["peak_memory_mb"] > 10
    source.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects[:-1] + [
        {**objects[-1], "data": {"i": "changed"}}]}))
    second = converge()
    assert second["summary"] == {"created": 0, "configured": 1, "unchanged": 30, "pruned": 0, "deleted": 0, "failed": 0}
    assert second["results"] == [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": namespace_name, "name": "c29",
                                  "result": "configured"}]
