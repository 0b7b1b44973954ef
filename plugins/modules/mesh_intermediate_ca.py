#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mesh_intermediate_ca
short_description: One cluster's Istio signing CA under a mesh's shared root (the cacerts Secret)
version_added: 0.1.0
description:
  - Converges the C(cacerts) Secret in O(namespace) (Istio's root namespace) of the cluster the
    connection options name, the plugged CA that istiod signs workload certificates with -
    C(ca-cert.pem) and C(ca-key.pem) (an intermediate CA for this cluster), C(root-cert.pem)
    (the shared root) and C(cert-chain.pem) (intermediate, then root), as Istio's
    "Plug in CA certificates" steps make them.
  - Every cluster of a multi-cluster mesh gets its own intermediate under one root, so the
    clusters' workload certificates verify each other.
  - The intermediate is kept while it is signed by the root in O(root_cert_path), matches its key
    and has more than O(renew_days) days left; otherwise a new one (ECDSA P-256, CA with path
    length 0, valid O(days) but never past the root) replaces it. istiod watches the mounted
    Secret and signs with the new CA.
  - A C(cacerts) under another root is refused and left as it is - moving a mesh to another root
    is a migration, not a side effect of one run.
  - Creates O(namespace) when it is missing, as Istio's steps do before C(istioctl install).
  - The keys never leave the module; only fingerprints and dates are returned.
author:
  - k8snet.fabric contributors (@k8snet)
options:
  root_cert_path:
    description: The mesh's root CA certificate (PEM, CA:TRUE), the same for every cluster.
    type: path
    required: true
  root_key_path:
    description: The root CA's private key (unencrypted PEM); read only to sign the intermediate.
    type: path
    required: true
  cluster_name:
    description: The cluster's name in the mesh; the intermediate's subject carries it (C(L=)).
    type: str
    required: true
  namespace:
    description: Istio's root namespace, where istiod mounts C(cacerts).
    type: str
    default: istio-system
  days:
    description: Validity of an issued intermediate (capped at the root's end).
    type: int
    default: 730
  renew_days:
    description: Issue a new intermediate when fewer days remain.
    type: int
    default: 60
extends_documentation_fragment:
  - k8snet.fabric.connection
attributes:
  check_mode:
    support: full
    description: A dry run of the Secret; nothing is written and no namespace is created.
  diff_mode:
    support: full
    description: Before/after of the Secret, its values redacted.
"""

EXAMPLES = r"""
- name: us-east's signing CA under the mesh's root (run for every cluster of the mesh)
  k8snet.fabric.mesh_intermediate_ca:
    root_cert_path: "{{ playbook_dir }}/pki/mesh-root.crt"
    root_key_path: "{{ playbook_dir }}/pki/mesh-root.key"
    cluster_name: us-east
    context: us-east
"""

RETURN = r"""
ca:
  description: What happened to the intermediate - C(kept), C(issued) (no cacerts before) or C(renewed).
  returned: success
  type: str
reason:
  description: Why an existing intermediate was replaced (empty when kept or first issued).
  returned: success
  type: str
secret:
  description: The Secret, C(namespace/cacerts).
  returned: success
  type: str
not_after:
  description: When the intermediate expires (UTC, ISO 8601).
  returned: success
  type: str
days_left:
  description: Whole days until then.
  returned: success
  type: int
fingerprint_sha256:
  description: SHA-256 of the intermediate certificate (DER).
  returned: success
  type: str
root_fingerprint_sha256:
  description: SHA-256 of the root certificate (DER); the same in every cluster of one mesh.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import istio_mesh_multicluster
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import CONNECTION_ARGSPEC, Client
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import reported


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(root_cert_path=dict(type="path", required=True),
                           root_key_path=dict(type="path", required=True, no_log=False),
                           cluster_name=dict(type="str", required=True),
                           namespace=dict(type="str", default="istio-system"),
                           days=dict(type="int", default=730), renew_days=dict(type="int", default=60),
                           **CONNECTION_ARGSPEC),
        supports_check_mode=True,
    )
    p = module.params
    with reported(module, prefix=f"{p['cluster_name']}: "):
        with Client(p) as client:
            result = istio_mesh_multicluster.converge_cacerts(
                client, p["namespace"], p["cluster_name"], p["root_cert_path"], p["root_key_path"],
                days=p["days"], renew_days=p["renew_days"], check_mode=module.check_mode, diff=module._diff)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
