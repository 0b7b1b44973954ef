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
def edge_k3s_problems(site, sites=None, site_names=None):
    return edge_k3s.site_problems(_site(site), sites, site_names)


@reporting
def edge_k3s_config(site, host):
    return edge_k3s.k3s_config(_site(site), host)


@reporting
def edge_k3s_registries(site):
    return edge_k3s.registries(_site(site))


@reporting
def edge_k3s_host_files(site, host, unit, unit_text, env_text, artifacts=None):
    if unit not in ("k3s", "k3s-agent"):
        raise ValidationError(f"unit {unit!r} is not k3s or k3s-agent")
    return edge_k3s.host_files(_site(site), host, unit, str(unit_text), str(env_text), artifacts)


@reporting
def edge_site_objects(site, part="site"):
    builders = {"site": edge_k3s.site_objects, "nodes": edge_k3s.node_objects, "secrets": edge_k3s.secret_objects}
    if part not in builders:
        raise ValidationError(f"part {part!r} is not one of {', '.join(builders)}")
    try:
        return builders[part](_site(site))
    except KeyError as exc:  # a site built by hand, not by the role
        raise ValidationError(f"site {site.get('name')!r} lacks {exc}") from exc


@reporting
def edge_site_expectations(site):
    return edge_k3s.expectations(_site(site))


@reporting
def edge_site_range_names(site):
    return edge_k3s.range_names(_site(site))


@reporting
def edge_k3s_kubeconfig(text, site):
    return edge_k3s.site_kubeconfig(text, _site(site))


class FilterModule:
    def filters(self):
        return {"edge_k3s_problems": edge_k3s_problems, "edge_k3s_config": edge_k3s_config,
                "edge_k3s_registries": edge_k3s_registries, "edge_k3s_host_files": edge_k3s_host_files,
                "edge_site_objects": edge_site_objects,
                "edge_k3s_kubeconfig": edge_k3s_kubeconfig, "edge_site_expectations": edge_site_expectations,
                "edge_site_range_names": edge_site_range_names}
