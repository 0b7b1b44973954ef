# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubefed_plan: the kubefed role's whole plan from its variables (see the .yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.k8snet.fabric.plugins.module_utils import multicluster


def kubefed_plan(spec, probed=None):
    if not isinstance(spec, dict):
        raise AnsibleFilterError("kubefed_plan: expected the role's spec mapping")
    if probed is not None and not isinstance(probed, dict):
        raise AnsibleFilterError("kubefed_plan: probed must be the result of k8snet.fabric.net_probe")
    return multicluster.plan(spec, probed)


class FilterModule:
    def filters(self):
        return {"kubefed_plan": kubefed_plan}
