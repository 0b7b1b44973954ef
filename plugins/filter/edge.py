# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filters over module_utils/edge.py for the edge_k3s role (documented in *.yml beside)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.k8snet.fabric.plugins.module_utils import edge
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ValidationError


def _site(value, filter_name):
    if not isinstance(value, dict) or "hosts" not in value:
        raise AnsibleFilterError(f"{filter_name}: expected the site mapping built by the edge_k3s role")
    return value


def edge_k3s_problems(site, sites=None, site_names=None):
    return edge.site_problems(_site(site, "edge_k3s_problems"), sites, site_names)


def edge_k3s_config(site, host):
    try:
        return edge.k3s_config(_site(site, "edge_k3s_config"), host)
    except StopIteration:
        raise AnsibleFilterError(f"edge_k3s_config: host {host!r} is not part of site {site.get('name')!r}")


def edge_k3s_registries(site):
    return edge.registries(_site(site, "edge_k3s_registries"))


def edge_site_objects(site, part="site"):
    builders = {"site": edge.site_objects, "nodes": edge.node_objects, "secrets": edge.secret_objects}
    if part not in builders:
        raise AnsibleFilterError(f"edge_site_objects: part {part!r} is not one of {', '.join(builders)}")
    try:
        return builders[part](_site(site, "edge_site_objects"))
    except (KeyError, ValidationError) as exc:
        raise AnsibleFilterError(f"edge_site_objects: site {site.get('name')!r} lacks {exc}") from exc


def edge_site_expectations(site):
    return edge.expectations(_site(site, "edge_site_expectations"))


def edge_site_range_names(site):
    return edge.range_names(_site(site, "edge_site_range_names"))


def edge_k3s_kubeconfig(text, site):
    return edge.site_kubeconfig(text, _site(site, "edge_k3s_kubeconfig"))


class FilterModule:
    def filters(self):
        return {"edge_k3s_problems": edge_k3s_problems, "edge_k3s_config": edge_k3s_config,
                "edge_k3s_registries": edge_k3s_registries, "edge_site_objects": edge_site_objects,
                "edge_k3s_kubeconfig": edge_k3s_kubeconfig, "edge_site_expectations": edge_site_expectations,
                "edge_site_range_names": edge_site_range_names}
