# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filters over module_utils/scenarios/edge_k3s.py for the edge_k3s role (documented in *.yml beside)."""

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import edge_k3s
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.plugin_utils.filters import reporting


def _site(value):
    if not isinstance(value, dict) or "hosts" not in value:
        raise ValidationError("expected the site mapping built by the edge_k3s role")
    return value


@reporting
def edge_k3s_plan(site, sites=None, site_names=None):
    return edge_k3s.plan(_site(site), sites, site_names)


@reporting
def edge_k3s_host_files(site, host, unit, unit_text, env_text, artifacts=None):
    if unit not in ("k3s", "k3s-agent"):
        raise ValidationError(f"unit {unit!r} is not k3s or k3s-agent")
    return edge_k3s.host_files(_site(site), host, unit, str(unit_text), str(env_text), artifacts)


@reporting
def edge_k3s_kubeconfig(text, site):
    return edge_k3s.site_kubeconfig(text, _site(site))


class FilterModule:
    def filters(self):
        return {"edge_k3s_plan": edge_k3s_plan, "edge_k3s_host_files": edge_k3s_host_files,
                "edge_k3s_kubeconfig": edge_k3s_kubeconfig}
