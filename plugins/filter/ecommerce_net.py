# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ecommerce_net_plan: the ecommerce_net role's whole plan from its variables (see the .yml)."""

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import ecommerce_net
from ansible_collections.k8snet.fabric.plugins.plugin_utils.filters import role_plan

ecommerce_net_plan = role_plan("ecommerce_net_plan", ecommerce_net.plan)


class FilterModule:
    def filters(self):
        return {"ecommerce_net_plan": ecommerce_net_plan}
