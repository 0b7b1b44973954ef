#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecosystem_check
short_description: Run an ecosystem's own checker (promtool, istioctl analyze) over objects before they are written
version_added: 0.1.0
description:
  - C(promtool) runs C(promtool check rules) over the rule groups of every
    C(monitoring.coreos.com) PrometheusRule in O(objects), the way the Prometheus Operator hands
    them to Prometheus (an expression that does not parse makes the operator reject the whole
    rule group).
  - C(istioctl) runs C(istioctl analyze -A --use-kube=false) over all of O(objects) offline
    (without C(-A) istioctl looks at the C(default) namespace only).
  - Reads only and writes nothing but a temporary folder that it removes. The checker is not a
    dependency of the collection - when it is not installed the task warns that nothing was
    checked (or fails with O(required)); it never reports an unchecked object as passed.
author:
  - k8snet.fabric contributors (@k8snet)
options:
  checker:
    description: Which ecosystem's checker to run.
    type: str
    required: true
    choices: [promtool, istioctl]
  objects:
    description: The Kubernetes objects the role is about to render or apply. Objects the checker
      does not understand are ignored by it.
    type: list
    elements: dict
    required: true
  binary:
    description: Path of the checker's executable; by default the first O(checker) found on C(PATH).
    type: path
  required:
    description: Fail when the checker is not installed instead of warning that nothing was checked.
    type: bool
    default: false
  fail_on:
    description: Finding levels that fail the task (promtool reports only errors).
    type: list
    elements: str
    choices: [error, warning, info]
    default: [error, warning]
attributes:
  check_mode:
    support: full
    description: Checking writes nothing, so it runs in check mode too.
"""

EXAMPLES = r"""
- name: Refuse alert rules that Prometheus would reject, before anything is written
  k8snet.fabric.ecosystem_check:
    checker: promtool
    objects: "{{ site_objects }}"
    binary: "{{ fabric_promtool | default(omit, true) }}"

- name: Istio's own analysis of the mesh configuration
  k8snet.fabric.ecosystem_check:
    checker: istioctl
    objects: "{{ mesh_objects }}"
    required: true
"""

RETURN = r"""
checked:
  description: Whether the checker ran (false when it is not installed).
  returned: always
  type: bool
binary:
  description: The executable that ran.
  returned: always
  type: str
checked_objects:
  description: How many of the objects the checker looked at (PrometheusRules for promtool,
    Istio and Gateway API objects for istioctl).
  returned: always
  type: int
findings:
  description: What the checker reported.
  returned: always
  type: list
  elements: dict
  contains:
    object: {description: The object the finding is about., type: str}
    level: {description: "C(error), C(warning) or C(info).", type: str}
    code: {description: Istio's analyzer code (for example C(IST0101))., type: str}
    message: {description: The checker's own message., type: str}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils import ecosystem_check
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import reported


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            checker=dict(type="str", required=True, choices=list(ecosystem_check.CHECKERS)),
            objects=dict(type="list", elements="dict", required=True),
            binary=dict(type="path"),
            required=dict(type="bool", default=False),
            fail_on=dict(type="list", elements="str", choices=["error", "warning", "info"],
                         default=["error", "warning"])),
        supports_check_mode=True,
    )
    p = module.params
    with reported(module):
        result = ecosystem_check.run(p["checker"], p["objects"], p["binary"])
    if not result["checked"]:
        message = (f"{p['checker']} is not installed (not on PATH; set the checker's path): "
                   f"nothing was checked by it")
        if p["required"]:
            module.fail_json(msg=message, **result)
        module.warn(message)
    failing = [f for f in result["findings"] if f["level"] in p["fail_on"]]
    if failing:
        module.fail_json(msg=f"{p['checker']} refuses {len(failing)} finding(s); nothing was written:\n"
                             + ecosystem_check.describe(failing), **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
