#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: network_policies
short_description: NetworkPolicies from a concise intent - default deny, flows, DNS
version_added: 0.1.0
description:
  - Turns per-namespace intent (default deny, DNS egress, flows between workloads, namespaces
    and CIDRs) into NetworkPolicies and converges them as one named set through the
    k8snet.fabric engine (validation by server-side dry run before any write, ApplySet prune).
  - A flow between pods becomes an ingress rule on the destination and an egress rule on the
    source, so it keeps working under default deny in both directions.
  - O(config[].allow_dns) (on by default when egress is denied) adds egress to the cluster DNS,
    the classic "default deny broke DNS" trap.
  - Bad intent fails before anything is sent - unknown protocol, port out of range, invalid
    CIDR, except outside its CIDR, a peer or port list that would silently allow everything.
  - C(gathered) and C(parsed) turn NetworkPolicies back into this intent model.
author:
  - k8snet.fabric contributors (@k8snet)
options:
  config:
    description: One entry per namespace.
    type: list
    elements: dict
    suboptions:
      namespace:
        description: The namespace the entry describes.
        type: str
        required: true
      default_deny:
        description: C(true) (both), C(false), or a list of C(ingress)/C(egress).
        type: raw
        default: true
      allow_dns:
        description: Egress to the cluster DNS for every pod of the namespace (default - on when egress is denied).
        type: bool
      dns:
        description: Where the cluster DNS runs (namespace, pods labels, ports).
        type: dict
        default: {namespace: kube-system, pods: {k8s-app: kube-dns}, ports: [53/UDP, 53/TCP]}
      flows:
        description:
          - Allowed traffic. Each has C(name), C(from), C(to) and optional C(ports).
          - A peer is C({pods - labels}) (this namespace), plus C(namespace - name) or
            C(namespaces - labels); or C({namespaces - labels}); or C({cidr, except}).
          - A port is C(80), C("53/UDP"), C("8000-8100/TCP"), a named port such as C(http) or
            C(dns/UDP), or a mapping with C(port), C(protocol), C(end_port).
        type: list
        elements: dict
  content:
    description: NetworkPolicy manifests (multi-document YAML) for O(state=parsed).
    type: str
  src:
    description: Manifest files or directories for O(state=parsed).
    type: list
    elements: path
extends_documentation_fragment:
  - k8snet.fabric.set_options
  - k8snet.fabric.connection
attributes:
  check_mode:
    support: full
    description: Dry runs only.
  diff_mode:
    support: full
    description: One before/after entry per policy.
"""

EXAMPLES = r"""
- name: Segment the shop - deny by default, then exactly these flows
  k8snet.fabric.network_policies:
    name: shop-policies
    state: overridden
    context: us-east
    config:
      - namespace: shop
        default_deny: true
        flows:
          - {name: internet-to-web, from: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}, to: {pods: {app: web}}, ports: [80]}
          - {name: web-to-api, from: {pods: {app: web}}, to: {pods: {app: api}}, ports: [8080]}
          - {name: api-to-db, from: {pods: {app: api}}, to: {pods: {app: db}}, ports: [5432]}

- name: What do the live policies say, in intent form?
  k8snet.fabric.network_policies:
    name: shop-policies
    state: gathered
  register: shop
"""

RETURN = r"""
policies:
  description: The NetworkPolicies the intent produces.
  returned: when state is merged, replaced, overridden, deleted or rendered
  type: list
  elements: dict
gathered:
  description: The live policies of the set, as intent.
  returned: when state is gathered
  type: list
  elements: dict
parsed:
  description: The given manifests, as intent.
  returned: when state is parsed
  type: list
  elements: dict
results:
  description: Per-policy outcome, as M(k8snet.fabric.resource_set) returns.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import manifests
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import reported
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.runner import SET_ARGSPEC, run
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import model


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(config=dict(type="list", elements="dict"), content=dict(type="str"),
                           src=dict(type="list", elements="path"), **SET_ARGSPEC),
        supports_check_mode=True,
    )
    state = module.params["state"]
    with reported(module):
        if state == "parsed":
            objects = manifests.load(module.params["src"] or [])
            if module.params["content"]:
                objects += manifests.parse(module.params["content"])
            module.exit_json(changed=False, parsed=model.to_intent(objects))
        policies = model.build(module.params["config"] or [])
        if state == "deleted" and not module.params["config"]:
            policies = []
        result = run(module, policies)
        if state == "gathered":
            result["gathered"] = model.to_intent(result["gathered"])
        else:
            result["policies"] = policies
    module.exit_json(**result)


if __name__ == "__main__":
    main()
