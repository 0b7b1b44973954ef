# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Istio's authorization, evaluated: callers as principals, AuthorizationPolicy matching in
Istio's order, and the verdict for each expected request (filter istio_authz_verdicts; the
istio_mesh role proves its expectations with it before and after every write)."""

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks


def caller(text, where: str) -> tuple[str, str]:
    """'namespace/serviceaccount' -> (namespace, serviceaccount)."""
    parts = str(text).split("/")
    if len(parts) != 2 or not all(checks.DNS_LABEL.match(p) for p in parts):
        raise ValidationError(f"{where}: {text!r} must be namespace/serviceaccount")
    return parts[0], parts[1]


def principal(text: str, trust_domain: str) -> str:
    namespace, account = caller(text, "principal")
    return f"{trust_domain}/ns/{namespace}/sa/{account}"


def matches(values: list[str] | None, value: str) -> bool:
    """Istio string matching: exact, 'prefix*', '*suffix', '*'."""
    for pattern in values or []:
        if pattern == "*" or pattern == value:
            return True
        if pattern.endswith("*") and value.startswith(pattern[:-1]):
            return True
        if pattern.startswith("*") and value.endswith(pattern[1:]):
            return True
    return False


SUPPORTED_SOURCE = {"principals", "notPrincipals", "namespaces", "notNamespaces"}
SUPPORTED_OPERATION = {"methods", "notMethods", "paths", "notPaths", "ports", "notPorts"}


def _field_ok(spec: dict, key: str, value: str) -> bool:
    if key in spec and not matches(spec[key], value):
        return False
    if f"not{key[0].upper()}{key[1:]}" in spec and matches(spec[f"not{key[0].upper()}{key[1:]}"], value):
        return False
    return True


def _rulematches(rule: dict, request: dict) -> bool:
    if set(rule) - {"from", "to"}:
        raise ValidationError(f"rule fields {sorted(set(rule) - {'from', 'to'})} are not evaluated here")
    sources = [f.get("source") or {} for f in rule.get("from") or []]
    operations = [t.get("operation") or {} for t in rule.get("to") or []]
    for source in sources:
        if set(source) - SUPPORTED_SOURCE:
            raise ValidationError(f"source fields {sorted(set(source) - SUPPORTED_SOURCE)} are not evaluated here")
    for operation in operations:
        if set(operation) - SUPPORTED_OPERATION:
            raise ValidationError(f"operation fields {sorted(set(operation) - SUPPORTED_OPERATION)} are not evaluated here")
    from_ok = not sources or any(_field_ok(s, "principals", request["principal"])
                                 and _field_ok(s, "namespaces", request["namespace"]) for s in sources)
    to_ok = not operations or any(_field_ok(o, "methods", request["method"]) and _field_ok(o, "paths", request["path"])
                                  and _field_ok(o, "ports", str(request.get("port", "")))
                                  for o in operations)
    return from_ok and to_ok


def authorize(policies: list[dict], request: dict, root_namespace: str = "istio-system") -> tuple[bool, str]:
    """Istio's order for one request to a workload (``to_namespace``, ``to_labels``): a matching
    DENY denies; no ALLOW policy for the workload allows; a matching ALLOW allows; else deny."""
    applying = []
    for policy in policies:
        meta, spec = policy.get("metadata") or {}, policy.get("spec") or {}
        if meta.get("namespace") not in (request["to_namespace"], root_namespace):
            continue
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        if all(request["to_labels"].get(k) == v for k, v in selector.items()):
            applying.append(policy)
    for action in ("DENY", "ALLOW"):
        for policy in applying:
            spec = policy.get("spec") or {}
            if spec.get("action", "ALLOW") == action and any(_rulematches(r, request) for r in spec.get("rules") or []):
                verb = "allowed" if action == "ALLOW" else "denied"
                return action == "ALLOW", f"{verb} by {policy['metadata']['namespace']}/{policy['metadata']['name']}"
    if not any((p.get("spec") or {}).get("action", "ALLOW") == "ALLOW" for p in applying):
        return True, "no ALLOW policy applies to the workload"
    return False, "no ALLOW policy matches"


def verdicts(policies: list[dict], expect: list[dict], trust_domain: str = "cluster.local",
             root_namespace: str = "istio-system", workload_labels: dict | None = None) -> list[dict]:
    """Each expectation with the evaluator's answer and ``holds``."""
    out = []
    for i, item in enumerate(expect):
        if not isinstance(item, dict) or "/" not in str(item.get("to", "")):
            raise ValidationError(f"expect[{i}].to: {item.get('to') if isinstance(item, dict) else item!r} "
                                  f"is not namespace/workload")
        namespace, _unused = caller(item.get("from"), f"expect[{i}].from")
        to_ns, to_name = item["to"].split("/", 1)
        request = {"principal": principal(item["from"], trust_domain), "namespace": namespace,
                   "method": item.get("method", "GET"), "path": item.get("path", "/"), "port": item.get("port", ""),
                   "to_namespace": to_ns, "to_labels": (workload_labels or {}).get(item["to"], {"app": to_name})}
        allowed, why = authorize(policies, request, root_namespace)
        expected = item.get("allowed", True)
        words = {True: "allowed", False: "denied"}
        out.append({**item, "verdict": allowed, "why": why, "holds": allowed == expected,
                    "message": f"{item['from']} -> {item['to']} {request['method']} {request['path']}: expected "
                               f"{words[expected]}, {words[allowed]} ({why})"})
    return out
