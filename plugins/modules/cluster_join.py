#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cluster_join
short_description: Join a member cluster to a KubeFed host or an Istio primary (renewed bound tokens)
version_added: 0.1.0
description:
  - On the member (the connection options), converges a ServiceAccount for the host in
    O(namespace), a ClusterRole and its binding.
  - O(kind=kubefed) (C(kubefedctl join)) - the ClusterRole covers the O(federated_types); on the
    host (O(host_kubeconfig)/O(host_context)), a Secret with a token of that account and the
    member's CA, and the C(KubeFedCluster) (C(core.kubefed.io/v1beta1)) pointing at the member's API.
  - O(kind=istio) (C(istioctl create-remote-secret)) - the ClusterRole reads what istiod needs to
    discover the member's services (Services, endpoints, EndpointSlices, pods, nodes,
    namespaces, Istio's and the Gateway API's objects; no Secrets, no writes); on the host, the
    remote secret C(istio-remote-secret-<name>) in O(namespace) (the host's root namespace,
    labelled C(istio/multiCluster=true)), a kubeconfig with the token that istiod reads.
  - The token is a bound token from the TokenRequest API valid O(token_days); a run keeps the
    host's token while the member still accepts it as the account and more than O(renew_days)
    remain, and issues a new one otherwise. The token is never returned or logged.
  - With O(state=absent), removes what a join made on both sides; the namespaces stay.
author:
  - k8snet.fabric contributors (@k8snet)
options:
  name:
    description: The member's name in the federation (the KubeFedCluster's name).
    type: str
    required: true
  host_name:
    description: The host cluster's name (part of the member's ServiceAccount name).
    type: str
    required: true
  kind:
    description: What the host runs - KubeFed, or an Istio primary of a multi-cluster mesh.
    type: str
    choices: [kubefed, istio]
    default: kubefed
  namespace:
    description:
      - KubeFed's namespace (O(kind=kubefed)) or Istio's root namespace (O(kind=istio)) on the
        host, and where the member's account lives.
      - Default C(kube-federation-system) for O(kind=kubefed), C(istio-system) for O(kind=istio).
    type: str
  api_endpoint:
    description: How the host reaches the member's API; defaults to the member connection's server.
    type: str
  host_kubeconfig:
    description:
      - Kubeconfig for the host cluster (default the member's O(kubeconfig)).
      - O(impersonate_user) and O(impersonate_groups) (and their variables) apply to the host
        connection too, since they limit what the run may do on every cluster.
    type: path
  host_context:
    description: The host cluster's context.
    type: str
    required: true
  token_days:
    description: Validity of an issued token.
    type: int
    default: 365
  renew_days:
    description: Issue a new token when fewer days remain.
    type: int
    default: 30
  federated_types:
    description:
      - O(kind=kubefed) only. The types KubeFed propagates to the member, C(resource) or C(resource.group)
        (C(deployments.apps)); the member's ClusterRole grants get, list, watch, create, update,
        patch and delete on them, read on namespaces and C(/healthz), nothing else.
      - C([*]) grants everything, as C(kubefedctl join) does.
      - The identity running the join must itself hold what it grants (RBAC escalation prevention).
    type: list
    elements: str
    default: ['*']
  state:
    description: C(present) joins, C(absent) unjoins.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - k8snet.fabric.connection
attributes:
  check_mode:
    support: full
    description: Dry runs only; no token is issued.
  diff_mode:
    support: full
    description: Before/after of every object on both sides, the Secret's values redacted.
"""

EXAMPLES = r"""
- name: Join eu-west to the federation hosted on us-east
  k8snet.fabric.cluster_join:
    name: eu-west
    host_name: us-east
    context: eu-west
    host_context: us-east
    # What KubeFed propagates here, instead of kubefedctl's grant of everything
    federated_types: [namespaces, configmaps, services, deployments.apps]

- name: Let the us-east primary's istiod discover eu-west's services (its remote secret)
  k8snet.fabric.cluster_join:
    kind: istio
    name: eu-west
    host_name: us-east
    context: eu-west
    host_context: us-east
"""

RETURN = r"""
token:
  description: What happened to the token - C(kept), C(issued) or C(would be issued).
  returned: state=present
  type: str
token_expires:
  description: When the host's token expires (UTC).
  returned: state=present
  type: str
api_endpoint:
  description: The member API the host uses.
  returned: state=present
  type: str
service_account:
  description: The member's account for the host, C(namespace/name).
  returned: state=present
  type: str
member:
  description: Per-object results on the member.
  returned: state=present
  type: list
  elements: dict
host:
  description: Per-object results on the host (the Secret's values never appear).
  returned: state=present
  type: list
  elements: dict
removed:
  description: Objects deleted on either side.
  returned: state=absent
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils import cluster_join
from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import istio_mesh_multicluster
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import kubeconfig
from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import CONNECTION_ARGSPEC, Client
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import reported


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True), host_name=dict(type="str", required=True),
            kind=dict(type="str", choices=["kubefed", "istio"], default="kubefed"),
            namespace=dict(type="str"), api_endpoint=dict(type="str"),
            host_kubeconfig=dict(type="path"), host_context=dict(type="str", required=True),
            token_days=dict(type="int", default=365, no_log=False), renew_days=dict(type="int", default=30),
            federated_types=dict(type="list", elements="str", default=["*"]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **CONNECTION_ARGSPEC),
        supports_check_mode=True,
    )
    p = module.params
    # The K8S_AUTH_* variables (AWX's credential) describe the member's connection only;
    # impersonation (options and variables) limits the run on both clusters.
    host_params = {"kubeconfig": p["host_kubeconfig"] or p["kubeconfig"], "context": p["host_context"],
                   "request_timeout": p["request_timeout"], "permissions_file": p["permissions_file"],
                   "impersonate_user": p["impersonate_user"], "impersonate_groups": p["impersonate_groups"]}
    with reported(module, prefix=f"{p['name']}: "):
        checks.require(checks.renewal_window, p["renew_days"], p["token_days"], "renew_days", days_name="token_days")
        with Client(p) as member, Client(host_params, credentials=kubeconfig.resolve(
                host_params, kubeconfig.without_cluster_environment(os.environ))) as host:
            result = join_or_unjoin(module, member, host)
    module.exit_json(**result)


DEFAULT_NAMESPACE = {"kubefed": "kube-federation-system", "istio": "istio-system"}


def join_or_unjoin(module, member: Client, host: Client) -> dict:
    p = dict(module.params)
    p["namespace"] = p["namespace"] or DEFAULT_NAMESPACE[p["kind"]]
    if p["kind"] == "istio":
        grant = istio_mesh_multicluster.grant(p["name"], p["host_name"], p["namespace"])
    else:
        grant = cluster_join.kubefed_grant(p["name"], p["host_name"], p["namespace"], p["federated_types"])
    if p["state"] == "absent":
        return cluster_join.unjoin(member, host, grant, check_mode=module.check_mode)
    result = cluster_join.join(member, host, grant, endpoint=p["api_endpoint"], token_seconds=p["token_days"] * 86400,
                               renew_seconds=p["renew_days"] * 86400, check_mode=module.check_mode, diff=module._diff)
    result["changed"] = result["changed"] or result["token"] != "kept"
    return result


if __name__ == "__main__":
    main()
