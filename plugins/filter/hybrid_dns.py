# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hybrid_dns_plan: the hybrid_dns role's whole plan from its variables (see the .yml)."""

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import hybrid_dns
from ansible_collections.k8snet.fabric.plugins.plugin_utils.filters import expect_type, reporting


@reporting
def hybrid_dns_plan(spec, probed=None):
    if probed is not None:
        expect_type(probed, dict, "probed to be the result of k8snet.fabric.net_probe")
    return hybrid_dns.plan(expect_type(spec, dict, "the role's spec mapping"), probed)


class FilterModule:
    def filters(self):
        return {"hybrid_dns_plan": hybrid_dns_plan}
