"""Least privilege on the testbed: service accounts bound to exactly a role's shipped RBAC file,
a kubeconfig holding their tokens, and the check that a role runs with it and fails cleanly
without one of its rules."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import yaml

from tests.helpers import REPO, recap

NAMESPACE = "rbac-tests"


def shipped_role(role: str) -> dict:
    return yaml.safe_load((REPO / "roles" / role / "files" / "rbac.yml").read_text())


def without(cluster_role: dict, group: str) -> dict:
    """The ClusterRole with every rule of one API group taken away."""
    reduced = copy.deepcopy(cluster_role)
    reduced["rules"] = [r for r in reduced["rules"] if group not in r.get("apiGroups", [])]
    assert len(reduced["rules"]) < len(cluster_role["rules"]), f"no rule of {group} to take away"
    return reduced


def bound_account(testbed, cluster: str, cluster_role: dict) -> tuple[str, str]:
    """A fresh service account on the cluster bound to the given ClusterRole; (username, token)."""
    admin = testbed.client(cluster)
    name = f"sa-{uuid.uuid4().hex[:8]}"
    admin.request("POST", "/api/v1/namespaces", allow=(409,),
                  body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    admin.request("POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts",
                  body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
    role_name = f"{cluster_role['metadata']['name']}-{name}"
    admin.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                  body={**cluster_role, "metadata": {**cluster_role["metadata"], "name": role_name}})
    admin.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", body={
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]})
    token = admin.request("POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{name}/token", body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})["status"]["token"]
    return f"system:serviceaccount:{NAMESPACE}:{name}", token


def token_of(kubeconfig: Path, cluster: str) -> str:
    """The bearer token a kubeconfig written by token_kubeconfig holds for the cluster."""
    return next(u["user"]["token"] for u in yaml.safe_load(kubeconfig.read_text())["users"] if u["name"] == f"sa-{cluster}")


def token_kubeconfig(testbed, tokens: dict[str, str], path: Path) -> Path:
    """A kubeconfig whose contexts (named as the testbed's) carry the given tokens."""
    ca = str(testbed.run_dir / "pki" / "ca.crt")
    servers = testbed._state()["servers"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": next(iter(tokens)),
        "clusters": [{"name": c, "cluster": {"server": servers[c], "certificate-authority": ca}} for c in tokens],
        "users": [{"name": f"sa-{c}", "user": {"token": t}} for c, t in tokens.items()],
        "contexts": [{"name": c, "context": {"cluster": c, "user": f"sa-{c}"}} for c in tokens]}))
    return path


def as_accounts(testbed, clusters, cluster_role: dict, path: Path) -> tuple[dict, Path]:
    """Bind a fresh account on every cluster; ({cluster: username}, kubeconfig with their tokens)."""
    bound = {c: bound_account(testbed, c, cluster_role) for c in clusters}
    return {c: user for c, (user, _t) in bound.items()}, token_kubeconfig(testbed, {c: t for c, (_u, t) in bound.items()}, path)


def writes_by(testbed, users: dict, marks: dict) -> list[dict]:
    return [e for c, user in users.items() for e in testbed.writes(c, since=marks[c], user=user)]


def assert_least_privilege(testbed, tmp_path, role: str, clusters, run, take_away: str, resource: str,
                           expect_writes: bool = True):
    """``run(kubeconfig, folder)`` runs the role's playbook with that kubeconfig. With one API
    group's rules taken away it fails before any write, naming the resource and the role's
    file; with the shipped file it converges, and its re-run changes nothing."""
    shipped = shipped_role(role)
    users, config = as_accounts(testbed, clusters, without(shipped, take_away), tmp_path / "reduced" / "kubeconfig")
    marks = {c: testbed.audit_mark(c) for c in clusters}
    refused = run(config, tmp_path / "reduced")
    text = " ".join(refused.stdout.split())
    assert refused.returncode != 0, text[-2000:]
    assert f'resource "{resource}" in API group "{take_away}"' in text, text[-3000:]
    assert any(f"cannot {verb} " in text for verb in ("get", "list", "create", "patch", "delete")), text[-3000:]
    assert f"/roles/{role}/files/rbac.yml: apply it and bind" in text, text[-3000:]
    assert writes_by(testbed, users, marks) == [], "nothing written before the refusal"

    users, config = as_accounts(testbed, clusters, shipped, tmp_path / "full" / "kubeconfig")
    marks = {c: testbed.audit_mark(c) for c in clusters}
    first = run(config, tmp_path / "full")
    assert first.returncode == 0, first.stdout[-4000:]
    if expect_writes:
        assert writes_by(testbed, users, marks), "the role wrote as the bound accounts"
    marks = {c: testbed.audit_mark(c) for c in clusters}
    again = run(config, tmp_path / "full")
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert writes_by(testbed, users, marks) == []
    return first, again
