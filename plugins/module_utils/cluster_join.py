# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Joining a member cluster to a host, through the engine: the host's controllers get a
ServiceAccount of their own on the member, a ClusterRole bound to it, and a token of it stored on
the host. Two kinds of host use it (a ``Grant`` each):

- KubeFed (as ``kubefedctl join``): the ClusterRole covers the federated types only (what
  KubeFed's sync controller reads and writes, namespaces read, /healthz), or everything as
  kubefedctl grants when the types are ``["*"]``; the host gets a Secret with the token and the
  member's CA, and the KubeFedCluster (core.kubefed.io/v1beta1) pointing at the member's API.
- An Istio primary (as ``istioctl create-remote-secret``): read-only discovery rules; the host
  gets the remote secret, a kubeconfig istiod reads (mesh_multicluster).

Unlike both tools (a legacy token Secret the token controller fills, never renewed), the token is
a bound token from the TokenRequest API with an expiry; a run reuses the host's token while it
still authenticates as the account and has more than ``renew_seconds`` left, and issues a new one
otherwise. The token never leaves this module: no task variable, no log.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Callable

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import Engine
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import Client
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ApiError, ClusterUnreachable

KUBEFED_API = "core.kubefed.io/v1beta1"


def account_name(member: str, host: str) -> str:
    return f"{member}-{host}"


# What KubeFed's sync controller does to a federated type in a member (kubefed#687).
SYNC_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


def member_rules(federated_types: list[str]) -> list[dict]:
    """The member ClusterRole's rules for federated types written ``resource[.group]``
    (``deployments.apps``, ``services``); ``["*"]`` is kubefedctl's grant of everything."""
    if "*" in federated_types:
        rules = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    else:
        by_group: dict[str, list[str]] = {}
        for name in sorted(set(federated_types)):
            resource, _unused, group = name.partition(".")
            by_group.setdefault(group, []).append(resource)
        rules = [{"apiGroups": [group], "resources": resources, "verbs": SYNC_VERBS} for group, resources in sorted(by_group.items())]
        if "namespaces" not in federated_types:
            # Placement and the namespace-scoped types need to see the member's namespaces.
            rules.append({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]})
    return rules + [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]


@dataclass(frozen=True)
class Grant:
    """What one host gets on one member and keeps of it: the member's ``account`` in
    ``namespace`` with ``rules`` (a ClusterRole ``role``), the sets both sides are converged in,
    the host's objects built from (endpoint, member CA PEM, token), and how to read back the
    token the host holds (None when it holds none)."""
    namespace: str
    account: str
    role: str
    rules: list
    member_set: str
    host_set: str
    namespace_set: str | None  # None: the namespace is another's (istioctl's), never created here
    host_objects: Callable[[str, "str | None", str], list]
    stored_token: Callable[[Client], "str | None"]


def account_objects(grant: Grant) -> list[dict]:
    """The member's side of a grant: the account, its ClusterRole and the binding."""
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": grant.account, "namespace": grant.namespace}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": grant.role},
             "rules": grant.rules},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": grant.role},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": grant.role},
             "subjects": [{"kind": "ServiceAccount", "name": grant.account, "namespace": grant.namespace}]}]


def kubefed_grant(member: str, host: str, namespace: str, federated_types: list[str]) -> Grant:
    account = account_name(member, host)

    def stored_token(client: Client) -> str | None:
        current = client.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{member}-credentials", allow=(404,))
        token = ((current or {}).get("data") or {}).get("token")
        return base64.b64decode(token).decode() if token else None

    return Grant(namespace=namespace, account=account, role=f"kubefed-controller-manager:{account}",
                 rules=member_rules(federated_types), member_set=f"kubefed-member-{host}", host_set=f"kubefed-join-{member}",
                 namespace_set="kubefed-namespace",
                 host_objects=lambda endpoint, ca_pem, token: host_objects(member, namespace, endpoint, ca_pem, token),
                 stored_token=stored_token)


def host_objects(member: str, namespace: str, endpoint: str, ca_pem: str | None, token: str) -> list[dict]:
    secret = f"{member}-credentials"
    data = {"token": base64.b64encode(token.encode()).decode()}
    cluster = {"apiEndpoint": endpoint, "secretRef": {"name": secret}}
    if ca_pem:
        data["ca.crt"] = cluster["caBundle"] = base64.b64encode(ca_pem.encode()).decode()
    return [{"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": secret, "namespace": namespace},
             "data": data},
            {"apiVersion": KUBEFED_API, "kind": "KubeFedCluster", "metadata": {"name": member, "namespace": namespace},
             "spec": cluster}]


