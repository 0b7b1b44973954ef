#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_readiness
short_description: Wait until the named Nodes are registered and Ready, and name the ones that are not
version_added: 0.1.0
description:
  - Polls the cluster's Nodes until every node in O(names) has joined and reports C(Ready=True),
    or O(timeout) passes. Then fails naming each node that is not Ready and why (not registered,
    C(Ready=False) or C(Unknown) with the kubelet's reason).
  - Reads only.
author:
  - k8snet.fabric contributors (@k8snet)
options:
  names:
    description: Node names, as the kubelets (K3s nodes) register them.
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds to wait for all of them.
    type: float
    default: 300
extends_documentation_fragment:
  - k8snet.fabric.connection
attributes:
  check_mode:
    support: full
    description: Reads only, so it runs in check mode too.
"""

EXAMPLES = r"""
- name: Every node of the site is up after the install
  k8snet.fabric.node_readiness:
    names: [factory1-server-1, factory1-agent-1, factory1-agent-2]
    kubeconfig: build/kubeconfig/factory-1.yaml
    timeout: 600
"""

RETURN = r"""
ready:
  description: The nodes that are Ready.
  returned: always
  type: list
  elements: str
not_ready:
  description: The nodes that are not Ready when the module returns, with the reason.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Node name., type: str}
    reason: {description: Why it is not Ready., type: str}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils import node_readiness
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import CONNECTION_ARGSPEC, Client
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import reported


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(names=dict(type="list", elements="str", required=True),
                           timeout=dict(type="float", default=300.0), **CONNECTION_ARGSPEC),
        supports_check_mode=True,
    )
    p = module.params
    with reported(module), Client(p) as client:
        result = node_readiness.wait_ready(client, p["names"], p["timeout"])
    if result["not_ready"]:
        module.fail_json(msg=f"{len(result['not_ready'])} of {len(p['names'])} nodes not Ready after "
                             f"{p['timeout']:g}s: " + "; ".join(f"{n['name']}: {n['reason']}" for n in result["not_ready"]),
                         **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
