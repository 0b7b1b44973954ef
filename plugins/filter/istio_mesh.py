# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""istio_mesh_plan and istio_authz_verdicts (see their .yml files)."""

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils import istio_authz
from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import istio_mesh
from ansible_collections.k8snet.fabric.plugins.plugin_utils.filters import expect_type, reporting, role_plan

istio_mesh_plan = role_plan("istio_mesh_plan", istio_mesh.plan)


@reporting
def istio_authz_verdicts(policies, expect, trust_domain="cluster.local", root_namespace="istio-system"):
    authz = [p for p in expect_type(policies, list, "a list of AuthorizationPolicies")
             if isinstance(p, dict) and p.get("kind") == "AuthorizationPolicy"]
    return istio_authz.verdicts(authz, expect_type(expect, list, "a list of requests"), trust_domain, root_namespace)


class FilterModule:
    def filters(self):
        return {"istio_mesh_plan": istio_mesh_plan, "istio_authz_verdicts": istio_authz_verdicts}
