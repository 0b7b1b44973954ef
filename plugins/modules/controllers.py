#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: controllers
short_description: Install the controllers a set of objects needs from an air-gap bundle, or prove the cluster serves them
version_added: 0.1.0
description:
  - Reads the API groups of O(objects) and names the controllers that alone serve them
    (Envoy Gateway for Gateway API and C(gateway.envoyproxy.io) kinds, external-dns for
    DNSEndpoints, the Prometheus Operator for C(monitoring.coreos.com), MetalLB, k8gb, an MCS
    API implementation, KubeFed, Istio).
  - Each controller named in O(install) is installed from its upstream release manifest in
    O(bundle_dir) - the same folder layout as the edge role's add-ons, with a C(sha256sum.txt).
    Every file is checked against its checksum, parsed, and checked to define the CRDs the
    objects need before anything is sent to the cluster. A controller is converged as its own
    ApplySet (C(controller-<name>) in O(set_namespace)), shared by every role that installs it,
    with the manifest's own RBAC; objects a newer manifest drops are pruned. Then every
    Deployment of the manifest must become Available within O(wait_timeout).
  - Then every kind the objects need must be served. When one is not, the task fails naming the
    controllers that are missing and their kinds, so that nothing is applied to a cluster where
    no controller would act on it.
  - In check mode nothing is written. The installs are dry runs, and the kinds they would serve
    are returned as RV(pending_kinds) for the O(k8snet.fabric.resource_set#module:pending_kinds)
    of the tasks that follow.
author:
  - k8snet.fabric contributors (@k8snet)
options:
  objects:
    description: The objects the role is about to apply; only their C(apiVersion) and C(kind) are read.
    type: list
    elements: dict
    default: []
  install:
    description:
      - Controllers to install from O(bundle_dir) where the objects need them (one the objects do
        not need is left alone). Those not named must already run on the cluster.
    type: list
    elements: str
    choices: [envoy-gateway, external-dns, prometheus-operator, metallb]
    default: []
  bundle_dir:
    description:
      - The air-gap bundle on the machine the task runs on - C(sha256sum.txt) and each
        controller's manifest (see O(manifests)). Required when O(install) names any.
    type: path
  manifests:
    description:
      - File names in O(bundle_dir) per controller, where they differ from the defaults
        C(envoy-gateway-install.yaml) (Envoy Gateway's release C(install.yaml)),
        C(external-dns.yaml) (C(helm template) of its chart with your DNS provider's settings and
        its CRD), C(prometheus-operator-bundle.yaml) (the release's C(bundle.yaml)) and
        C(metallb-native.yaml).
    type: dict
    default: {}
  set_namespace:
    description: Namespace of each controller's ApplySet parent.
    type: str
    default: kube-system
  wait_timeout:
    description: Seconds to wait for CRDs to be Established and each controller's Deployments to be Available.
    type: float
    default: 300
extends_documentation_fragment:
  - k8snet.fabric.connection
attributes:
  check_mode:
    support: full
    description: Verifies the bundle and dry-runs the installs; zero write requests.
  diff_mode:
    support: full
    description: One before/after entry per object of the installed manifests, Secret values redacted.
notes:
  - Installing a controller needs the rights to create its CRDs, ClusterRoles and bindings;
    the task acts with the kubeconfig's rights and nothing more.
"""

EXAMPLES = r"""
- name: Fail early, naming the controllers that are missing, instead of applying where nothing acts
  k8snet.fabric.controllers:
    objects: "{{ plan.objects }}"
  register: needed

- name: Install Envoy Gateway and the Prometheus Operator from the air-gap bundle
  k8snet.fabric.controllers:
    objects: "{{ plan.objects }}"
    install: [envoy-gateway, prometheus-operator]
    bundle_dir: /srv/airgap/controllers
  register: controllers

- name: The role's objects (in check mode, the kinds the install would serve count as served)
  k8snet.fabric.resource_set:
    name: shop
    state: overridden
    objects: "{{ plan.objects }}"
    pending_kinds: "{{ controllers.pending_kinds }}"
"""

RETURN = r"""
needed:
  description: The controllers the objects need, with their kinds, whether this task installed them and whether they are served.
  returned: always
  type: list
  elements: dict
  sample: [{name: envoy-gateway, title: Envoy Gateway, kinds: ["Gateway (gateway.networking.k8s.io/v1)"], installed: true, served: true}]
installed:
  description: Per installed controller, the summary and per-object results of its ApplySet.
  returned: always
  type: dict
pending_kinds:
  description: In check mode, the kinds an install would serve that the cluster does not serve yet.
  returned: always
  type: list
  elements: dict
  sample: [{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway}]
diff:
  description: Before/after of each object the installs would change (with C(--diff)).
  returned: when diff mode is on and something changes
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils import controllers
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import catalogue
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import CONNECTION_ARGSPEC, Client
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError, reported


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            objects=dict(type="list", elements="dict", default=[]),
            install=dict(type="list", elements="str", default=[], choices=list(catalogue.INSTALLABLE)),
            bundle_dir=dict(type="path"),
            manifests=dict(type="dict", default={}),
            set_namespace=dict(type="str", default="kube-system"),
            wait_timeout=dict(type="float", default=300.0),
            **CONNECTION_ARGSPEC,
        ),
        supports_check_mode=True,
    )
    p = module.params
    with reported(module):
        unknown = sorted(set(p["manifests"]) - set(catalogue.INSTALLABLE))
        if unknown:
            raise ValidationError(f"manifests: {unknown} are not installable controllers "
                                  f"(choose from {', '.join(catalogue.INSTALLABLE)})")
        needs = catalogue.needed(p["objects"])
        # Only what the objects need: a role's list may name a controller this run's options do not use.
        install = [name for name in dict.fromkeys(p["install"]) if name in needs]
        if install and not p["bundle_dir"]:
            raise ValidationError(f"bundle_dir: required to install {', '.join(install)}")
        bundle = controllers.read_bundle(p["bundle_dir"], {
            name: p["manifests"].get(name) or catalogue.BY_NAME[name].manifest for name in install}) if install else {}
        controllers.check_bundle(needs, install, bundle)  # offline, before connecting
        with Client(p) as client:
            result = controllers.converge(client, needs, install, bundle, set_namespace=p["set_namespace"],
                                          check_mode=module.check_mode, want_diff=module._diff,
                                          wait_timeout=p["wait_timeout"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
