"""ecommerce_net in apply mode as an identity bound to exactly the RBAC the role ships
(roles/ecommerce_net/files/rbac.yml): it converges and re-runs with no change; with one rule
taken away it fails before writing anything, naming the verb, the resource and the file."""

from __future__ import annotations

import copy
import sys
import uuid

import pytest
import yaml

from tests.helpers import REPO, recap, run_playbook

pytestmark = pytest.mark.testbed
CLUSTER = "us-east"
RBAC = REPO / "roles" / "ecommerce_net" / "files" / "rbac.yml"


def bound_account(testbed, role: dict) -> tuple[str, str]:
    """A fresh service account bound to the given ClusterRole; (username, token)."""
    admin = testbed.client(CLUSTER)
    ns, name = "rbac-tests", f"sa-{uuid.uuid4().hex[:8]}"
    admin.request("POST", "/api/v1/namespaces", allow=(409,),
                  body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    admin.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts",
                  body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
    role = {**role, "metadata": {**role["metadata"], "name": f"{role['metadata']['name']}-{name}"}}
    admin.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", body=role)
    admin.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", body={
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role["metadata"]["name"]},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]})
    token = admin.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token", body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})["status"]["token"]
    return f"system:serviceaccount:{ns}:{name}", token


def run_as(testbed, tmp_path, token: str, namespace: str):
    """playbooks/ecommerce.yml on us-east with nothing but the token (AWX's credential variables)."""
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(home), "KUBECONFIG": "", "K8S_AUTH_HOST": testbed._state()["servers"][CLUSTER],
           "K8S_AUTH_API_KEY": token, "K8S_AUTH_SSL_CA_CERT": str(testbed.run_dir / "pki" / "ca.crt")}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local",
                                                          "ansible_python_interpreter": sys.executable},
                                                 "children": {"clusters": {"hosts": {CLUSTER: {}}}}}}))
    plays = yaml.safe_load((REPO / "playbooks" / "ecommerce.yml").read_text())
    extra = {"fabric_mode": "apply", "fabric_build_dir": str(tmp_path / "build"),
             "ecommerce_net_set_namespace": namespace,
             "ecommerce_net_environments": [{"name": "production", "namespace": namespace}]}
    return run_playbook(tmp_path, plays, extra_vars=extra, inventory=str(inventory), env=env)


def test_the_shipped_rbac_is_enough_and_one_rule_less_fails_before_any_write(testbed, tmp_path):
    role = yaml.safe_load(RBAC.read_text())
    namespace = f"rbac-shop-{uuid.uuid4().hex[:6]}"
    testbed.client(CLUSTER).request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})

    reduced = copy.deepcopy(role)
    reduced["rules"] = [r for r in reduced["rules"] if "monitoring.coreos.com" not in r["apiGroups"]]
    user, token = bound_account(testbed, reduced)
    mark = testbed.audit_mark(CLUSTER)
    refused = run_as(testbed, tmp_path / "reduced", token, namespace)
    assert refused.returncode != 0
    text = " ".join(refused.stdout.split())
    assert 'resource "servicemonitors" in API group "monitoring.coreos.com"' in text, refused.stdout[-3000:]
    assert "cannot list" in text or "cannot patch" in text or "cannot create" in text
    assert "the permissions this needs are in " in text and "/roles/ecommerce_net/files/rbac.yml: apply it and bind" in text
    assert testbed.writes(CLUSTER, since=mark, user=user) == [], "nothing written before the refusal"

    user, token = bound_account(testbed, role)
    mark = testbed.audit_mark(CLUSTER)
    first = run_as(testbed, tmp_path / "full", token, namespace)
    assert first.returncode == 0, first.stdout[-4000:]
    assert testbed.writes(CLUSTER, since=mark, user=user), "the role wrote as the bound account"
    mark = testbed.audit_mark(CLUSTER)
    again = run_as(testbed, tmp_path / "full", token, namespace)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert testbed.writes(CLUSTER, since=mark, user=user) == []
