#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: resource_set
short_description: Converge a named set of Kubernetes objects (validated, parallel, prunable)
version_added: 0.1.0
description:
  - Converges a named set of objects of any kind, built-in or custom, on one cluster, with the
    state vocabulary of Ansible network resource modules.
  - Before anything is written, every object is checked locally (shape, scope, duplicates,
    served kind) and every create or update is sent to the API server as a server-side dry run
    (C(dryRun=All)). If any object fails, the task fails listing every failing object with the
    server's message, and nothing is written.
  - Namespaces and CustomResourceDefinitions of the set are applied first and waited for
    (Active, Established); then everything else. Deletes run in reverse order.
  - The live state is read with one LIST per kind and namespace; an object whose declared
    fields and declared-content hash match the live one costs no further request, so a
    second identical run issues no write and reports C(changed=false).
  - Set membership follows KEP-3659 ApplySets (a parent Secret named O(name) in
    O(set_namespace), members labelled C(applyset.kubernetes.io/part-of)), readable by
    C(kubectl apply --prune --applyset=<name> -n <set_namespace>).
  - Secret C(data)/C(stringData) and token-like fields are redacted in diffs, results and errors.
author:
  - k8snet.fabric contributors (@k8snet)
options:
  objects:
    description: The objects of the set, as mappings.
    type: list
    elements: dict
  src:
    description:
      - Manifest files or directories (multi-document YAML or JSON) whose objects join O(objects).
    type: list
    elements: path
  content:
    description: Multi-document YAML text whose objects join O(objects) (for O(state=parsed)).
    type: str
extends_documentation_fragment:
  - k8snet.fabric.set_options
  - k8snet.fabric.connection
attributes:
  check_mode:
    support: full
    description: Dry runs only; zero write requests.
  diff_mode:
    support: full
    description: One before/after entry per object, Secret values redacted.
requirements:
  - python >= 3.9
  - PyYAML
notes:
  - The module's argument echo (C(invocation), shown at -vvv and stored by AWX) gives the number
    of objects, not the objects; RV(results) names every object and RV(diff) shows content.
  - Neither the C(kubernetes) nor the C(openshift) Python package is needed; kubeconfig (merged
    KUBECONFIG lists, exec credential plugins, token files) and in-cluster config are read by the
    collection itself.
  - kubernetes-validate (for O(state=rendered))
"""

EXAMPLES = r"""
- name: Converge the edge site's objects, pruning what is no longer declared
  k8snet.fabric.resource_set:
    name: edge-factory-1
    set_namespace: kube-system
    state: overridden
    context: edge-factory-1
    objects:
      - apiVersion: v1
        kind: Namespace
        metadata: {name: edge-processing}
      - apiVersion: v1
        kind: ConfigMap
        metadata: {name: sync-config, namespace: edge-processing}
        data: {cloud-endpoint: https://sync.example.com}

- name: Render the same set to a file, no cluster needed
  k8snet.fabric.resource_set:
    state: rendered
    src: manifests/
    dest: build/edge/manifests.yaml

- name: Read back what the set holds
  k8snet.fabric.resource_set:
    name: edge-factory-1
    set_namespace: kube-system
    state: gathered
  register: edge_set
"""

RETURN = r"""
changed:
  description: Whether any object was created, configured, pruned or deleted.
  returned: always
  type: bool
results:
  description: One entry per object with its outcome.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
  sample:
    - {apiVersion: v1, kind: ConfigMap, namespace: edge-processing, name: sync-config, result: created}
summary:
  description: Counts of C(created), C(configured), C(unchanged), C(pruned), C(deleted), C(failed).
  returned: when state is merged, replaced, overridden or deleted
  type: dict
diff:
  description: Per-object before/after, Secret values redacted.
  returned: in diff mode
  type: list
  elements: dict
gathered:
  description: The live members of the set (server bookkeeping removed, secrets redacted).
  returned: when state is gathered
  type: list
  elements: dict
rendered:
  description: The objects as they would be applied (secrets redacted).
  returned: when state is rendered
  type: list
  elements: dict
validation:
  description: Offline schema result per rendered object.
  returned: when state is rendered
  type: list
  elements: dict
parsed:
  description: The objects read from O(content) and O(src).
  returned: when state is parsed
  type: list
  elements: dict
requests:
  description: Requests sent, by HTTP method; dry runs are counted as C(dry-run).
  returned: when a cluster was contacted
  type: dict
  sample: {GET: 3, dry-run: 2, PATCH: 2}
timings:
  description: Seconds spent per phase.
  returned: when a cluster was contacted
  type: dict
peak_memory_mb:
  description: Peak resident memory of the module's process in MiB (to size controllers and execution environments for large sets).
  returned: when a cluster was contacted
  type: float
  sample: 212.4
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import manifests
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.runner import SET_ARGSPEC, main_for


def objects_of(params: dict) -> list:
    objects = list(params.get("objects") or [])
    objects += manifests.load(params.get("src") or [])
    if params.get("content"):
        objects += manifests.parse(params["content"])
    return objects


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            objects=dict(type="list", elements="dict"),
            src=dict(type="list", elements="path"),
            content=dict(type="str"),
            **SET_ARGSPEC,
        ),
        supports_check_mode=True,
    )
    main_for(module, objects_of)


if __name__ == "__main__":
    main()
