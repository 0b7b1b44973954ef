"""Job templates as code, run the way AWX runs them: ansible-runner with a private data dir, a
project playbook importing k8snet.fabric.<name>, survey answers as extravars, credentials as
K8S_AUTH_* environment variables, the collection installed from its tarball, verbosity 3. The
job events must hold no secret value, raw or base64."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO

SURVEYS = REPO / "awx" / "surveys"
SCENARIOS = ("ecommerce", "edge", "hybrid", "mesh", "multicluster")
SURVEY_TYPES = {"integer": "int", "float": "float", "text": "str", "textarea": "str", "password": "str",
                "multiplechoice": "str"}


def role_options() -> dict:
    """Every main entry point option of every role, by variable name."""
    out = {}
    for spec in (REPO / "roles").glob("*/meta/argument_specs.yml"):
        out.update(yaml.safe_load(spec.read_text())["argument_specs"]["main"]["options"])
    return out


def survey(name: str) -> dict:
    return json.loads((SURVEYS / f"{name}.json").read_text())


def answers(name: str, **given) -> dict:
    """What AWX passes as extravars: the defaults of the survey, then the user's answers."""
    out = {q["variable"]: q["default"] for q in survey(name)["spec"] if q.get("default") not in (None, "")}
    out.update(given)
    return out


@pytest.mark.parametrize("name", SCENARIOS)
def test_survey_questions_are_role_variables_of_the_right_type(name):
    options = role_options()
    doc = survey(name)
    assert set(doc) == {"name", "description", "spec"} and doc["spec"]
    for question in doc["spec"]:
        assert set(question) >= {"question_name", "question_description", "required", "type", "variable"}
        option = options.get(question["variable"])
        assert option, f"{name}: {question['variable']} is not a variable of any role"
        assert SURVEY_TYPES[question["type"]] == option["type"], question["variable"]
        if question["type"] == "multiplechoice":
            assert set(question["choices"]) <= set(option["choices"]), question["variable"]
        # AWX sends every default as an extra var, which outranks the inventory: a survey that
        # carries one overrides the inventory's value on an untouched launch.
        assert question.get("default") in (None, ""), f"{name}: {question['variable']} has a default"
        assert question["type"] != "password", f"{name}: {question['variable']}: secrets come from the inventory"


def runner_job(tmp_path: Path, installed: dict, playbook: str, inventory, extravars: dict, envvars=None,
               inventory_vars: dict | None = None):
    """One AWX job: private data dir, project, inventory (plus ``inventory_vars`` on group all,
    as an AWX inventory's variables), extravars, env; verbosity 3."""
    import ansible_runner

    job = tmp_path / "job"
    (job / "project").mkdir(parents=True)
    (job / "project" / f"{playbook}.yml").write_text(yaml.safe_dump([{"import_playbook": f"k8snet.fabric.{playbook}"}]))
    if isinstance(inventory, Path):
        shutil.copytree(inventory, job / "inventory")
    else:
        (job / "inventory").mkdir()
        (job / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory))
    if inventory_vars:
        (job / "inventory" / "zz-inventory-vars.yml").write_text(yaml.safe_dump({"all": {"vars": inventory_vars}}))
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed["collections"]), "ANSIBLE_NOCOLOR": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **(envvars or {})}
    result = ansible_runner.run(private_data_dir=str(job), playbook=f"{playbook}.yml", verbosity=3, quiet=True,
                                extravars=extravars, envvars=env, settings={"suppress_env_files": True})
    return result, list(result.events)


def leaked(events: list[dict], secrets: list[str]) -> list[str]:
    text = json.dumps(events)
    out = []
    for secret in secrets:
        for form in (secret, base64.b64encode(secret.encode()).decode()):
            if form in text:
                out.append(form)
    return out


def test_edge_render_job_keeps_its_tokens_out_of_the_events(installed_collection, tmp_path):
    token, sync = f"k3s-{uuid.uuid4().hex}", f"sync-{uuid.uuid4().hex}"
    result, events = runner_job(tmp_path, installed_collection, "edge", REPO / "inventories" / "local",
                                answers("edge", fabric_mode="render"),
                                inventory_vars={"edge_k3s_token": token, "edge_k3s_sync_token": sync})
    assert result.rc == 0 and result.status == "successful", "".join(e.get("stdout", "") for e in events)[-3000:]
    assert leaked(events, [token, sync]) == []
    assert result.stats["changed"] and not result.stats["failures"]
    # Render mode writes the env file with the token redacted, so the build folder holds neither.
    build = tmp_path / "job" / "project" / "build"
    env_file = build / "edge" / "factory-1" / "hosts" / "factory1-server-1" / "etc" / "systemd" / "system" / "k3s.service.env"
    assert "K3S_TOKEN=<redacted>" in env_file.read_text()
    assert not [p for p in build.rglob("*") if p.is_file() and any(s.encode() in p.read_bytes() for s in (token, sync))]


