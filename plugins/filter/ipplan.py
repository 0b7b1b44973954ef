# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.k8snet.fabric.plugins.module_utils import ipplan
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ValidationError


def _wrap(fn):
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            raise AnsibleFilterError(str(exc)) from exc
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def ip_conflicts(ranges, allowed=None):
    """Overlaps between named ranges, one sentence each."""
    if not isinstance(ranges, dict):
        raise AnsibleFilterError(f"ip_conflicts: expected a mapping of name to range, got {type(ranges).__name__}")
    return ipplan.conflicts(ranges, allowed or [])


def ip_inside(inner, outer, inner_name="range", outer_name="container"):
    """None-like empty string when inner lies inside outer, else the reason."""
    return ipplan.contains(outer_name, outer, inner_name, inner) or ""


def ip_valid(value, name="range"):
    """The canonical form of a range, failing with its name when it does not parse."""
    return ipplan.describe(ipplan.parse(name, value))


class FilterModule:
    def filters(self):
        return {"ip_conflicts": _wrap(ip_conflicts), "ip_inside": _wrap(ip_inside), "ip_valid": _wrap(ip_valid)}
