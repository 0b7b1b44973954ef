# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: kubeconfig
short_description: Clusters from kubeconfig contexts, as hosts the cluster roles can run against
version_added: 0.1.0
description:
  - Reads one or more kubeconfig files (merged the way kubectl merges a C(KUBECONFIG) list) and
    adds one host per selected context, in the group O(group) (C(clusters), the group the
    e-commerce, mesh and hybrid playbooks run against).
  - Each host gets the connection variables of the cluster roles - C(ecommerce_net_kubeconfig)
    and C(ecommerce_net_context), the same for C(istio_mesh_) and C(hybrid_dns_) - plus
    C(fabric_kubeconfig), C(fabric_context), C(fabric_cluster_server) and
    C(fabric_cluster_namespace), and a local connection (the modules talk to the API from the
    controller).
  - Credentials stay in the kubeconfig; the plugin never reads or copies users' secrets.
  - An AWX inventory source of type "Sourced from a Project" can point at such a file.
author:
  - k8snet.fabric contributors (@k8snet)
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: The name of this plugin; the file is taken when it names it.
    type: str
    required: true
    choices: [k8snet.fabric.kubeconfig]
  kubeconfig:
    description:
      - Kubeconfig files; relative paths are relative to the inventory file. Empty - the
        C(KUBECONFIG) list of the environment, else C(~/.kube/config).
    type: list
    elements: path
    default: []
  contexts:
    description: Only these contexts (names); empty - every context.
    type: list
    elements: str
    default: []
  context_regex:
    description: Only contexts whose name matches this regular expression (with O(contexts), both must hold).
    type: str
  host_name:
    description: What names the host - the C(context) name, or the C(cluster) name the context points at.
    type: str
    choices: [context, cluster]
    default: context
  group:
    description: Group every host joins.
    type: str
    default: clusters
  role_prefixes:
    description: Roles whose C(<prefix>_kubeconfig) and C(<prefix>_context) variables are set per host.
    type: list
    elements: str
    default: [ecommerce_net, istio_mesh, hybrid_dns]
"""

EXAMPLES = r"""
# inventory/clusters.kubeconfig.yml
plugin: k8snet.fabric.kubeconfig
kubeconfig: [~/.kube/config]
context_regex: '^prod-'
keyed_groups:
  - key: fabric_cluster_server | urlsplit('hostname')
    prefix: api
"""

import os
import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import kubeconfig
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import FabricError


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "k8snet.fabric.kubeconfig"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("kubeconfig.yml", "kubeconfig.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        base = os.path.dirname(os.path.abspath(path))
        files = [os.path.join(base, os.path.expanduser(p)) for p in self.get_option("kubeconfig") or []]
        if not files:
            listed = os.environ.get("KUBECONFIG", "")
            files = [p for p in listed.split(os.pathsep) if p] or [os.path.expanduser("~/.kube/config")]
        try:
            merged, _current = kubeconfig.merge(files)
        except FabricError as exc:
            raise AnsibleParserError(f"{path}: {exc}") from exc
        wanted = set(self.get_option("contexts") or [])
        pattern = self.get_option("context_regex")
        try:
            regex = re.compile(pattern) if pattern else None
        except re.error as exc:
            raise AnsibleParserError(f"{path}: context_regex {pattern!r} is not a regular expression: {exc}") from exc
        unknown = sorted(wanted - set(merged["contexts"]))
        if unknown:
            raise AnsibleParserError(f"{path}: contexts {', '.join(unknown)} are not in {os.pathsep.join(files)} "
                                     f"(contexts: {', '.join(sorted(merged['contexts'])) or 'none'})")
        group = self.inventory.add_group(self.get_option("group"))
        joined = os.pathsep.join(files)
        strict = self.get_option("strict")
        for name in sorted(merged["contexts"]):
            if (wanted and name not in wanted) or (regex and not regex.search(name)):
                continue
            context, _unused = merged["contexts"][name]
            cluster, _unused = merged["clusters"].get(context.get("cluster"), ({}, None))
            host = name if self.get_option("host_name") == "context" else str(context.get("cluster") or name)
            self.inventory.add_host(host, group=group)
            variables = {"ansible_connection": "local", "fabric_kubeconfig": joined, "fabric_context": name,
                         "fabric_cluster_server": cluster.get("server", ""),
                         "fabric_cluster_namespace": context.get("namespace", "default")}
            for prefix in self.get_option("role_prefixes"):
                variables[f"{prefix}_kubeconfig"] = joined
                variables[f"{prefix}_context"] = name
            for key, value in variables.items():
                self.inventory.set_variable(host, key, value)
            self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)