def namespace_object(namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}


def ensure_namespace(client: Client, grant: Grant, check_mode: bool) -> list[dict]:
    """The grant's namespace, in a set of its own that every join shares and none prunes (on the
    host it also holds the control plane). Returns what a join set must add to be validated:
    in check mode, the namespace the run would create (so its objects are dry-run in a stand-in)."""
    if grant.namespace_set is None:
        return []
    result = Engine(client, check_mode=check_mode).converge(
        grant.namespace_set, grant.namespace, [namespace_object(grant.namespace)], "merged")
    created = result["results"][0]["result"] == "created"
    return [namespace_object(grant.namespace)] if check_mode and created else []


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (seconds since the epoch), read without verifying it: the
    member's API server is asked whether the token is good."""
    try:
        payload = token.split(".")[1]
        return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def authenticates_as(member: Client, token: str, username: str) -> bool:
    probe = member.with_token(token)
    try:
        review = probe.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                               body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        return review["status"]["userInfo"]["username"] == username
    except (ApiError, ClusterUnreachable, KeyError):
        return False
    finally:
        probe.close()


def join(member: Client, host: Client, grant: Grant, *, endpoint: str | None, token_seconds: int,
         renew_seconds: int, check_mode: bool, diff: bool) -> dict:
    """Converge one member's join; returns changed, what happened to the token, and per-side results.
    Both sides are dry-run before either is written: a refusal on the host (a missing permission,
    an invalid object) must not leave the member half-joined."""
    kwargs = dict(endpoint=endpoint, token_seconds=token_seconds, renew_seconds=renew_seconds, diff=diff)
    planned = _join_pass(member, host, grant, check_mode=True, **kwargs)
    return planned if check_mode else _join_pass(member, host, grant, check_mode=False, **kwargs)


def _join_pass(member: Client, host: Client, grant: Grant, *, endpoint: str | None, token_seconds: int,
               renew_seconds: int, check_mode: bool, diff: bool) -> dict:
    namespace = grant.namespace
    member_extra = ensure_namespace(member, grant, check_mode)
    host_extra = ensure_namespace(host, grant, check_mode)
    member_engine = Engine(member, check_mode=check_mode, want_diff=diff)
    member_result = member_engine.converge(grant.member_set, namespace, member_extra + account_objects(grant), "replaced")
    token = grant.stored_token(host)
    username = f"system:serviceaccount:{namespace}:{grant.account}"
    expiry = token_expiry(token) if token else None
    if token and expiry and expiry - time.time() > renew_seconds and authenticates_as(member, token, username):
        token_state = "kept"
    elif check_mode:
        token_state = "would be issued"
        token = token or "check-mode-placeholder"
    else:
        answer = member.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{grant.account}/token",
                                body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                      "spec": {"expirationSeconds": token_seconds}})
        token, token_state = answer["status"]["token"], "issued"
        expiry = token_expiry(token)
    host_engine = Engine(host, check_mode=check_mode, want_diff=diff)
    host_result = host_engine.converge(grant.host_set, namespace, host_extra + grant.host_objects(
        endpoint or member.server, member.ca_pem(), token), "replaced")
    return {"changed": member_result["changed"] or host_result["changed"], "token": token_state,
            "token_expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry)) if expiry else None,
            "api_endpoint": endpoint or member.server, "service_account": f"{namespace}/{grant.account}",
            "member": member_result["results"], "host": host_result["results"],
            "diff": member_result.get("diff", []) + host_result.get("diff", [])}


def unjoin(member: Client, host: Client, grant: Grant, *, check_mode: bool) -> dict:
    """Remove what join made on both sides; the namespaces stay (the host's holds its control plane)."""
    removed = []
    for client, set_name, objects in ((host, grant.host_set, grant.host_objects("", None, "")),
                                      (member, grant.member_set, account_objects(grant))):
        engine = Engine(client, check_mode=check_mode)
        result = engine.delete(set_name, grant.namespace, objects)
        removed += [r for r in result["results"] if r["result"] == "deleted"]
        engine.forget(set_name, grant.namespace)
    return {"changed": bool(removed), "removed": removed}
