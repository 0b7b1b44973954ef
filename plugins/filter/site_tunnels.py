# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""site_tunnels: encrypted links between a scenario's sites (see the .yml)."""

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks
# The module's plan under another name: the filter itself is called site_tunnels.
from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios.site_tunnels import plan as tunnels_plan
from ansible_collections.k8snet.fabric.plugins.plugin_utils.filters import expect_type, reporting


@reporting
def site_tunnels(spec, ranges, scenario, variable):
    expect_type(ranges, dict, "ranges to map each site to its list of address ranges")
    out: list[str] = []
    checks.label(scenario, "scenario", out)
    if out:
        return {"problems": out}
    return tunnels_plan(scenario, spec, ranges, variable)


class FilterModule:
    def filters(self):
        return {"site_tunnels": site_tunnels}
