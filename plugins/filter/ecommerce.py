# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ecommerce_net_plan: the ecommerce_net role's whole plan from its variables (see the .yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.k8snet.fabric.plugins.module_utils import ecommerce
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ValidationError


def ecommerce_net_plan(spec):
    if not isinstance(spec, dict):
        raise AnsibleFilterError("ecommerce_net_plan: expected the role's spec mapping")
    problems = ecommerce.problems(spec)
    if problems:
        return {"problems": problems}
    try:
        return ecommerce.plan(spec)
    except ValidationError as exc:
        return {"problems": [str(exc)]}


class FilterModule:
    def filters(self):
        return {"ecommerce_net_plan": ecommerce_net_plan}
