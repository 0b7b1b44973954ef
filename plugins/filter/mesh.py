# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""istio_mesh_plan and istio_authz_verdicts (see their .yml files)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.k8snet.fabric.plugins.module_utils import mesh
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ValidationError


def istio_mesh_plan(spec):
    if not isinstance(spec, dict):
        raise AnsibleFilterError("istio_mesh_plan: expected the role's spec mapping")
    return mesh.plan(spec)


def istio_authz_verdicts(policies, expect, trust_domain="cluster.local", root_namespace="istio-system"):
    if not isinstance(policies, list) or not isinstance(expect, list):
        raise AnsibleFilterError("istio_authz_verdicts: expected a list of AuthorizationPolicies and a list of requests")
    authz = [p for p in policies if isinstance(p, dict) and p.get("kind") == "AuthorizationPolicy"]
    try:
        return mesh.verdicts(authz, expect, trust_domain, root_namespace)
    except (ValidationError, KeyError, ValueError) as exc:
        raise AnsibleFilterError(f"istio_authz_verdicts: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"istio_mesh_plan": istio_mesh_plan, "istio_authz_verdicts": istio_authz_verdicts}
