# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ecommerce_net_plan: the ecommerce_net role's whole plan from its variables (see the .yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.k8snet.fabric.plugins.module_utils import ecommerce, ipplan
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ValidationError


def ecommerce_net_plan(spec):
    if not isinstance(spec, dict):
        raise AnsibleFilterError("ecommerce_net_plan: expected the role's spec mapping")
    problems = ecommerce.problems(spec)
    if problems:
        return {"problems": problems}
    spec = dict(spec)
    public = next((f for f in spec["flows"] if f["from"] == ecommerce.INTERNET), None)
    spec["public_tier"] = public["to"] if public else spec["tiers"][0]["name"]
    spec["public_port"] = next(t["port"] for t in spec["tiers"] if t["name"] == spec["public_tier"])
    internet = spec["internet"]
    try:
        allowed = ipplan.parse("ecommerce_net_internet.cidr", internet["cidr"])
        for item in internet.get("except") or []:
            allowed = allowed - ipplan.parse("ecommerce_net_internet.except", item)
    except ValidationError as exc:
        return {"problems": [str(exc)]}
    spec["internet_probe"] = str(next(iter(allowed.iter_cidrs()))[0])
    return {"problems": [], "policy_config": ecommerce.policy_config(spec), "objects": ecommerce.objects(spec),
            "workloads": ecommerce.tier_workloads(spec), "expect": ecommerce.expectations(spec)}


class FilterModule:
    def filters(self):
        return {"ecommerce_net_plan": ecommerce_net_plan}
