# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import ipplan
from ansible_collections.k8snet.fabric.plugins.plugin_utils.filters import expect_type, reporting


@reporting
def ip_conflicts(ranges, allowed=None):
    """Overlaps between named ranges, one sentence each."""
    return ipplan.conflicts(expect_type(ranges, dict, "a mapping of name to range"), allowed or [])


@reporting
def ip_inside(inner, outer, inner_name="range", outer_name="container"):
    """None-like empty string when inner lies inside outer, else the reason."""
    return ipplan.contains(outer_name, outer, inner_name, inner) or ""


@reporting
def ip_valid(value, name="range"):
    """The canonical form of a range, failing with its name when it does not parse."""
    return ipplan.describe(ipplan.parse(name, value))


class FilterModule:
    def filters(self):
        return {"ip_conflicts": ip_conflicts, "ip_inside": ip_inside, "ip_valid": ip_valid}