def test_inventory_values_survive_a_launch_with_the_survey_untouched(installed_collection, tmp_path):
    """The operator answers only what the survey requires (the mode); the inventory's domain,
    record policy and TTL are what the job renders - AWX adds no survey default over them."""
    mine = {"hybrid_dns_domain": "corp.example.net", "hybrid_dns_record_ttl": 300, "hybrid_dns_records": "weighted"}
    result, events = runner_job(tmp_path, installed_collection, "hybrid", REPO / "inventories" / "local",
                                answers("hybrid", fabric_mode="render"), inventory_vars=mine)
    assert result.rc == 0, "".join(e.get("stdout", "") for e in events)[-3000:]
    # Each file a document stream of its own (tunnels-cloud-side.yaml is one list).
    rendered = "\n---\n".join(p.read_text() for p in (tmp_path / "job" / "project" / "build").rglob("*.yaml"))
    assert "corp.example.net" in rendered and "hybrid.example.com" not in rendered
    endpoints = [e for doc in yaml.safe_load_all(rendered) if isinstance(doc, dict) and doc.get("kind") == "DNSEndpoint"
                 for e in doc["spec"]["endpoints"]]
    assert endpoints and {e["recordTTL"] for e in endpoints} == {300}
    assert all(e.get("setIdentifier") and any(p.get("name") == "aws/weight" for p in e.get("providerSpecific") or [])
               for e in endpoints if e["recordType"] == "A"), "weighted, as the inventory says"
    # What the job found reaches AWX as job artifacts (set_stats): render output goes with the job's folder.
    [stats] = [e for e in events if e.get("event") == "playbook_on_stats"]
    outcome = stats["event_data"]["artifact_data"]["k8snet_fabric"]["us-east"]
    assert outcome["scenario"] == "hybrid" and outcome["expectations"] == 12
    assert outcome["proof"]["findings"] == 0 and outcome["proof"]["reports"].endswith("/hybrid/report")


@pytest.mark.testbed
def test_ecommerce_apply_job_with_an_awx_kubernetes_credential(testbed, installed_collection, tmp_path):
    """AWX's Kubernetes credential injects K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_SSL_CA_CERT
    and K8S_AUTH_VERIFY_SSL; nothing else tells the modules where the cluster is."""
    admin = testbed.client("us-east")
    ns = "awx-jobs"
    admin.request("POST", "/api/v1/namespaces", allow=(409,),
                  body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    admin.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", allow=(409,),
                  body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "awx"}})
    admin.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", allow=(409,), body={
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "awx-jobs"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "awx", "namespace": ns}]})
    token = admin.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/awx/token", body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})["status"]["token"]
    home = tmp_path / "home"
    home.mkdir()
    credential = {"HOME": str(home), "KUBECONFIG": "", "K8S_AUTH_HOST": testbed._state()["servers"]["us-east"],
                  "K8S_AUTH_API_KEY": token, "K8S_AUTH_SSL_CA_CERT": str(testbed.run_dir / "pki" / "ca.crt"),
                  "K8S_AUTH_VERIFY_SSL": "true"}
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                         "children": {"clusters": {"hosts": {"us-east": {}}}}}}
    extravars = answers("ecommerce", fabric_mode="apply")
    mark = testbed.audit_mark("us-east")
    result, events = runner_job(tmp_path, installed_collection, "ecommerce", inventory, extravars, credential)
    assert result.rc == 0, "".join(e.get("stdout", "") for e in events)[-3000:]
    key = (tmp_path / "job" / "project" / "build" / "tls" / "shop.key").read_text()
    key_line = key.splitlines()[1]
    assert leaked(events, [token, key_line]) == []
    assert result.stats["ok"]["us-east"] > 10 and not result.stats["failures"]
    assert admin.request("GET", "/apis/gateway.networking.k8s.io/v1/namespaces/ecommerce-prod/gateways/shop")
    account = f"system:serviceaccount:{ns}:awx"
    assert any(e.get("user", {}).get("username") == account for e in testbed.audit_events("us-east", mark)), \
        "the cluster saw the credential's account"
    # The next job starts in a fresh folder, as every AWX job does: the cluster is left as it is
    # (the certificate it serves is reused, not rotated); only the job's own files are new.
    mark = testbed.audit_mark("us-east")
    again, events = runner_job(tmp_path / "again", installed_collection, "ecommerce", inventory, extravars, credential)
    assert again.rc == 0, "".join(e.get("stdout", "") for e in events)[-3000:]
    assert testbed.writes("us-east", since=mark, user=account) == []
    changed = [e["event_data"]["task"] for e in events
               if e.get("event") == "runner_on_ok" and e["event_data"].get("res", {}).get("changed")]
    assert changed == ["Check (or generate) the certificate and key",
                       "Prove the intended flows, and only those (apply mode - over the live pods where they run)"], changed
    assert next(e for e in events if e.get("event") == "runner_on_ok" and e["event_data"]["task"].startswith(
        "Check (or generate)"))["event_data"]["res"]["source"] == "secret"
    assert leaked(events, [token, key_line]) == []
